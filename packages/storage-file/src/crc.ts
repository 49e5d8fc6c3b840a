import { crc32 } from 'node:zlib';

// Slice-by-8 tables for CRC-32 (IEEE, the polynomial of zlib.crc32).
const T = new Int32Array(256 * 8);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n]!;
  for (let k = 1; k < 8; k++) {
    c = T[c & 0xff]! ^ (c >>> 8);
    T[k * 256 + n] = c;
  }
}

/** Below this many bytes the JavaScript loop beats the native call (whose fixed cost dominates small inputs). */
const NATIVE_FROM = 256;

/**
 * `zlib.crc32(b.subarray(start, end), value)` without the view allocation, computed in JavaScript for short ranges
 * (records of small messages, where the native call's overhead dominated recovery time) and natively otherwise.
 */
export function crc32Range(b: Uint8Array, start: number, end: number, value: number): number {
  if (end - start >= NATIVE_FROM) return crc32(b.subarray(start, end), value);
  let c = ~value;
  let i = start;
  const end8 = start + ((end - start) & ~7);
  for (; i < end8; i += 8) {
    c ^= b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
    c =
      T[1792 + (c & 0xff)]! ^
      T[1536 + ((c >>> 8) & 0xff)]! ^
      T[1280 + ((c >>> 16) & 0xff)]! ^
      T[1024 + (c >>> 24)]! ^
      T[768 + b[i + 4]!]! ^
      T[512 + b[i + 5]!]! ^
      T[256 + b[i + 6]!]! ^
      T[b[i + 7]!]!;
  }
  for (; i < end; i++) c = T[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
