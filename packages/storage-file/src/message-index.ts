const CHUNK_SHIFT = 16;
const CHUNK = 1 << CHUNK_SHIFT;
const MASK = CHUNK - 1;
const FIRST = 8;
/** Shared by every empty index; never written (the first push replaces it). */
const NONE = new Float64Array(0);

/**
 * The in-memory offset index of one stream's local messages: for message `i`, the file position of its payload and
 * the cumulative payload bytes up to and including it. Two `Float64Array`s in chunks of 65,536 entries (the first
 * chunk grows by doubling), so the cost is 16 bytes per message with no per-message object and no large copies when
 * growing.
 */
export class MessageIndex {
  // Allocated on the first push: most streams of a large root are never appended to while loaded.
  private pos: Float64Array[] = [NONE];
  private end: Float64Array[] = [NONE];
  count = 0;

  push(position: number, cumulativeEnd: number): void {
    const i = this.count;
    const c = i >>> CHUNK_SHIFT;
    const k = i & MASK;
    let p = this.pos[c];
    if (p === undefined) {
      p = new Float64Array(CHUNK);
      this.pos.push(p);
      this.end.push(new Float64Array(CHUNK));
    } else if (k >= p.length) {
      const np = new Float64Array(Math.min(CHUNK, Math.max(FIRST, p.length * 2)));
      np.set(p);
      this.pos[c] = np;
      p = np;
      const ne = new Float64Array(np.length);
      ne.set(this.end[c]!);
      this.end[c] = ne;
    }
    p[k] = position;
    this.end[c]![k] = cumulativeEnd;
    this.count = i + 1;
  }

  /** Drops messages from `count` on (used to undo a failed commit). */
  truncate(count: number): void {
    if (count < this.count) this.count = count;
  }

  position(i: number): number {
    return this.pos[i >>> CHUNK_SHIFT]![i & MASK]!;
  }

  /** Payload bytes of messages `0..i` inclusive. */
  endOf(i: number): number {
    return this.end[i >>> CHUNK_SHIFT]![i & MASK]!;
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
    for (const a of this.pos) n += a.byteLength * 2;
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
