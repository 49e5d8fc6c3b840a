const CHUNK_SHIFT = 16;
const CHUNK = 1 << CHUNK_SHIFT;
const MASK = CHUNK - 1;
/** Messages a small stream's index holds in a plain array before it moves to a typed one. */
const SMALL = 8;
/** Shared by every empty index; never written (the first push replaces it). */
const NONE: number[] = [];

/**
 * The in-memory offset index of one stream's local messages: for message `i`, the file position of its payload and
 * the cumulative payload bytes up to and including it, side by side in chunks of 65,536 messages. 16 bytes per
 * message, no per-message object, no large copies when growing. The first {@link SMALL} messages sit in a plain array
 * (a typed array costs ~250 bytes of objects before its first element): most streams are small, and spread writes
 * over many of them build one index per append; past that, `Float64Array` chunks (the first grows by doubling).
 */
export class MessageIndex {
  // Allocated on the first push: most streams of a large root are never appended to while loaded.
  private chunks: (Float64Array | number[])[] = [NONE];
  count = 0;

  push(position: number, cumulativeEnd: number): void {
    const i = this.count;
    const c = i >>> CHUNK_SHIFT;
    const k = (i & MASK) << 1;
    let d = this.chunks[c];
    if (d === undefined) {
      d = new Float64Array(CHUNK * 2);
      this.chunks.push(d);
    } else if (k >= d.length) {
      if (i < SMALL) {
        if (d === NONE) this.chunks[0] = [position, cumulativeEnd];
        else (d as number[]).push(position, cumulativeEnd);
        this.count = i + 1;
        return;
      }
      const nd = new Float64Array(Math.min(CHUNK * 2, Math.max(SMALL * 4, d.length * 2)));
      nd.set(d);
      this.chunks[c] = nd;
      d = nd;
    }
    d[k] = position;
    d[k + 1] = cumulativeEnd;
    this.count = i + 1;
  }

  /** Drops messages from `count` on (used to undo a failed commit). */
  truncate(count: number): void {
    if (count < this.count) this.count = count;
  }

  position(i: number): number {
    return this.chunks[i >>> CHUNK_SHIFT]![(i & MASK) << 1]!;
  }

  /** Payload bytes of messages `0..i` inclusive. */
  endOf(i: number): number {
    return this.chunks[i >>> CHUNK_SHIFT]![((i & MASK) << 1) + 1]!;
  }

  /** Payload bytes before message `i` (`i` may equal `count`). */
  before(i: number): number {
    return i === 0 ? 0 : this.endOf(i - 1);
  }

  size(i: number): number {
    return this.endOf(i) - this.before(i);
  }

  /** Bytes held by the typed arrays. */
  memoryBytes(): number {
    let n = 0;
    for (const a of this.chunks) n += a instanceof Float64Array ? a.byteLength : a.length * 8;
    return n;
  }

  /**
   * The largest `j` in `(i, limit]` such that messages `i..j-1` hold at most `maxBytes`, but at least `i + 1`
   * (a read always makes progress). Binary search over the cumulative sizes.
   */
  takeWithin(i: number, limit: number, maxBytes: number): number {
    if (i >= limit) return i;
    const base = this.before(i);
    let lo = i + 1;
    let hi = limit;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.endOf(mid - 1) - base <= maxBytes) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
