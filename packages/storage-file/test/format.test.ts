import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32Range, crc32 as fastCrc32, simdCrc32 } from '../src/crc.js';
import { type CommitMeta, encodeLogHeader, GroupEncoder, LOG_HEADER_SIZE } from '../src/format.js';
import type { FileHandleLike } from '../src/fs.js';
import { scanLog } from '../src/scan.js';

const SEED = Number(process.env.STREAMKEEP_FORMAT_SEED ?? 4242);

/** A read-only in-memory file for the scanner. */
function memFile(bytes: Uint8Array): FileHandleLike {
  return {
    async read(buffer, offset, length, position) {
      const n = Math.max(0, Math.min(length, bytes.byteLength - position));
      buffer.set(bytes.subarray(position, position + n), offset);
      return { bytesRead: n };
    },
    writev: async () => ({ bytesWritten: 0 }),
    datasync: async () => undefined,
    sync: async () => undefined,
    truncate: async () => undefined,
    stat: async () => ({ size: bytes.byteLength }),
    close: async () => undefined,
  };
}

const metaArb: fc.Arbitrary<CommitMeta> = fc.record({
  closed: fc.boolean(),
  updatedAt: fc.option(fc.integer({ min: 0, max: 2 ** 45 }), { nil: null }),
  expiresAt: fc.option(fc.integer({ min: -(2 ** 45), max: 2 ** 45 }), { nil: null }),
  lastSeq: fc.option(fc.string({ unit: 'grapheme', maxLength: 8 }), { nil: null }),
  producer: fc.option(
    fc.record({
      id: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }),
      state: fc.record({
        epoch: fc.nat(),
        lastSeq: fc.nat(),
        updatedAt: fc.constant(0),
      }),
    }),
    { nil: undefined },
  ),
});
// Mostly small messages, some past the 16 KiB threshold at which the encoder passes buffers through uncopied.
const messageArb = fc.oneof(
  { weight: 8, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 16_000, max: 70_000 }).map((n) => new Uint8Array(n).fill(n & 255)),
  },
);
const commitsArb = fc.array(fc.record({ meta: metaArb, messages: fc.array(messageArb, { maxLength: 4 }) }), {
  minLength: 1,
  maxLength: 6,
});

function encode(commits: { meta: CommitMeta; messages: Uint8Array[] }[], salt: number) {
  const enc = new GroupEncoder(LOG_HEADER_SIZE, salt);
  for (const c of commits) enc.commit(c.meta, c.messages);
  const parts = [encodeLogHeader(salt), ...enc.finish()];
  return { bytes: Buffer.concat(parts), positions: enc.positions };
}

async function scan(bytes: Uint8Array, salt: number) {
  const messages: [number, number][] = [];
  const metas: CommitMeta[] = [];
  const result = await scanLog(memFile(bytes), bytes.byteLength, salt, {
    message: (p, n) => messages.push([p, n]),
    commit: (closed, updatedAt, expiresAt, lastSeq, producer) =>
      metas.push({ closed, updatedAt, expiresAt, lastSeq, producer }),
    touch: () => undefined,
  });
  return { result, messages, metas };
}

