import {
  formatOffset,
  isStorageError,
  parseOffset,
  type ReadResult,
  StorageError,
} from '@streamkeep/storage';
import type { StorageHarness } from '../../src/index.js';
import { harnessOf, recovering } from './harness.js';

// Mutants of read, head and exists: lost or skipped messages, byte budgets, expiry, metadata, invalid names, close.

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

/** The byte budget of a read is ignored. */
export const readBudgetIgnored: StorageHarness = harnessOf((inner) => ({
  read: (n, f) => inner.read(n, f),
}));

/** A read cut short by its budget reports the tail as `nextOffset`, so the reader skips the rest. */
export const budgetedReadSkipsRest: StorageHarness = harnessOf((inner) => ({
  read: async (n, f, o) => {
    const r = await inner.read(n, f, o);
    if (r.upToDate) return r;
    const full = await inner.read(n, f);
    return { ...r, nextOffset: full.nextOffset, upToDate: true };
  },
}));

/** A negative read budget is treated as 0 instead of a `RangeError`. */
export const negativeBudgetAccepted: StorageHarness = harnessOf((inner) => ({
  read: (n, f, o) => inner.read(n, f, o?.maxBytes !== undefined && o.maxBytes < 0 ? { maxBytes: 0 } : o),
}));

/** After `close()`, reads still answer (from a cache) instead of rejecting with `STORAGE_CLOSED`. */
export const readsAfterClose: StorageHarness = harnessOf((inner) => ({
  read: (n, f, o) =>
    recovering(
      () => inner.read(n, f, o),
      'STORAGE_CLOSED',
      () => ({ messages: [], nextOffset: formatOffset(0, 0), upToDate: true, closed: false }),
    ),
}));

/** `updatedAt` is never recorded. */
export const updatedAtNeverSet: StorageHarness = harnessOf((inner) => ({
  head: async (n) => ({ ...(await inner.head(n)), updatedAt: null }),
}));

/** A fork's `totalBytes` counts its inherited bytes too. */
export const forkBytesIncludeInherited: StorageHarness = harnessOf((inner) => ({
  head: async (n) => {
    const h = await inner.head(n);
    if (h.fork === null) return h;
    const p = parseOffset(h.fork.offset);
    return p.kind === 'position' ? { ...h, totalBytes: h.totalBytes + p.byteOffset } : h;
  },
}));

/** Invalid names are looked up instead of refused: `head("")` is `NOT_FOUND`. */
export const emptyNameNotFound: StorageHarness = harnessOf((inner) => ({
  head: (n) => (n === '' ? Promise.reject(new StorageError('NOT_FOUND', 'no such stream')) : inner.head(n)),
}));

/** `exists` answers from the catalog: expired streams still exist. */
export const existsIgnoresExpiry: StorageHarness = harnessOf((inner) => ({
  exists: async (n) => {
    if (await inner.exists(n)) return true;
    const code = await inner.head(n).then(
      () => 'ok',
      (err: unknown) => (isStorageError(err) ? err.code : 'other'),
    );
    return code === 'EXPIRED';
  },
}));
