import { isStorageError, type Storage, type StreamListener } from '@streamkeep/storage';
import { MemoryStorage } from '@streamkeep/storage-memory';
import type { StorageHarness } from '../../src/index.js';
import { harnessOf, recovering, wrap } from './harness.js';

// Mutants of delete, subscribe, listStreams, cleanupExpiredStreams and reopen.

/** A delete that leaves a tombstone reports a hard delete. */
export const deleteHidesTombstone: StorageHarness = harnessOf((inner) => ({
  delete: async (n) => ({ ...(await inner.delete(n)), softDeleted: false }),
}));

/** Deleting an expired stream is refused with `EXPIRED` (the access rule applied where it must not be). */
export const deleteChecksExpiry: StorageHarness = harnessOf((inner) => ({
  delete: async (n) => {
    await inner.head(n).catch((err: unknown) => {
      if (isStorageError(err, 'EXPIRED')) throw err;
    });
    return inner.delete(n);
  },
}));

/** Subscribing to a name that does not exist succeeds. */
export const subscribeToMissing: StorageHarness = harnessOf((inner) => ({
  subscribe: (n, l) =>
    recovering(
      () => inner.subscribe(n, l),
      'NOT_FOUND',
      () => ({ unsubscribe() {} }),
    ),
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

/** Listings sort by JavaScript (UTF-16) string order instead of UTF-8 byte order. */
export const listSortedByUtf16: StorageHarness = harnessOf((inner) => ({
  listStreams: async (opts) => {
    const all = await inner.listStreams({ ...opts, limit: undefined });
    all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return opts?.limit === undefined ? all : all.slice(0, opts.limit);
  },
}));

/** Listings ignore `after`. */
export const listIgnoresAfter: StorageHarness = harnessOf((inner) => ({
  listStreams: (o) => inner.listStreams({ ...o, after: undefined }),
}));

/** `cleanupExpiredStreams` does its work but always reports 0. */
export const cleanupReportsZero: StorageHarness = harnessOf((inner) => ({
  cleanupExpiredStreams: async () => {
    await inner.cleanupExpiredStreams();
    return 0;
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
