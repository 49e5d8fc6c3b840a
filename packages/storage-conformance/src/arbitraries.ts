import { formatOffset } from '@streamkeep/storage';
import fc from 'fast-check';
import { ManualClock } from './harness.js';

// Small domains on purpose: with 3 names, 2 producers and payloads of a few bytes, random commands collide on the
// same streams and reach the interesting states (closed, expired, forked, tombstoned, full) within a short run.

/**
 * Stream names. `\uFFFD` and `\u{1F600}` sort in opposite orders in UTF-16 and in UTF-8, so listings that sort by
 * JavaScript string order are caught.
 */
export const STREAM_NAMES: readonly string[] = ['a', '\uFFFD', '\u{1F600}'];

/** A stream name from {@link STREAM_NAMES}. */
export const streamNameArb: fc.Arbitrary<string> = fc.constantFrom(...STREAM_NAMES);

/** Canonical content types of created streams; `application/json` switches forks' sub-offsets to message counts. */
export const CONTENT_TYPES: readonly string[] = [
  'text/plain',
  'application/json',
  'application/octet-stream',
];

/** A content type as a caller writes it: mostly canonical, sometimes with case and parameters to normalise away. */
export const contentTypeArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('Text/Plain; charset=utf-8', ' APPLICATION/JSON ', 'text/plain;x=1'),
  },
);

/** A small payload (0–5 bytes); empty messages are legal and advance only the message count. */
export const payloadArb: fc.Arbitrary<Uint8Array> = fc.uint8Array({ maxLength: 5 });

/**
 * Payload sizes where storage formats change behaviour: page and buffer sizes (4 KiB), write-out and chunk
 * thresholds (64 KiB) and 1 MiB, each with its neighbours on both sides.
 */
export const BOUNDARY_PAYLOAD_SIZES: readonly number[] = [
  4095, 4096, 4097, 65_535, 65_536, 65_537, 1_048_575, 1_048_576, 1_048_577,
];

/** `size` bytes of a pattern that starts at `seed`: no run of equal bytes, cheap to make even at 1 MiB. */
export function patternPayload(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (seed + i * 31 + (i >>> 8)) & 0xff;
  // Counterexamples print the recipe, not a megabyte of numbers.
  Object.defineProperty(out, fc.toStringMethod, { value: () => `patternPayload(${size}, ${seed})` });
  return out;
}

/**
 * A payload of any size the contract allows: mostly 0–5 bytes (so that streams collide on offsets and limits),
 * sometimes up to 600 bytes, rarely one of the {@link BOUNDARY_PAYLOAD_SIZES} up to just over 1 MiB (random bytes
 * are replaced by a pattern there, which generates and shrinks fast).
 */
export const sizedPayloadArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 180, arbitrary: payloadArb },
  { weight: 18, arbitrary: fc.uint8Array({ minLength: 6, maxLength: 600 }) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(...BOUNDARY_PAYLOAD_SIZES), fc.nat(255))
      .map(([size, seed]) => patternPayload(size, seed)),
  },
);

/** A batch of 0–3 messages of {@link sizedPayloadArb}. */
export const messagesArb: fc.Arbitrary<Uint8Array[]> = fc.array(sizedPayloadArb, { maxLength: 3 });

/** A non-empty batch of 1–3 messages of {@link sizedPayloadArb}. */
export const nonEmptyMessagesArb: fc.Arbitrary<Uint8Array[]> = fc.array(sizedPayloadArb, {
  minLength: 1,
  maxLength: 3,
});

/** A batch of 0–3 small messages ({@link payloadArb}). */
export const smallMessagesArb: fc.Arbitrary<Uint8Array[]> = fc.array(payloadArb, { maxLength: 3 });

/**
 * `Stream-Seq` values. They include pairs whose UTF-16 and UTF-8 orders differ (`\uE000` vs `\u{1F600}`) and the
 * classic `"10" < "2"` byte-order case.
 */
export const streamSeqArb: fc.Arbitrary<string> = fc.constantFrom(
  '1',
  '2',
  '09',
  '10',
  'a',
  '\uE000',
  '\u{1F600}',
);

/** An optional `Stream-Seq` (absent most of the time). */
export const optionalStreamSeqArb: fc.Arbitrary<string | undefined> = fc.option(streamSeqArb, {
  freq: 3,
  nil: undefined,
});

/** Producer ids. */
export const producerIdArb: fc.Arbitrary<string> = fc.constantFrom('p', 'q');

/** A producer identity with small epochs and sequence numbers, so that duplicates, gaps and fencing all occur. */
export const producerIdentityArb: fc.Arbitrary<{ id: string; epoch: number; seq: number }> = fc.record({
  id: producerIdArb,
  epoch: fc.integer({ min: 0, max: 2 }),
  seq: fc.integer({ min: 0, max: 3 }),
});

