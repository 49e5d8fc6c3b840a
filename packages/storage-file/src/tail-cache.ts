import type { MessageIndex } from './message-index.js';

/** Bytes counted for each chunk beyond its capacity: the Buffer object, its backing store record, our record. */
export const CHUNK_OVERHEAD = 256;
const MAX_CHUNK = 64 * 1024;
/** Chunk buffers are carved out of slabs of this size (smaller for small budgets). */
const SLAB_BYTES = 256 * 1024;

/** A run of consecutive messages of one stream, copied back to back into one buffer. */
interface Chunk {
  readonly buf: Buffer;
  /** Local index of the first message. */
  readonly first: number;
  /** Cumulative payload bytes of the stream before `first` (where `buf[0]` lies in the stream's payload). */
  readonly base: number;
  count: number;
  used: number;
  /** Bytes counted against the caps: capacity plus {@link CHUNK_OVERHEAD}. */
  readonly cost: number;
}

/**
 * The cached suffix of one stream's messages: chunks covering local messages `[first, end)`, contiguous, ending at
 * the index tail the last append left. Message boundaries come from the stream's {@link MessageIndex}, so a cached
 * message costs its bytes and nothing else.
 */
export class StreamTail {
  chunks: Chunk[] = [];
  head = 0;
  /** Local index after the last cached message. */
  end = 0;
  bytes = 0;

  get first(): number {
    const c = this.chunks[this.head];
    return c === undefined ? this.end : c.first;
  }

  get empty(): boolean {
    return this.head >= this.chunks.length;
  }
}

/**
 * Keeps the just-committed messages of recently appended streams in memory, so that readers following a tail are
 * served without I/O. Bounded by a per-stream and a global byte budget: a stream over its own budget loses its oldest
 * chunks; over the global budget, the least recently appended stream loses its oldest chunks first. Each chunk is
 * dropped at most once, so an append costs O(1) amortised. Reads copy out of the chunks (no view of a chunk ever
 * leaves the cache), so an evicted chunk's buffer can be reused at once instead of becoming garbage: under a steady
 * append load the cache allocates nothing and leaves nothing for the collector.
 */
export class TailCache {
  /** Streams with cached chunks, least recently appended first. */
  private readonly lru = new Map<StreamTail, true>();
  bytes = 0;
  /** The first chunk's capacity: small streams stay cheap, and a small per-stream budget still holds several. */
  private readonly minChunk: number;
  /** Chunks grow by doubling up to this, so that a stream's budget holds at least two of them. */
  private readonly maxChunk: number;
  /**
   * Free chunk buffers by capacity, and the slab each capacity carves new ones from. Chunks allocated one by one and
   * dropped to the collector churned the process heap under load (measured: 100 streams loaded round-robin with a
   * 1 MiB cache, +12 MiB RSS against +3 MiB with slabs). Slabs are kept and their chunks reused, so the memory held
   * is the budget's high-water mark plus partly carved slabs, at most `maxBytes` plus {@link TailCache.slabSlack};
   * beyond that, chunks are plain allocations again.
   */
  private readonly free = new Map<number, Buffer[]>();
  private readonly slabs = new Map<number, { buf: Buffer; used: number }>();
  private slabBytes = 0;
  /** Chunks allocated outside the slabs (left to the collector when dropped). */
  private readonly plain = new WeakSet<Buffer>();
  private readonly slabSize: number;

  constructor(
    readonly maxBytes: number,
    readonly maxStreamBytes: number,
  ) {
    this.minChunk = Math.max(64, Math.min(1024, maxStreamBytes >>> 3));
    this.maxChunk = Math.max(this.minChunk, Math.min(MAX_CHUNK, (maxStreamBytes >>> 1) - CHUNK_OVERHEAD));
    this.slabSize = Math.max(this.maxChunk, Math.min(SLAB_BYTES, maxBytes >>> 3));
  }

  /** Slab memory allowed beyond `maxBytes`: partly carved slabs and free chunks of other capacities. */
  get slabSlack(): number {
    return 4 * this.slabSize;
  }

  /** The capacity of a new chunk: a power-of-two multiple of the smallest, at most the largest, at least `want`. */
  private capacity(want: number, len: number): number {
    if (len > this.maxChunk) return len;
    let cap = this.minChunk;
    while (cap < want && cap < this.maxChunk) cap *= 2;
    return Math.min(cap, this.maxChunk);
  }

  private take(cap: number): Buffer {
    const reused = this.free.get(cap)?.pop();
    if (reused !== undefined) return reused;
    let slab = this.slabs.get(cap);
    if (slab === undefined || slab.used + cap > slab.buf.byteLength) {
      if (cap > this.maxChunk || this.slabBytes + this.slabSize > this.maxBytes + this.slabSlack) {
        const buf = Buffer.allocUnsafeSlow(cap);
        this.plain.add(buf);
        return buf;
      }
      slab = { buf: Buffer.allocUnsafeSlow(this.slabSize - (this.slabSize % cap)), used: 0 };
      this.slabBytes += slab.buf.byteLength;
      this.slabs.set(cap, slab);
    }
    const buf = slab.buf.subarray(slab.used, slab.used + cap);
    slab.used += cap;
    return buf;
  }

