import { crc32 } from 'node:zlib';
import type { ForkInfo } from '@streamkeep/storage';
import { type CarriedRef, CatalogRecord } from './catalog.js';
import { crc32Range } from './crc.js';

/**
 * The catalog snapshot file, record by record (`snapshot.ts` holds the catalog it is read into).
 *
 * File layout, binary:
 *
 * header (32): magic `SKCAT\0\4\0` | record count u32 | crc32 of the header's other 28 bytes u32 |
 *              f64 where the carried region starts | f64 its length
 * f64 payload bytes of all streams
 * content-type table: u16 count, each u16 length + UTF-8
 * records: u8 flags | u8 flags2 | u32 salt | f64 createdAt | f64 bytes | f64 count | [f64 ttlSeconds]
 *          [f64 expiresAt] [f64 updatedAt] | u16 content type | u32 name length + UTF-8 |
 *          [u32 Stream-Seq length + UTF-8] | [fork: u32 source length + UTF-8 | u8 offset length + latin1 | u32 subOffset]
 *          [carried log: u32 length | u32 crc32 of its bytes]
 *   flags: 1 tombstone · 2 has a log · 4 created closed · 8 fork · 16 TTL · 32 deadline · 64 closed · 128 updatedAt;
 *   flags2: 1 Stream-Seq · 2 carried log (a small stream's log bytes, kept here instead of in a file: `carry.ts`)
 * trailer: crc32 of the content-type table and the records, u32
 * carried region: the carried logs' bytes, in the order of their records
 *
 * Earlier versions, still read: `SKCAT\0\3\0` (written by builds after 0.1.0, unreleased) has a 16-byte header (magic, count, crc32 of
 * both), no region, and each carried log's bytes inside its record (u32 length + the bytes); `SKCAT\0\2\0` (0.1.0) is
 * the same without carried logs. Their first checkpoint rewrites them in the current layout.
 */

export const CATALOG_MAGIC = Buffer.from('SKCAT\u0000\u0004\u0000', 'latin1');
export const CATALOG_MAGIC_3 = Buffer.from('SKCAT\u0000\u0003\u0000', 'latin1');
export const CATALOG_MAGIC_2 = Buffer.from('SKCAT\u0000\u0002\u0000', 'latin1');
export const HEADER = 32;
export const HEADER_3 = 16;
export const S_TOMBSTONE = 1;
const S_HAS_LOG = 2;
const S_CREATED_CLOSED = 4;
export const S_FORK = 8;
const S_TTL = 16;
const S_EXPIRES = 32;
const S_CLOSED = 64;
const S_UPDATED = 128;
const S2_LAST_SEQ = 1;
export const S2_INLINE = 2;
export const FIXED = 30;

/**
 * Decodes the record at `p` of snapshot bytes `b`: `types` its content-type table, `exact` whether its summaries are
 * exact, `carriedPos` where its carried log starts in the region (`undefined`: an earlier version, with the carried
 * log's bytes inside the record).
 */
export function decodeRecord(
  b: Buffer,
  p: number,
  name: string,
  types: readonly string[],
  exact: boolean,
  carriedPos: number | undefined,
): CatalogRecord {
  const flags = b[p]!;
  const flags2 = b[p + 1]!;
  let q = p + FIXED;
  let ttlSeconds: number | null = null;
  let expiresAt: number | null = null;
  let updatedAt: number | null = null;
  if (flags & S_TTL) {
    ttlSeconds = b.readDoubleLE(q);
    q += 8;
  }
  if (flags & S_EXPIRES) {
    expiresAt = b.readDoubleLE(q);
    q += 8;
  }
  if (flags & S_UPDATED) {
    updatedAt = b.readDoubleLE(q);
    q += 8;
  }
  const contentType = types[b.readUInt16LE(q)];
  if (contentType === undefined) throw new Error('the catalog snapshot is malformed');
  q += 6 + b.readUInt32LE(q + 2);
  let lastSeq: string | null = null;
  if (flags2 & S2_LAST_SEQ) {
    const sl = b.readUInt32LE(q);
    lastSeq = b.toString('utf8', q + 4, q + 4 + sl);
    q += 4 + sl;
  }
  let fork: ForkInfo | null = null;
  if (flags & S_FORK) {
    const sl = b.readUInt32LE(q);
    const source = b.toString('utf8', q + 4, q + 4 + sl);
    q += 4 + sl;
    const ol = b[q]!;
    const offset = b.toString('latin1', q + 1, q + 1 + ol);
    q += 1 + ol;
    fork = { source, offset, subOffset: b.readUInt32LE(q) };
    q += 4;
  }
  let inline: Buffer | undefined;
  let carried: CarriedRef | undefined;
  if (flags2 & S2_INLINE) {
    const il = b.readUInt32LE(q);
    if (carriedPos === undefined) inline = b.subarray(q + 4, q + 4 + il);
    else carried = { pos: carriedPos, len: il, crc: b.readUInt32LE(q + 4) };
  }
  const r = new CatalogRecord(
    name,
    { contentType, ttlSeconds, expiresAt, createdClosed: (flags & S_CREATED_CLOSED) !== 0 },
    b.readDoubleLE(p + 6),
    fork,
    (flags & S_TOMBSTONE) !== 0,
    b.readUInt32LE(p + 2),
    (flags & S_HAS_LOG) !== 0,
  );
  r.bytes = b.readDoubleLE(p + 14);
  r.count = b.readDoubleLE(p + 22);
  r.closed = (flags & S_CLOSED) !== 0;
  r.updatedAt = updatedAt;
  r.lastSeq = lastSeq;
  r.summaryExact = exact;
  r.inline = inline;
  r.carried = carried;
  return r;
}