/** Sliding TTLs in seconds, short enough that the kit's time steps cross them. */
export const ttlSecondsArb: fc.Arbitrary<number> = fc.constantFrom(0, 1, 2, 5);

/** Absolute deadlines near the start of every run ({@link ManualClock.DEFAULT_START}). */
export const expiresAtArb: fc.Arbitrary<number> = fc
  .constantFrom(500, 2_000, 6_000)
  .map((d) => ManualClock.DEFAULT_START + d);

/** An expiry choice: none, a sliding TTL, or an absolute deadline. */
export type ExpiryChoice =
  | { readonly ttlSeconds?: undefined; readonly expiresAt?: undefined }
  | { readonly ttlSeconds: number; readonly expiresAt?: undefined }
  | { readonly ttlSeconds?: undefined; readonly expiresAt: number };

/** Mostly no expiry; otherwise a sliding TTL or an absolute deadline. */
export const expiryArb: fc.Arbitrary<ExpiryChoice> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({}) },
  { weight: 1, arbitrary: ttlSecondsArb.map((ttlSeconds) => ({ ttlSeconds })) },
  { weight: 1, arbitrary: expiresAtArb.map((expiresAt) => ({ expiresAt })) },
);

/** Time steps: around the TTLs and deadlines above, plus one past the 7-day producer-state idle limit. */
export const timeStepArb: fc.Arbitrary<number> = fc.constantFrom(
  1,
  499,
  1_000,
  2_500,
  7 * 24 * 60 * 60 * 1000 + 1,
);

/** Any concrete offset near the start of a stream: on, between or beyond message boundaries. */
export const concreteOffsetArb: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 16 }))
  .map(([s, b]) => formatOffset(s, b));

/** Offsets the contract rejects with `INVALID_OFFSET`. */
export const malformedOffsetArb: fc.Arbitrary<string> = fc.constantFrom(
  '',
  'abc',
  '-2',
  'NOW',
  '0000000000000000_000000000000000A',
  '0000000000000000-0000000000000000',
  ' 0000000000000000_0000000000000000',
);

/**
 * Where a read starts: a sentinel, one of the stream's own message boundaries (picked by index at run time), an
 * arbitrary concrete offset, or a malformed string.
 */
export type OffsetChoice =
  | { readonly kind: 'start' }
  | { readonly kind: 'now' }
  | { readonly kind: 'boundary'; readonly index: number }
  | { readonly kind: 'raw'; readonly offset: string };

export const offsetChoiceArb: fc.Arbitrary<OffsetChoice> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'start' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'now' as const }) },
  { weight: 4, arbitrary: fc.nat(8).map((index) => ({ kind: 'boundary' as const, index })) },
  { weight: 2, arbitrary: concreteOffsetArb.map((offset) => ({ kind: 'raw' as const, offset })) },
  { weight: 1, arbitrary: malformedOffsetArb.map((offset) => ({ kind: 'raw' as const, offset })) },
);

/** An optional read budget in bytes (0 still returns one message). */
export const maxBytesArb: fc.Arbitrary<number | undefined> = fc.option(
  fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0, max: 8 }) },
    { weight: 1, arbitrary: fc.integer({ min: 9, max: 1200 }) },
    { weight: 1, arbitrary: fc.constantFrom(4096, 65_536, 1_048_576) },
  ),
  { freq: 2, nil: undefined },
);

/** Byte limits for a run: mostly unlimited, sometimes tight enough to be hit by a handful of small messages. */
export const limitsArb: fc.Arbitrary<{ maxTotalBytes?: number; maxStreamBytes?: number }> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({}) },
  {
    weight: 1,
    arbitrary: fc
      .record({
        maxTotalBytes: fc.integer({ min: 8, max: 40 }),
        maxStreamBytes: fc.integer({ min: 4, max: 24 }),
      })
      .map((l) => l),
  },
  { weight: 1, arbitrary: fc.integer({ min: 4, max: 24 }).map((maxStreamBytes) => ({ maxStreamBytes })) },
  { weight: 1, arbitrary: fc.integer({ min: 8, max: 40 }).map((maxTotalBytes) => ({ maxTotalBytes })) },
  // Around the larger payloads: a 4 KiB or 64 KiB message fits or does not depending on what is stored already.
  {
    weight: 1,
    arbitrary: fc.record({
      maxTotalBytes: fc.integer({ min: 4_000, max: 140_000 }),
      maxStreamBytes: fc.integer({ min: 600, max: 70_000 }),
    }),
  },
);
