import {
  type Clock,
  isStorageError,
  type Storage,
  type StorageCapabilities,
  type StorageError,
  type SubscriptionStore,
  supportsSubscriptions,
} from '@streamkeep/storage';
import { MemoryStorage } from '@streamkeep/storage-memory';
import type { StorageHarness } from '../../src/index.js';

// The wrapper every mutant is built with — MemoryStorage behind a Storage that forwards everything except the
// overridden methods — and the two unbroken harnesses the kit's own tests compare against.

type Overrides = Partial<Omit<Storage, 'capabilities' | 'specificationVersion'>> & {
  capabilities?: Partial<StorageCapabilities>;
};

/** A Storage that forwards everything to `inner` except the overridden methods. */
export function wrap(inner: Storage, make: (inner: Storage) => Overrides): Storage {
  const o = make(inner);
  return {
    specificationVersion: inner.specificationVersion,
    capabilities: { ...inner.capabilities, ...o.capabilities },
    createStream: o.createStream ?? ((n, opts) => inner.createStream(n, opts)),
    createFork: o.createFork ?? ((n, opts) => inner.createFork(n, opts)),
    append: o.append ?? ((n, r) => inner.append(n, r)),
    closeStream: o.closeStream ?? ((n, opts) => inner.closeStream(n, opts)),
    appendWithProducer: o.appendWithProducer ?? ((n, r) => inner.appendWithProducer(n, r)),
    read: o.read ?? ((n, f, opts) => inner.read(n, f, opts)),
    head: o.head ?? ((n) => inner.head(n)),
    exists: o.exists ?? ((n) => inner.exists(n)),
    delete: o.delete ?? ((n) => inner.delete(n)),
    subscribe: o.subscribe ?? ((n, l) => inner.subscribe(n, l)),
    listStreams: o.listStreams ?? ((opts) => inner.listStreams(opts)),
    cleanupExpiredStreams: o.cleanupExpiredStreams ?? (() => inner.cleanupExpiredStreams()),
    close: o.close ?? (() => inner.close()),
    // The subscription store, when the inner backend has one (its capability is copied above).
    ...(supportsSubscriptions(inner)
      ? {
          getSubscription: (id: string) => inner.getSubscription(id),
          mutateSubscription: (id: string, plan: Parameters<SubscriptionStore['mutateSubscription']>[1]) =>
            inner.mutateSubscription(id, plan),
          deleteSubscription: (id: string) => inner.deleteSubscription(id),
          listSubscriptions: (opts?: Parameters<SubscriptionStore['listSubscriptions']>[0]) =>
            inner.listSubscriptions(opts),
        }
      : {}),
  } as Storage;
}

interface Context {
  readonly clock: Clock;
  readonly limits: { readonly maxTotalBytes?: number; readonly maxStreamBytes?: number };
}

export function harnessOf(make: (inner: Storage, context: Context) => Overrides): StorageHarness {
  return {
    async create({ clock, limits }) {
      const inner = new MemoryStorage({ clock, ...limits });
      return { storage: wrap(inner, (i) => make(i, { clock, limits })), teardown: () => inner.close() };
    },
  };
}

/** Runs `call`; a `StorageError` of `code` is handed to `recover` instead of being thrown. */
export async function recovering<T>(
  call: () => Promise<T>,
  code: string,
  recover: (err: StorageError) => Promise<T> | T,
): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (isStorageError(err) && err.code === code) return recover(err);
    throw err;
  }
}

export function bytes(messages: readonly Uint8Array[]): number {
  return messages.reduce((n, m) => n + m.byteLength, 0);
}

/** The unbroken reference backend. */
export const memory: StorageHarness = harnessOf(() => ({}));

/**
 * A "durable" MemoryStorage whose `reopen()` hands back the same live instance: a backend that keeps everything,
 * used to show the durability checks pass when nothing is lost.
 */
export const durableMemory: StorageHarness = {
  async create({ clock, limits }) {
    const inner = new MemoryStorage({ clock, ...limits });
    const storage = wrap(inner, () => ({ capabilities: { durable: true } }));
    return { storage, reopen: async () => storage, teardown: () => inner.close() };
  },
};
