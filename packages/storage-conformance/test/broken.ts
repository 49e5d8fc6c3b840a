import {
  type AppendRequest,
  formatOffset,
  isStorageError,
  type ProducerAppendRequest,
  parseOffset,
  type ReadResult,
  type Storage,
  type StorageCapabilities,
  type StreamListener,
} from '@streamkeep/storage';
import { MemoryStorage } from '@streamkeep/storage-memory';
import type { StorageHarness } from '../src/index.js';

// Deliberately broken backends: MemoryStorage behind a wrapper that breaks exactly one rule. The kit's self-test
// requires every one of them to fail the kit.

type Overrides = Partial<Omit<Storage, 'capabilities' | 'specificationVersion'>> & {
  capabilities?: Partial<StorageCapabilities>;
};

/** A Storage that forwards everything to `inner` except the overridden methods. */
function wrap(inner: Storage, make: (inner: Storage) => Overrides): Storage {
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
  };
}

function harnessOf(make: (inner: Storage) => Overrides): StorageHarness {
  return {
    async create({ clock, limits }) {
      const inner = new MemoryStorage({ clock, ...limits });
      return { storage: wrap(inner, make), teardown: () => inner.close() };
    },
  };
}

function bytes(messages: readonly Uint8Array[]): number {
  return messages.reduce((n, m) => n + m.byteLength, 0);
}

/** The unbroken reference backend. */
export const memory: StorageHarness = harnessOf(() => ({}));

/** Appends report a `nextOffset` that does not advance past the batch's start. */
export const offsetsDoNotAdvance: StorageHarness = harnessOf((inner) => ({
  append: async (n, r) => {
    const result = await inner.append(n, r);
    return { ...result, nextOffset: result.startOffset };
  },
}));

/** An append with messages to a closed stream is acknowledged as if it had been written. */
export const appendsAcceptedAfterClose: StorageHarness = harnessOf((inner) => ({
  append: async (n, r: AppendRequest) => {
    try {
      return await inner.append(n, r);
    } catch (err) {
      if (!isStorageError(err, 'STREAM_CLOSED')) throw err;
      const tail = (await inner.head(n)).nextOffset;
      const p = parseOffset(tail);
      if (p.kind !== 'position') throw err;
      return {
        startOffset: tail,
        nextOffset: formatOffset(p.readSeq + r.messages.length, p.byteOffset + bytes(r.messages)),
        closed: true,
      };
    }
  },
}));

/** A producer retry with messages is written again instead of being recognised as a duplicate. */
export const producerDuplicatesAppliedTwice: StorageHarness = harnessOf((inner) => ({
  appendWithProducer: async (n, r: ProducerAppendRequest) => {
    const result = await inner.appendWithProducer(n, r);
    if (!result.duplicate || r.messages.length === 0 || result.closed) return result;
    const again = await inner.append(n, { messages: r.messages, contentType: r.contentType });
    return { ...again, duplicate: false, epoch: r.producer.epoch, seq: r.producer.seq };
  },
}));

/** Every non-empty read silently drops its first message. */
export const readDropsFirstMessage: StorageHarness = harnessOf((inner) => ({
  read: async (n, f, opts) => {
    const r = await inner.read(n, f, opts);
    return { ...r, messages: r.messages.slice(1) };
  },
}));

/** An expired stream stays readable: reads serve the last snapshot instead of rejecting with `EXPIRED`. */
export const expiredStreamsStillReadable: StorageHarness = harnessOf((inner) => {
  const last = new Map<string, ReadResult>();
  return {
    read: async (n, f, opts) => {
      try {
        const r = await inner.read(n, f, opts);
        last.set(n, r);
        return r;
      } catch (err) {
        const cached = last.get(n);
        if (isStorageError(err, 'EXPIRED') && cached !== undefined) return cached;
        if (isStorageError(err, 'EXPIRED')) {
          return { messages: [], nextOffset: formatOffset(0, 0), upToDate: true, closed: false };
        }
        throw err;
      }
    },
  };
});

/** A `Stream-Seq` that does not increase is accepted (the commit is retried without it). */
export const streamSeqRegressionAccepted: StorageHarness = harnessOf((inner) => ({
  append: async (n, r) => {
    try {
      return await inner.append(n, r);
    } catch (err) {
      if (!isStorageError(err, 'SEQ_CONFLICT')) throw err;
      return inner.append(n, { ...r, seq: undefined });
    }
  },
}));

/** Listings sort by JavaScript (UTF-16) string order instead of UTF-8 byte order. */
export const listSortedByUtf16: StorageHarness = harnessOf((inner) => ({
  listStreams: async (opts) => {
    const all = await inner.listStreams({ ...opts, limit: undefined });
    all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return opts?.limit === undefined ? all : all.slice(0, opts.limit);
  },
}));

/** Subscribers are only woken by every other commit. */
export const wakeUpsDropped: StorageHarness = harnessOf((inner) => ({
  subscribe: (n, listener: StreamListener) => {
    let calls = 0;
    return inner.subscribe(n, () => {
      calls += 1;
      if (calls % 2 === 0) listener();
    });
  },
}));

/** Claims durability, but `reopen()` comes back empty. */
export const forgetfulReopen: StorageHarness = {
  async create({ clock, limits }) {
    let current: Storage = wrap(new MemoryStorage({ clock, ...limits }), () => ({
      capabilities: { durable: true },
    }));
    return {
      storage: current,
      async reopen() {
        await current.close();
        current = wrap(new MemoryStorage({ clock, ...limits }), () => ({ capabilities: { durable: true } }));
        return current;
      },
      teardown: () => current.close(),
    };
  },
};

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
