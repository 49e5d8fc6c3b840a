import {
  type AppendRequest,
  formatOffset,
  isStorageError,
  parseOffset,
  StorageError,
} from '@streamkeep/storage';
import type { StorageHarness } from '../../src/index.js';
import { bytes, harnessOf, recovering } from './harness.js';

// Mutants of append and closeStream: offsets, closure, content types, `Stream-Seq`, byte limits and error details.

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
