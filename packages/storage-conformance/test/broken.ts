import {
  type AppendRequest,
  type Clock,
  formatOffset,
  isStorageError,
  type ProducerAppendRequest,
  parseOffset,
  type ReadResult,
  type Storage,
  type StorageCapabilities,
  StorageError,
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

interface Context {
  readonly clock: Clock;
  readonly limits: { readonly maxTotalBytes?: number; readonly maxStreamBytes?: number };
}

function harnessOf(make: (inner: Storage, context: Context) => Overrides): StorageHarness {
  return {
    async create({ clock, limits }) {
      const inner = new MemoryStorage({ clock, ...limits });
      return { storage: wrap(inner, (i) => make(i, { clock, limits })), teardown: () => inner.close() };
    },
  };
}

/** Runs `call`; a `StorageError` of `code` is handed to `recover` instead of being thrown. */
async function recovering<T>(
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

// ----- createStream ------------------------------------------------------------------------------------------------

/** `closed: true` on a create is ignored: the stream starts open. */
export const createIgnoresClosed: StorageHarness = harnessOf((inner) => ({
  createStream: (n, o) => inner.createStream(n, { ...o, closed: false }),
}));

/** A re-create with a different config is answered as idempotent instead of `CONFIG_MISMATCH`. */
export const createMismatchAccepted: StorageHarness = harnessOf((inner) => ({
  createStream: (n, o) =>
    recovering(
      () => inner.createStream(n, o),
      'CONFIG_MISMATCH',
      async () => {
        const h = await inner.head(n);
        return { created: false, nextOffset: h.nextOffset, closed: h.closed };
      },
    ),
}));

/** Only the first initial message of a create is stored. */
export const createKeepsFirstMessageOnly: StorageHarness = harnessOf((inner) => ({
  createStream: (n, o) => inner.createStream(n, { ...o, messages: o.messages?.slice(0, 1) }),
}));

/** A sliding TTL is stored as a fixed deadline (never renewed, and `ttlSeconds` lost). */
export const ttlStoredAsDeadline: StorageHarness = harnessOf((inner, { clock }) => ({
  createStream: (n, o) =>
    o.ttlSeconds === undefined || o.expiresAt !== undefined
      ? inner.createStream(n, o)
      : inner.createStream(n, { ...o, ttlSeconds: undefined, expiresAt: clock.now() + o.ttlSeconds * 1000 }),
}));

// ----- createFork --------------------------------------------------------------------------------------------------

/** The fork offset is ignored: every fork branches at the source's tail. */
export const forkIgnoresOffset: StorageHarness = harnessOf((inner) => ({
  createFork: (n, o) => inner.createFork(n, { ...o, offset: undefined }),
}));

/** The fork's sub-offset is ignored. */
export const forkIgnoresSubOffset: StorageHarness = harnessOf((inner) => ({
  createFork: (n, o) => inner.createFork(n, { ...o, subOffset: 0 }),
}));

/** A fork's explicit content type is never compared with the source's. */
export const forkContentTypeUnchecked: StorageHarness = harnessOf((inner) => ({
  createFork: (n, o) => inner.createFork(n, { ...o, contentType: undefined }),
}));

// ----- append ------------------------------------------------------------------------------------------------------

/** `close` on an append with messages is ignored (the messages are written, the stream stays open). */
export const appendCloseIgnored: StorageHarness = harnessOf((inner) => ({
  append: (n, r) => inner.append(n, r.messages.length > 0 ? { ...r, close: false } : r),
}));

/** The content type of an append is not checked: a mismatching one is written as if it matched. */
export const appendContentTypeUnchecked: StorageHarness = harnessOf((inner) => ({
  append: (n, r) =>
    recovering(
      () => inner.append(n, r),
      'CONTENT_TYPE_MISMATCH',
      (err) => inner.append(n, { ...r, contentType: err.details.expected }),
    ),
}));

/** An append reports its `startOffset` as the new tail. */
export const appendStartOffsetIsTail: StorageHarness = harnessOf((inner) => ({
  append: async (n, r) => {
    const result = await inner.append(n, r);
    return { ...result, startOffset: result.nextOffset };
  },
}));

/** Zero-length messages are dropped on the way to the log. */
export const emptyMessagesDropped: StorageHarness = harnessOf((inner) => ({
  append: (n, r) => {
    const kept = r.messages.filter((m) => m.byteLength > 0);
    if (kept.length === 0 && r.close !== true) return inner.append(n, r);
    return inner.append(n, { ...r, messages: kept });
  },
}));

/** The per-stream limit is checked with `>=`: a commit that exactly reaches it is refused. */
export const streamLimitOffByOne: StorageHarness = harnessOf((inner, { limits }) => ({
  append: async (n, r) => {
    if (limits.maxStreamBytes !== undefined && r.messages.length > 0) {
      const h = await inner.head(n).catch(() => undefined);
      if (h !== undefined && !h.closed && h.totalBytes + bytes(r.messages) === limits.maxStreamBytes)
        throw new StorageError('STREAM_LIMIT_EXCEEDED', 'stream limit');
    }
    return inner.append(n, r);
  },
}));

/** `STREAM_CLOSED` carries no `nextOffset` (the server cannot send Stream-Next-Offset). */
export const closedErrorWithoutTail: StorageHarness = harnessOf((inner) => ({
  append: (n, r) =>
    recovering(
      () => inner.append(n, r),
      'STREAM_CLOSED',
      () => {
        throw new StorageError('STREAM_CLOSED', 'stream is closed');
      },
    ),
}));

/** `SEQ_CONFLICT` reports the received `Stream-Seq` as the last one. */
export const seqConflictDetailsSwapped: StorageHarness = harnessOf((inner) => ({
  append: (n, r) =>
    recovering(
      () => inner.append(n, r),
      'SEQ_CONFLICT',
      (err) => {
        throw new StorageError('SEQ_CONFLICT', err.message, {
          details: { lastSeq: r.seq, receivedSeq: err.details.lastSeq },
        });
      },
    ),
}));

// ----- closeStream -------------------------------------------------------------------------------------------------

/** Closing an already closed stream is refused instead of succeeding. */
export const closeNotIdempotent: StorageHarness = harnessOf((inner) => ({
  closeStream: async (n, o) => {
    const h = await inner.head(n);
    if (h.closed)
      throw new StorageError('STREAM_CLOSED', 'already closed', { details: { nextOffset: h.nextOffset } });
    return inner.closeStream(n, o);
  },
}));

/** `closeStream` drops its `Stream-Seq` (neither checked nor stored). */
export const closeIgnoresSeq: StorageHarness = harnessOf((inner) => ({
  closeStream: (n) => inner.closeStream(n),
}));

// ----- appendWithProducer ------------------------------------------------------------------------------------------

/** A stale epoch is answered as a duplicate instead of being fenced. */
export const staleEpochAsDuplicate: StorageHarness = harnessOf((inner) => ({
  appendWithProducer: (n, r) =>
    recovering(
      () => inner.appendWithProducer(n, r),
      'PRODUCER_EPOCH_FENCED',
      async (err) => {
        const h = await inner.head(n);
        return {
          startOffset: h.nextOffset,
          nextOffset: h.nextOffset,
          closed: h.closed,
          duplicate: true,
          epoch: err.details.currentEpoch ?? 0,
          seq: r.producer.seq,
        };
      },
    ),
}));

/** `PRODUCER_SEQ_GAP` reports the last accepted seq as the expected one (off by one). */
export const gapExpectsLastSeq: StorageHarness = harnessOf((inner) => ({
  appendWithProducer: (n, r) =>
    recovering(
      () => inner.appendWithProducer(n, r),
      'PRODUCER_SEQ_GAP',
      (err) => {
        throw new StorageError('PRODUCER_SEQ_GAP', err.message, {
          details: { ...err.details, expectedSeq: Math.max(0, (err.details.expectedSeq ?? 1) - 1) },
        });
      },
    ),
}));

/** A duplicate answers with the request's epoch and seq instead of the stored ones. */
export const duplicateEchoesRequest: StorageHarness = harnessOf((inner) => ({
  appendWithProducer: async (n, r) => {
    const result = await inner.appendWithProducer(n, r);
    return result.duplicate ? { ...result, epoch: r.producer.epoch, seq: r.producer.seq } : result;
  },
}));

/** `PRODUCER_EPOCH_FENCED` carries no `currentEpoch` (the server cannot send Producer-Epoch). */
export const fencedWithoutEpoch: StorageHarness = harnessOf((inner) => ({
  appendWithProducer: (n, r) =>
    recovering(
      () => inner.appendWithProducer(n, r),
      'PRODUCER_EPOCH_FENCED',
      () => {
        throw new StorageError('PRODUCER_EPOCH_FENCED', 'fenced');
      },
    ),
}));

// ----- read --------------------------------------------------------------------------------------------------------

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

// ----- head / exists -----------------------------------------------------------------------------------------------

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

// ----- delete / subscribe / listStreams / cleanup / close ----------------------------------------------------------

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

/** After `close()`, reads still answer (from a cache) instead of rejecting with `STORAGE_CLOSED`. */
export const readsAfterClose: StorageHarness = harnessOf((inner) => ({
  read: (n, f, o) =>
    recovering(
      () => inner.read(n, f, o),
      'STORAGE_CLOSED',
      () => ({ messages: [], nextOffset: formatOffset(0, 0), upToDate: true, closed: false }),
    ),
}));

/** Re-appending after a failure: an append rejected by the storage-wide limit is retried once without its batch's last message. */
export const limitRejectionPartiallyWrites: StorageHarness = harnessOf((inner) => ({
  append: (n, r) =>
    recovering(
      () => inner.append(n, r),
      'STORAGE_LIMIT_EXCEEDED',
      async (err) => {
        if (r.messages.length < 2) throw err;
        await inner.append(n, { ...r, messages: r.messages.slice(0, -1), close: false }).catch(() => {});
        throw err;
      },
    ),
}));

/** Invalid names are looked up instead of refused: `head("")` is `NOT_FOUND`. */
export const emptyNameNotFound: StorageHarness = harnessOf((inner) => ({
  head: (n) => (n === '' ? Promise.reject(new StorageError('NOT_FOUND', 'no such stream')) : inner.head(n)),
}));

/** A negative read budget is treated as 0 instead of a `RangeError`. */
export const negativeBudgetAccepted: StorageHarness = harnessOf((inner) => ({
  read: (n, f, o) => inner.read(n, f, o?.maxBytes !== undefined && o.maxBytes < 0 ? { maxBytes: 0 } : o),
}));