describe('record format', () => {
  it('crc32Range equals zlib.crc32 for every length and seed', () => {
    fc.assert(
      // Non-empty ranges (the encoder never checksums an empty one; node's crc32 returns 0 for empty input).
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 600 }), fc.nat(), fc.nat(), (b, seed, cut) => {
        const start = cut % b.byteLength;
        expect(crc32Range(b, start, b.byteLength, seed >>> 0)).toBe(crc32(b.subarray(start), seed >>> 0));
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('crc32Range agrees with zlib.crc32 on views into larger buffers, with and without a DataView', () => {
    const backing = new Uint8Array(2048);
    for (let i = 0; i < backing.length; i++) backing[i] = (i * 7919) >>> 3;
    const b = backing.subarray(13, 1500);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let len = 1; len <= 700; len++) {
      for (const start of [0, 1, 7, 100]) {
        const want = crc32(b.subarray(start, start + len), 0x1234_5678);
        expect(crc32Range(b, start, start + len, 0x1234_5678)).toBe(want);
        expect(crc32Range(b, start, start + len, 0x1234_5678, dv)).toBe(want);
        // Another buffer in between must not be checksummed through the cached view of the first.
        expect(crc32Range(backing, start, start + len, 7)).toBe(
          crc32(backing.subarray(start, start + len), 7),
        );
      }
    }
  });

  it('the SIMD CRC (where the platform has one) equals zlib.crc32 on large views and continued values', () => {
    // On the Linux x64 machines we test on, the prebuilt @node-rs/crc32 binding must load; elsewhere zlib serves.
    if (process.platform === 'linux' && process.arch === 'x64') expect(simdCrc32).toBe(true);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200_000 }),
        fc.nat(255),
        fc.nat(),
        fc.nat(),
        (len, offset, seed, fill) => {
          const backing = new Uint8Array(offset + len + 3);
          for (let i = 0; i < backing.length; i++) backing[i] = (i * 2654435761 + fill) >>> 24;
          const view = backing.subarray(offset, offset + len);
          expect(fastCrc32(view, seed >>> 0)).toBe(crc32(view, seed >>> 0));
          const half = len >>> 1;
          expect(fastCrc32(view.subarray(half), fastCrc32(view.subarray(0, half)))).toBe(crc32(view));
        },
      ),
      { seed: SEED, numRuns: 60 },
    );
  });

  it('round-trips commits: every message at its position, every commit state in order', async () => {
    await fc.assert(
      fc.asyncProperty(commitsArb, fc.nat(), async (commits, salt) => {
        const { bytes, positions } = encode(commits, salt);
        const { result, messages, metas } = await scan(bytes, salt);
        expect(result).toEqual({ kind: 'ok', end: bytes.byteLength });
        const all = commits.flatMap((c) => c.messages);
        expect(messages.map(([p]) => p)).toEqual(positions);
        messages.forEach(([p, n], i) => {
          expect(Buffer.from(bytes.subarray(p, p + n)).equals(Buffer.from(all[i]!))).toBe(true);
        });
        expect(metas).toEqual(
          commits.map((c) => ({
            ...c.meta,
            producer:
              c.meta.producer === undefined
                ? undefined
                : {
                    id: c.meta.producer.id,
                    state: { ...c.meta.producer.state, updatedAt: c.meta.updatedAt ?? 0 },
                  },
          })),
        );
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('never accepts a record with a flipped bit: the scan stops at or before it', async () => {
    await fc.assert(
      fc.asyncProperty(
        commitsArb,
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        async (commits, salt, at, bit) => {
          const { bytes } = encode(commits, salt);
          const i = LOG_HEADER_SIZE + (at % (bytes.byteLength - LOG_HEADER_SIZE));
          const damaged = Buffer.from(bytes);
          damaged[i]! ^= 1 << bit;
          const { result, messages } = await scan(damaged, salt);
          expect(result.kind).not.toBe('ok');
          // Whatever was accepted lies wholly before the damaged byte and is byte-identical to the original.
          for (const [p, n] of messages) {
            if (result.kind === 'torn' || (result.kind === 'corrupt' && p + n <= result.at)) {
              expect(
                Buffer.from(damaged.subarray(p, p + n)).equals(Buffer.from(bytes.subarray(p, p + n))),
              ).toBe(true);
            }
          }
          const stop =
            result.kind === 'torn' ? result.end : result.kind === 'corrupt' ? result.at : bytes.byteLength;
          expect(stop).toBeLessThanOrEqual(i);
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('a log with another salt does not verify', async () => {
    const { bytes } = encode(
      [
        {
          meta: { closed: false, updatedAt: 1, expiresAt: null, lastSeq: null },
          messages: [new Uint8Array(3)],
        },
      ],
      1,
    );
    const { result, messages } = await scan(bytes, 2);
    expect(result.kind).toBe('torn');
    expect(messages).toEqual([]);
  });
});