/** Where `skipRecord` found the name and the carried log of the record it skipped (one object, reused). */
export const scan = { name: 0, nameLen: 0, inline: 0 };

/** Where the name of the record at `p` starts. */
export function nameOffset(b: Buffer, p: number): number {
  const flags = b[p]!;
  let q = p + FIXED;
  if (flags & S_TTL) q += 8;
  if (flags & S_EXPIRES) q += 8;
  if (flags & S_UPDATED) q += 8;
  return q + 6;
}

/**
 * Where the record at `p` ends; its name and carried log's length are left in `scan`. `region`:
 * the snapshot keeps carried logs in its region (the record holds their length and checksum, not their bytes).
 */
export function skipRecord(b: Buffer, p: number, region: boolean): number {
  const flags = b[p]!;
  const flags2 = b[p + 1]!;
  const nameStart = nameOffset(b, p);
  const nameLen = b.readUInt32LE(nameStart - 4);
  let q = nameStart + nameLen;
  if (flags2 & S2_LAST_SEQ) q += 4 + b.readUInt32LE(q);
  if (flags & S_FORK) {
    q += 4 + b.readUInt32LE(q);
    q += 1 + b[q]! + 4;
  }
  let inline = 0;
  if (flags2 & S2_INLINE) {
    inline = b.readUInt32LE(q);
    q += region ? 8 : 4 + inline;
  }
  scan.name = nameStart;
  scan.nameLen = nameLen;
  scan.inline = inline;
  return q;
}

/** Whether the record at `p` has a TTL or a deadline (one that has neither never expires). */
export function mayExpire(b: Buffer, p: number): boolean {
  return (b[p]! & (S_TTL | S_EXPIRES)) !== 0;
}

