import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { keepPending } from '../src/carry.js';
import type { StreamEntry } from '../src/stream-entry.js';

// Groups made durable by the journal wait in `entry.pending` for their log write (src/carry.ts: keepPending).

const SEED = Number(process.env.STREAMKEEP_PENDING_SEED ?? 20261207);

type PendingState = Pick<StreamEntry, 'pending' | 'pendingBuf' | 'pendingBufUsed'>;

/** One step: a group of parts (each a view of a large shared buffer, or a buffer of its own), or a flush. */
const step = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.array(
      fc.record({
        shared: fc.boolean(),
        size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 300, max: 70_000 })),
      }),
      { minLength: 1, maxLength: 4 },
    ),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20 }).map((n) => ({ flush: n })) },
);

describe('keepPending', () => {
  it('keeps the bytes in order, never as a small view of a shared buffer, never overwritten, in bounded memory', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const entry: PendingState = { pending: [], pendingBuf: null, pendingBufUsed: 0 };
        // What the pending parts must hold: the bytes of the groups not yet flushed, in order.
        let expected = Buffer.alloc(0);
        // Parts handed to a flush (a write in flight) with the bytes they held then.
        const handedOut: [Uint8Array, Uint8Array][] = [];
        const shared = new Uint8Array(1 << 20); // a buffer many allocations share (as Node's pool is)
        let fill = 0;
        for (const s of steps) {
          if ('flush' in s) {
            const n = Math.min(s.flush, entry.pending.length);
            const flushed = entry.pending.splice(0, n);
            for (const p of flushed) handedOut.push([p, p.slice()]);
            expected = expected.subarray(flushed.reduce((a, p) => a + p.byteLength, 0));
            if (entry.pending.length === 0) {
              // What forgetPending does once nothing is pending.
              entry.pendingBuf = null;
              entry.pendingBufUsed = 0;
            }
            continue;
          }
          const parts = s.map(({ shared: isShared, size }) => {
            let p: Uint8Array;
            if (isShared && size * 2 <= shared.byteLength) {
              const at = (fill * 7919) % (shared.byteLength - size + 1);
              p = shared.subarray(at, at + size);
            } else {
              p = new Uint8Array(size);
            }
            p.fill(fill & 0xff);
            if (p.byteLength > 0) p[p.byteLength - 1] = size & 0xff;
            fill++;
            return p;
          });
          expected = Buffer.concat([expected, ...parts]);
          keepPending(entry as StreamEntry, parts);
          // The caller's buffers are reused at once (the shared one is refilled by later allocations).
          shared.fill(0xee);
        }
        expect(Buffer.concat(entry.pending).equals(expected)).toBe(true);
        for (const [view, bytes] of handedOut) expect(Buffer.from(view).equals(bytes)).toBe(true);
        // Memory: no pending part keeps the shared buffer alive; the stream's own buffers are at most about twice
        // what they hold, plus two of the largest.
        const buffers = new Set(entry.pending.map((p) => p.buffer));
        expect(buffers.has(shared.buffer)).toBe(false);
        const ownBytes = [...buffers].reduce((a, b) => a + b.byteLength, 0);
        const pendingBytes = entry.pending.reduce((a, p) => a + p.byteLength, 0);
        expect(ownBytes).toBeLessThanOrEqual(2 * pendingBytes + 2 * 70_000 + 1024);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('passes a buffer that is mostly its own through, and copies a small view of a larger one', () => {
    const entry: PendingState = { pending: [], pendingBuf: null, pendingBufUsed: 0 };
    const own = Buffer.alloc(100_000, 1);
    const pool = Buffer.alloc(8192, 2);
    keepPending(entry as StreamEntry, [own, pool.subarray(10, 130), pool.subarray(200, 300)]);
    expect(entry.pending[0]).toBe(own);
    // The two small views are copied into one part of the stream's own buffer.
    expect(entry.pending).toHaveLength(2);
    expect(entry.pending[1]?.buffer).not.toBe(pool.buffer);
    expect(entry.pending[1]?.byteLength).toBe(220);
  });
});
