import type { MessageIndex } from './message-index.js';

/** Bytes counted for each chunk beyond its capacity: the Buffer object, its backing store record, our record. */
export const CHUNK_OVERHEAD = 256;
const MAX_CHUNK = 64 * 1024;

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
 * dropped at most once, so an append costs O(1) amortised.
 */
export class TailCache {
  /** Streams with cached chunks, least recently appended first. */
  private readonly lru = new Map<StreamTail, true>();
  bytes = 0;
  /** The first chunk's capacity: small streams stay cheap, and a small per-stream budget still holds several. */
  private readonly minChunk: number;
  /** Chunks grow by doubling up to this, so that a stream's budget holds at least two of them. */
  private readonly maxChunk: number;

  constructor(
    readonly maxBytes: number,
    readonly maxStreamBytes: number,
  ) {
    this.minChunk = Math.max(64, Math.min(4096, maxStreamBytes >>> 3));
    this.maxChunk = Math.max(this.minChunk, Math.min(MAX_CHUNK, (maxStreamBytes >>> 1) - CHUNK_OVERHEAD));
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
        const cap =
          len > this.maxChunk ? len : Math.min(this.maxChunk, Math.max(this.minChunk, prev * 2, len));
        c = {
          buf: Buffer.allocUnsafeSlow(cap),
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
   * Messages `[i, j)` as views into the cache, or `undefined` unless all of them are cached. `index` is the stream's
   * index (message sizes).
   */
  get(tail: StreamTail | null, index: MessageIndex, i: number, j: number): Uint8Array[] | undefined {
    if (tail === null || tail.empty || i < tail.first || j > tail.end || i >= j) return undefined;
    const chunks = tail.chunks;
    let ci = chunks.length - 1;
    while (chunks[ci]!.first > i) ci--;
    let c = chunks[ci]!;
    const out = new Array<Uint8Array>(j - i);
    let at = index.before(i) - c.base;
    for (let k = i; k < j; k++) {
      if (k >= c.first + c.count) {
        c = chunks[++ci]!;
        at = 0;
      }
      const end = index.endOf(k) - c.base;
      out[k - i] = c.buf.subarray(at, end);
      at = end;
    }
    return out;
  }

  /** Forgets a stream's cache (deleted, or its cached suffix no longer continues). */
  clear(tail: StreamTail): void {
    while (!tail.empty) this.dropOldest(tail);
    this.lru.delete(tail);
  }

  private dropOldest(tail: StreamTail): void {
    const c = tail.chunks[tail.head]!;
    tail.chunks[tail.head] = undefined as unknown as Chunk;
    tail.head++;
    tail.bytes -= c.cost;
    this.bytes -= c.cost;
    if (tail.head === tail.chunks.length) {
      tail.chunks = [];
      tail.head = 0;
    } else if (tail.head >= 16 && tail.head * 2 >= tail.chunks.length) {
      tail.chunks = tail.chunks.slice(tail.head);
      tail.head = 0;
    }
  }
}
