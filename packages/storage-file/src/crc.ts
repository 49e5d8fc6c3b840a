import { crc32 } from 'node:zlib';

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

/** Below this many bytes the JavaScript loop beats the native call (whose fixed cost dominates small inputs). */
const NATIVE_FROM = 512;

// The encoder checksums many ranges of the same chunk: one DataView serves them all. Only small buffers are kept, so
// that the cache never holds on to a large one (callers with large buffers pass their own view).
const CACHE_UP_TO = 256 * 1024;
let viewOf: Uint8Array | undefined;
let view: DataView | undefined;

/**
 * `zlib.crc32(b.subarray(start, end), value)` without the view allocation, computed in JavaScript for short ranges
 * (records of small messages, where the native call's overhead dominated recovery time) and natively otherwise.
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