/** FNV-1a over bytes: the index's hash of a name's UTF-8 encoding. */
export function hashBytes(b: Uint8Array, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

/** Whether the name of the record at `p` is the `len` bytes at `start` of `b`. */
export function sameBytes(b: Buffer, start: number, len: number, p: number): boolean {
  const q = nameOffset(b, p);
  return b.readUInt32LE(q - 4) === len && b.compare(b, start, start + len, q, q + len) === 0;
}

/** A name's UTF-8 bytes are written here for a lookup (grown for a long name); `writeKey` returns their length. */
export let keyBuf = Buffer.allocUnsafe(1024);
export function writeKey(name: string): number {
  if (name.length * 3 > keyBuf.length) keyBuf = Buffer.allocUnsafe(name.length * 3);
  return keyBuf.write(name, 0, 'utf8');
}

/** Buffers of about a megabyte, filled one after the other. */
export class Out {
  cur = Buffer.allocUnsafe(1 << 20);
  p = 0;
  private readonly chunks: Buffer[] = [];
  /** Makes room for `n` more bytes in `cur` (starting a new buffer when needed). */
  room(n: number): void {
    if (this.p + n <= this.cur.length) return;
    this.chunks.push(this.cur.subarray(0, this.p));
    this.cur = Buffer.allocUnsafe(Math.max(1 << 20, n));
    this.p = 0;
  }
  finish(): Buffer[] {
    this.chunks.push(this.cur.subarray(0, this.p));
    return this.chunks;
  }
}

/** Encodes `r`, with `inline` for its carried log (whose bytes go to the region): `crc` if known, else computed. */
export function encodeRecord(
  r: CatalogRecord,
  types: Map<string, number>,
  out: Out,
  inline: Buffer | undefined,
  crc: number | undefined,
): void {
  const c = r.config;
  let t = types.get(c.contentType);
  if (t === undefined) {
    t = types.size;
    if (t > 0xffff) throw new Error('too many distinct content types for one snapshot');
    types.set(c.contentType, t);
  }
  const nameLen = Buffer.byteLength(r.name, 'utf8');
  const fork = r.fork;
  const srcLen = fork === null ? 0 : Buffer.byteLength(fork.source, 'utf8');
  const seqLen = r.lastSeq === null ? 0 : Buffer.byteLength(r.lastSeq, 'utf8');
  // A carried log is written only while the stream has no synced file of its own (the file then takes over).
  out.room(
    FIXED +
      24 +
      6 +
      nameLen +
      4 +
      seqLen +
      (fork === null ? 0 : 4 + srcLen + 1 + fork.offset.length + 4) +
      (inline === undefined ? 0 : 8),
  );
  const cur = out.cur;
  let p = out.p;
  const flags =
    (r.tombstone ? S_TOMBSTONE : 0) |
    (r.hasLog && inline === undefined ? S_HAS_LOG : 0) |
    (c.createdClosed ? S_CREATED_CLOSED : 0) |
    (fork !== null ? S_FORK : 0) |
    (c.ttlSeconds !== null ? S_TTL : 0) |
    (c.expiresAt !== null ? S_EXPIRES : 0) |
    (r.closed ? S_CLOSED : 0) |
    (r.updatedAt !== null ? S_UPDATED : 0);
  cur[p] = flags;
  cur[p + 1] = (r.lastSeq !== null ? S2_LAST_SEQ : 0) | (inline !== undefined ? S2_INLINE : 0);
  cur.writeUInt32LE(r.salt >>> 0, p + 2);
  cur.writeDoubleLE(r.createdAt, p + 6);
  cur.writeDoubleLE(r.bytes, p + 14);
  cur.writeDoubleLE(r.count, p + 22);
  p += FIXED;
  if (c.ttlSeconds !== null) p = cur.writeDoubleLE(c.ttlSeconds, p);
  if (c.expiresAt !== null) p = cur.writeDoubleLE(c.expiresAt, p);
  if (r.updatedAt !== null) p = cur.writeDoubleLE(r.updatedAt, p);
  cur.writeUInt16LE(t, p);
  cur.writeUInt32LE(nameLen, p + 2);
  p += 6;
  p += cur.write(r.name, p, 'utf8');
  if (r.lastSeq !== null) {
    cur.writeUInt32LE(seqLen, p);
    p += 4;
    p += cur.write(r.lastSeq, p, 'utf8');
  }
  if (fork !== null) {
    cur.writeUInt32LE(srcLen, p);
    p += 4;
    p += cur.write(fork.source, p, 'utf8');
    cur[p++] = fork.offset.length;
    p += cur.write(fork.offset, p, 'latin1');
    cur.writeUInt32LE(fork.subOffset, p);
    p += 4;
  }
  if (inline !== undefined) {
    cur.writeUInt32LE(inline.byteLength, p);
    cur.writeUInt32LE(crc ?? crc32(inline), p + 4);
    p += 8;
  }
  out.p = p;
}

/** 4 for a snapshot of the current layout, 3 or 2 for an earlier one, 0 for no snapshot header. */
export function snapshotVersion(b: Buffer): number {
  if (b.length < 8) return 0;
  const magic = b.subarray(0, 8);
  if (magic.equals(CATALOG_MAGIC)) return 4;
  if (magic.equals(CATALOG_MAGIC_3)) return 3;
  if (magic.equals(CATALOG_MAGIC_2)) return 2;
  return 0;
}

/** The checksum of a current header: its bytes but the checksum's own. */
export function headerCrc(h: Buffer): number {
  return crc32Range(h, 16, HEADER, crc32(h.subarray(0, 12)));
}

export function checked(bytes: Buffer, crc: number): Buffer | 'damaged' {
  return crc32(bytes) === crc ? bytes : 'damaged';
}
