import {
  fitsBudget,
  formatOffset,
  notFound,
  type Offset,
  parseOffset,
  readSegments,
  StorageError,
} from '@streamkeep/storage';
import type { Core } from './core.js';
import { classifyIoError, errnoCode } from './fs.js';
import { flushPending } from './log-writer.js';
import type { StreamEntry } from './stream-entry.js';

/**
 * Reads across a fork's lineage: a fork's messages are its ancestors' up to its fork offset, then its own.
 */

/** The entries of `entry`'s ancestors, nearest first, loaded (ancestors are read through, so they stay in use). */
export async function ancestors(core: Core, entry: StreamEntry): Promise<StreamEntry[]> {
  const out: StreamEntry[] = [];
  for (let cur = entry; cur.fork !== null; ) {
    let src: StreamEntry;
    try {
      src = await core.load(cur.fork.source);
    } catch (err) {
      if (err instanceof StorageError && err.code === 'NOT_FOUND') {
        throw new StorageError(
          'CORRUPTED',
          `stream ${JSON.stringify(entry.name)} is missing its ancestor ${JSON.stringify(cur.fork.source)}`,
        );
      }
      throw err;
    }
    out.push(src);
    cur = src;
  }
  return out;
}

/**
 * Gathers the logical messages of `entry` (ancestors first, within their fork bounds) at or after (seq, bytes).
 * `lineage` is {@link ancestors} of `entry`. All index lookups happen before the first await, so the result is one
 * coherent snapshot.
 */
export async function collect(
  core: Core,
  entry: StreamEntry,
  lineage: readonly StreamEntry[],
  fromSeq: number,
  fromBytes: number,
  maxBytes: number | undefined,
  maxCount: number | undefined,
): Promise<{ messages: Uint8Array[]; next: Offset | undefined; tail: Offset }> {
  const tail = entry.tail();
  // A stream without ancestors is one unbounded segment (no lineage to bound).
  const segments =
    lineage.length === 0
      ? [{ e: entry, boundSeq: Number.POSITIVE_INFINITY, boundBytes: 0 }]
      : readSegments([entry, ...lineage]).map(({ entry: e, bound }) => {
          const at =
            bound === null ? undefined : (parseOffset(bound) as { readSeq: number; byteOffset: number });
          return { e, boundSeq: at?.readSeq ?? Number.POSITIVE_INFINITY, boundBytes: at?.byteOffset ?? 0 };
        });
  const ranges: { e: StreamEntry; i: number; j: number }[] = [];
  let budget = maxBytes;
  let count = maxCount;
  let next: Offset | undefined;
  let taken = 0;
  for (const { e, boundSeq: bs, boundBytes: bb } of segments) {
    const i = e.lowerBound(fromSeq, fromBytes);
    const limit = bs === Number.POSITIVE_INFINITY ? e.index.count : e.lowerBound(bs, bb);
    if (i >= limit) continue;
    let j = limit;
    if (budget !== undefined) {
      j = fitsBudget(taken, maxBytes! - budget, e.index.size(i), maxBytes)
        ? e.index.takeWithin(i, limit, budget)
        : i;
    }
    if (count !== undefined && j - i > count) j = i + count;
    if (j > i) {
      ranges.push({ e, i, j });
      taken += j - i;
      if (budget !== undefined) budget -= e.index.before(j) - e.index.before(i);
      if (count !== undefined) count -= j - i;
    }
    if (j < limit) {
      const last = ranges[ranges.length - 1]!;
      next = formatOffset(last.e.baseSeq + last.j, last.e.baseBytes + last.e.index.before(last.j));
      break;
    }
  }
  // Ranges inside a stream's cached tail are taken now, from the same snapshot as the index lookups.
  let pending = false;
  const found = ranges.map((r) => {
    const hit = core.tailCache.get(r.e.cached, r.e.index, r.i, r.j);
    if (hit !== undefined) return hit;
    pending = true;
    return readRange(core, entry, r.e, r.i, r.j);
  });
  const parts = pending ? await Promise.all(found) : (found as Uint8Array[][]);
  const messages = parts.length === 1 ? parts[0]! : parts.flat();
  return { messages, next, tail };
}

