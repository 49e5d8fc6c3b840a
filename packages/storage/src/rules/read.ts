import { compareOffsets, type Offset, type ParsedOffset } from '../offsets.js';
import type { ForkInfo, ReadResult } from '../types.js';

/**
 * The byte-budget rule of a read: the next message of `size` bytes is taken when no budget is set, when nothing has
 * been taken yet (a reader always makes progress), or when the total stays within `maxBytes`.
 */
export function fitsBudget(
  takenCount: number,
  takenBytes: number,
  size: number,
  maxBytes: number | undefined,
): boolean {
  return maxBytes === undefined || takenCount === 0 || takenBytes + size <= maxBytes;
}

/**
 * The number of leading messages (from `start`) a read may return under a byte budget: it stops before the message
 * that would take the total past `maxBytes`, but takes at least one ({@link fitsBudget}).
 */
export function takeWithinBudget(
  sizes: ArrayLike<number>,
  start: number,
  end: number,
  maxBytes: number | undefined,
): number {
  if (maxBytes === undefined || start >= end) return end - start;
  let total = 0;
  let i = start;
  for (; i < end; i++) {
    const size = sizes[i]!;
    if (!fitsBudget(i - start, total, size, maxBytes)) break;
    total += size;
  }
  return i - start;
}

/** Where a read from `from` (not `now`) starts: `(0, 0)` for `-1`, the offset's parts otherwise. */
export function readStart(from: Exclude<ParsedOffset, { kind: 'now' }>): {
  readonly readSeq: number;
  readonly byteOffset: number;
} {
  return from.kind === 'start' ? { readSeq: 0, byteOffset: 0 } : from;
}

/** The result of a read that returns nothing and stands at the tail: a read from `now`. */
export function tailReadResult(tail: Offset, closed: boolean): ReadResult {
  return { messages: [], nextOffset: tail, upToDate: true, closed };
}

/** One stream of a read's lineage and the offset below which its messages belong to the read. */
export interface ReadSegment<T> {
  readonly entry: T;
  /** Messages at or after this offset are not inherited; `null` for the stream being read (unbounded). */
  readonly bound: Offset | null;
}

/**
 * The segments a read of a fork walks: `chain` is the stream read followed by its ancestors, nearest first; each
 * ancestor is bounded by the smallest fork offset below it (an ancestor's messages beyond any descendant's fork point
 * are not part of the read). Returned root first, so the messages come in offset order.
 */
export function readSegments<T extends { readonly fork: ForkInfo | null }>(
  chain: readonly T[],
): ReadSegment<T>[] {
  const segments: ReadSegment<T>[] = [];
  let bound: Offset | null = null;
  for (let i = 0; i < chain.length; i++) {
    const entry = chain[i]!;
    segments.push({ entry, bound });
    const offset = entry.fork?.offset;
    if (offset !== undefined && (bound === null || compareOffsets(offset, bound) < 0)) bound = offset;
  }
  return segments.reverse();
}
