import { createRequire } from 'node:module';
import { crc32 as zlibCrc32 } from 'node:zlib';

/** CRC-32 (IEEE, the checksum of zlib and of our log format) of `data`, continuing from `value`. */
export type Crc32 = (data: Uint8Array, value?: number) => number;

/**
 * The CRC of ranges from {@link NATIVE_FROM} bytes up: `@node-rs/crc32` (a SIMD implementation, PCLMULQDQ on x86-64;
 * about 3× `zlib.crc32` on 64 KiB, which matters when appending and recovering large messages), or `zlib.crc32` on a
 * platform without a prebuilt binding. Both compute the same checksum, so the on-disk format never depends on which
 * one ran; the native one is checked against a known value before it is used.
 */
export const crc32: Crc32 = loadSimdCrc32() ?? zlibCrc32;

/** Whether {@link crc32} is the SIMD implementation (for tests and the benchmark's notes). */
export const simdCrc32: boolean = crc32 !== zlibCrc32;

function loadSimdCrc32(): Crc32 | undefined {
  try {
    const native = (
      createRequire(import.meta.url)('@node-rs/crc32') as {
        crc32(input: Uint8Array, initialState?: number): number;
      }
    ).crc32;
    // The standard check value of CRC-32/ISO-HDLC, and a continued computation.
    const check = new TextEncoder().encode('123456789');
    if (
      native(check) !== 0xcbf43926 ||
      native(check.subarray(4), native(check.subarray(0, 4))) !== 0xcbf43926
    ) {
      return undefined;
    }
    return (data, value = 0) => native(data, value);
  } catch {
    return undefined;
  }
}

// Slice-by-16 tables for CRC-32 (IEEE, the polynomial of zlib.crc32): table k maps a byte to its CRC contribution
// k bytes further on.
const T = new Int32Array(256 * 16);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n]!;
  for (let k = 1; k < 16; k++) {
    c = T[c & 0xff]! ^ (c >>> 8);
    T[k * 256 + n] = c;
  }
}

/** Below this many bytes the JavaScript loop beats a native call (whose fixed cost dominates small inputs). */
const NATIVE_FROM = 512;

// The encoder checksums many ranges of the same chunk: one DataView serves them all. Only small buffers are kept, so
// that the cache never holds on to a large one (callers with large buffers pass their own view).
const CACHE_UP_TO = 256 * 1024;
let viewOf: Uint8Array | undefined;
let view: DataView | undefined;

/**
 * `crc32(b.subarray(start, end), value)`, computed in JavaScript without the view allocation for short ranges (records
 * of small messages, where a native call's overhead dominated recovery time) and with {@link crc32} otherwise.
 * The JavaScript loop reads 16 bytes as four little-endian words per step (slice-by-16).
 */
export function crc32Range(
  b: Uint8Array,
  start: number,
  end: number,
  value: number,
  /** A view of exactly `b`, for callers that checksum many ranges of one large buffer. */
  bView?: DataView,
): number {
  if (end - start >= NATIVE_FROM) return crc32(b.subarray(start, end), value);
  let dv = bView ?? view;
  if (dv === undefined || (bView === undefined && viewOf !== b)) {
    dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    if (b.byteLength <= CACHE_UP_TO) {
      view = dv;
      viewOf = b;
    }
  }
  let c = ~value;
  let i = start;
  const end16 = start + ((end - start) & ~15);
  for (; i < end16; i += 16) {
    c ^= dv.getInt32(i, true);
    const d = dv.getInt32(i + 4, true);
    const e = dv.getInt32(i + 8, true);
    const f = dv.getInt32(i + 12, true);
    c =
      T[3840 + (c & 0xff)]! ^
      T[3584 + ((c >>> 8) & 0xff)]! ^
      T[3328 + ((c >>> 16) & 0xff)]! ^
      T[3072 + (c >>> 24)]! ^
      T[2816 + (d & 0xff)]! ^
      T[2560 + ((d >>> 8) & 0xff)]! ^
      T[2304 + ((d >>> 16) & 0xff)]! ^
      T[2048 + (d >>> 24)]! ^
      T[1792 + (e & 0xff)]! ^
      T[1536 + ((e >>> 8) & 0xff)]! ^
      T[1280 + ((e >>> 16) & 0xff)]! ^
      T[1024 + (e >>> 24)]! ^
      T[768 + (f & 0xff)]! ^
      T[512 + ((f >>> 8) & 0xff)]! ^
      T[256 + ((f >>> 16) & 0xff)]! ^
      T[f >>> 24]!;
  }
  if (end - i >= 8) {
    c ^= dv.getInt32(i, true);
    const d = dv.getInt32(i + 4, true);
    c =
      T[1792 + (c & 0xff)]! ^
      T[1536 + ((c >>> 8) & 0xff)]! ^
      T[1280 + ((c >>> 16) & 0xff)]! ^
      T[1024 + (c >>> 24)]! ^
      T[768 + (d & 0xff)]! ^
      T[512 + ((d >>> 8) & 0xff)]! ^
      T[256 + ((d >>> 16) & 0xff)]! ^
      T[d >>> 24]!;
    i += 8;
  }
  for (; i < end; i++) c = T[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