  private give(buf: Buffer): void {
    if (this.plain.has(buf)) return;
    const list = this.free.get(buf.byteLength);
    if (list === undefined) this.free.set(buf.byteLength, [buf]);
    else list.push(buf);
  }

  /** Streams holding cached messages. */
  get streams(): number {
    return this.lru.size;
  }

  get enabled(): boolean {
    return this.maxBytes > 0 && this.maxStreamBytes > 0;
  }

  /**
   * Records `messages`, committed as local messages `start, start + 1, …`, with `before` payload bytes of the stream
   * preceding them. Call only once they are acknowledged: whatever is cached is served as committed.
   */
  add(tail: StreamTail, start: number, before: number, messages: readonly Uint8Array[]): void {
    if (messages.length === 0) return;
    if (tail.end !== start) this.clear(tail);
    let base = before;
    let k = start;
    for (const m of messages) {
      const len = m.byteLength;
      if (len + CHUNK_OVERHEAD > this.maxStreamBytes) {
        // Too large to cache: the cache holds a contiguous suffix, so it restarts after this message.
        this.clear(tail);
        k++;
        base += len;
        tail.end = k;
        continue;
      }
      let c = tail.empty ? undefined : tail.chunks[tail.chunks.length - 1];
      if (c === undefined || c.buf.byteLength - c.used < len) {
        const prev = c === undefined ? 0 : c.buf.byteLength;
        const cap = this.capacity(Math.max(prev * 2, len), len);
        c = {
          buf: this.take(cap),
          first: k,
          base,
          count: 0,
          used: 0,
          cost: cap + CHUNK_OVERHEAD,
        };
        tail.chunks.push(c);
        tail.bytes += c.cost;
        this.bytes += c.cost;
      }
      c.buf.set(m, c.used);
      c.used += len;
      c.count++;
      k++;
      base += len;
      tail.end = k;
    }
    while (tail.bytes > this.maxStreamBytes && !tail.empty) this.dropOldest(tail);
    if (tail.empty) {
      this.lru.delete(tail);
    } else {
      this.lru.delete(tail);
      this.lru.set(tail, true);
    }
    while (this.bytes > this.maxBytes) {
      const victim = this.lru.keys().next().value;
      if (victim === undefined) break;
      this.dropOldest(victim);
      if (victim.empty) this.lru.delete(victim);
    }
  }

  /**
   * Messages `[i, j)`, copied into one new buffer and sliced into views of it, or `undefined` unless all of them are
   * cached. `index` is the stream's index (message sizes).
   */
  get(tail: StreamTail | null, index: MessageIndex, i: number, j: number): Uint8Array[] | undefined {
    if (tail === null || tail.empty || i < tail.first || j > tail.end || i >= j) return undefined;
    const chunks = tail.chunks;
    let ci = chunks.length - 1;
    while (chunks[ci]!.first > i) ci--;
    const start = index.before(i);
    const buf = Buffer.allocUnsafe(index.endOf(j - 1) - start);
    // Copy chunk by chunk: messages never span chunks, so each chunk's share of the range is contiguous.
    let w = 0;
    for (let k = i; k < j; ) {
      const c = chunks[ci++]!;
      const last = Math.min(j, c.first + c.count);
      const from = index.before(k) - c.base;
      const to = index.endOf(last - 1) - c.base;
      c.buf.copy(buf, w, from, to);
      w += to - from;
      k = last;
    }
    const out = new Array<Uint8Array>(j - i);
    let at = 0;
    for (let k = i; k < j; k++) {
      const end = index.endOf(k) - start;
      out[k - i] = buf.subarray(at, end);
      at = end;
    }
    return out;
  }

  /** Forgets a stream's cache (deleted, or its cached suffix no longer continues). */
  clear(tail: StreamTail | null): void {
    if (tail === null) return;
    while (!tail.empty) this.dropOldest(tail);
    this.lru.delete(tail);
  }

  private dropOldest(tail: StreamTail): void {
    const c = tail.chunks[tail.head]!;
    tail.chunks[tail.head] = undefined as unknown as Chunk;
    tail.head++;
    tail.bytes -= c.cost;
    this.bytes -= c.cost;
    this.give(c.buf);
    if (tail.head === tail.chunks.length) {
      tail.chunks = [];
      tail.head = 0;
    } else if (tail.head >= 16 && tail.head * 2 >= tail.chunks.length) {
      tail.chunks = tail.chunks.slice(tail.head);
      tail.head = 0;
    }
  }
}