/** One positional read covering messages [i, j) of `e`, sliced into views without copying. */
async function readRange(
  core: Core,
  owner: StreamEntry,
  e: StreamEntry,
  i: number,
  j: number,
): Promise<Uint8Array[]> {
  const index = e.index;
  const start = index.position(i);
  const end = index.position(j - 1) + index.size(j - 1);
  const unwritten = e.unwritten;
  if (unwritten !== null && end <= unwritten.byteLength)
    return slice(unwritten.subarray(start, end), index, i, j, start);
  const held = heldRange(e, start, end);
  if (held !== undefined) return slice(held, index, i, j, start);
  // Groups the journal holds that the log has not received yet are written out first.
  if ((e.pending.length > 0 && end > e.pendingAt) || unwritten !== null) {
    try {
      await flushPending(core, e);
    } catch (err) {
      throw classifyIoError(err, `reading ${JSON.stringify(e.name)}`);
    }
  }
  const buf = Buffer.allocUnsafe(end - start);
  let fh = core.handles.acquireOpen(e);
  if (fh === undefined) {
    try {
      fh = await core.handles.acquire(e);
    } catch (err) {
      // The log vanished because the stream is being deleted: the read lost the race, so it answers as a read after
      // the delete would.
      if (errnoCode(err) === 'ENOENT' && e.deleting !== null) await e.deleting;
      if (e.removed) notFound(owner.name);
      throw classifyIoError(err, `reading ${JSON.stringify(e.name)}`);
    }
  }
  try {
    let got = 0;
    while (got < buf.byteLength) {
      const { bytesRead } = await fh.read(buf, got, buf.byteLength - got, start + got);
      if (bytesRead === 0) {
        throw new StorageError(
          'CORRUPTED',
          `the log of ${JSON.stringify(e.name)} is shorter than its index (truncated outside the storage?)`,
        );
      }
      got += bytesRead;
    }
  } catch (err) {
    throw classifyIoError(err, `reading ${JSON.stringify(e.name)}`);
  } finally {
    core.handles.release(e);
  }
  return slice(buf, index, i, j, start);
}

/**
 * A copy of log bytes `[start, end)` of `e` when memory holds all of them: its carried bytes and the groups pending
 * after them (a log without a file), or groups pending after its file's end. Such reads used to write the pending
 * groups out first, which gave every small stream read while carried a file of its own.
 */
function heldRange(e: StreamEntry, start: number, end: number): Buffer | undefined {
  const pending = e.pending;
  if (pending.length === 0) return undefined;
  const at = e.pendingAt;
  const unwritten = e.unwritten;
  if (unwritten !== null ? unwritten.byteLength !== at : start < at) return undefined;
  if (end > at + e.pendingBytes) return undefined;
  const out = Buffer.allocUnsafe(end - start);
  let w = 0;
  if (unwritten !== null && start < at) {
    w = unwritten.copy(out, 0, start, Math.min(end, at));
  }
  let p = at;
  for (const part of pending) {
    const partEnd = p + part.byteLength;
    if (partEnd > start && p < end) {
      const from = Math.max(start, p) - p;
      const to = Math.min(end, partEnd) - p;
      out.set(part.subarray(from, to), w);
      w += to - from;
    }
    if (partEnd >= end) break;
    p = partEnd;
  }
  return out;
}

/** Views of messages [i, j) in `buf`, which holds the log from file position `start` on. */
function slice(buf: Buffer, index: StreamEntry['index'], i: number, j: number, start: number): Uint8Array[] {
  const out = new Array<Uint8Array>(j - i);
  for (let k = i; k < j; k++) {
    const at = index.position(k) - start;
    out[k - i] = buf.subarray(at, at + index.size(k));
  }
  return out;
}
