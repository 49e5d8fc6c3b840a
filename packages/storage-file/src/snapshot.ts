import { crc32 } from 'node:zlib';
import type { ForkInfo } from '@streamkeep/storage';
import { CatalogRecord } from './catalog.js';
import { crc32Range } from './crc.js';
import { LOG_HEADER_SIZE } from './format.js';

/**
 * The catalog in memory, and its snapshot file.
 *
 * Opening a root of 100,000 streams must not build 100,000 records: the snapshot is kept as one buffer, and a name
 * maps to its record's offset in it until the record is first needed (then decoded once). Records of forks and
 * tombstones are decoded at once (opening counts forks and finishes cascades). A snapshot is written by copying the
 * bytes of the records never decoded and encoding the others.
 *
 * File layout, binary:
 *
 * header (16): magic `SKCAT\0\3\0` (`SKCAT\0\2\0`, written by 0.1.0, reads the same) | record count u32 |
 *              crc32(magic + count) u32
 * f64 payload bytes of all streams
 * content-type table: u16 count, each u16 length + UTF-8
 * records: u8 flags | u8 flags2 | u32 salt | f64 createdAt | f64 bytes | f64 count | [f64 ttlSeconds]
 *          [f64 expiresAt] [f64 updatedAt] | u16 content type | u32 name length + UTF-8 |
 *          [u32 Stream-Seq length + UTF-8] | [fork: u32 source length + UTF-8 | u8 offset length + latin1 | u32 subOffset]
 *          [carried log: u32 length + the bytes]
 *   flags: 1 tombstone · 2 has a log · 4 created closed · 8 fork · 16 TTL · 32 deadline · 64 closed · 128 updatedAt;
 *   flags2: 1 Stream-Seq · 2 carried log (a small stream's log bytes, kept here instead of in a file: `carry.ts`)
 * trailer: crc32 of everything after the header, u32
 */

export const CATALOG_MAGIC = Buffer.from('SKCAT\u0000\u0003\u0000', 'latin1');
/** The snapshot of format 2 as 0.1.0 wrote it: the same layout, never with a carried log. */
const CATALOG_MAGIC_2 = Buffer.from('SKCAT\u0000\u0002\u0000', 'latin1');
const S_TOMBSTONE = 1;
const S_HAS_LOG = 2;
const S_CREATED_CLOSED = 4;
const S_FORK = 8;
const S_TTL = 16;
const S_EXPIRES = 32;
const S_CLOSED = 64;
const S_UPDATED = 128;
const S2_LAST_SEQ = 1;
const S2_INLINE = 2;
const FIXED = 30;

export class Catalog {
  private readonly map = new Map<string, CatalogRecord | number>();
  private raw: Buffer = Buffer.alloc(0);
  private rawTypes: string[] = [];
  /** Whether records decoded from the snapshot have exact summaries (a clean shutdown preceded the open). */
  private exact = true;
  /** Payload bytes of all streams, as the snapshot recorded them. */
  snapshotBytes = 0;
  /** Bytes of the carried logs in the snapshot read at open, and the names of their streams. */
  inlineBytes = 0;
  inlineNames: string[] = [];

  get size(): number {
    return this.map.size;
  }

  get(name: string): CatalogRecord | undefined {
    const v = this.map.get(name);
    if (typeof v !== 'number') return v;
    const r = this.decodeAt(v, name);
    this.map.set(name, r);
    return r;
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  set(name: string, record: CatalogRecord): this {
    this.map.set(name, record);
    return this;
  }

  delete(name: string): boolean {
    return this.map.delete(name);
  }

  clear(): void {
    this.map.clear();
    this.raw = Buffer.alloc(0);
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  /** The records decoded so far (forks and tombstones always are), without decoding any. */
  *decoded(): IterableIterator<CatalogRecord> {
    for (const v of this.map.values()) if (typeof v !== 'number') yield v;
  }

  /** Every record, decoding those not yet decoded. */
  *values(): IterableIterator<CatalogRecord> {
    for (const name of this.map.keys()) yield this.get(name)!;
  }

  /** The snapshot of this catalog: records never decoded are copied as they were read. */
  encode(): Buffer[] {
    const types = new Map<string, number>();
    for (const t of this.rawTypes) types.set(t, types.size);
    const out = new Out();
    let count = 0;
    let total = 0;
    for (const [name, v] of this.map) {
      if (typeof v === 'number') {
        const end = skipRecord(this.raw, v).end;
        out.room(end - v);
        this.raw.copy(out.cur, out.p, v, end);
        out.p += end - v;
        total += this.raw.readDoubleLE(v + 14);
        count++;
        continue;
      }
      if (v.removed || v.name !== name) continue;
      encodeRecord(v, types, out);
      total += v.bytes;
      count++;
    }
    const chunks = out.finish();
    let tableLen = 8 + 2;
    for (const k of types.keys()) tableLen += 2 + Buffer.byteLength(k, 'utf8');
    const table = Buffer.allocUnsafe(tableLen);
    table.writeDoubleLE(total, 0);
    table.writeUInt16LE(types.size, 8);
    let q = 10;
    for (const k of types.keys()) {
      const n = table.write(k, q + 2, 'utf8');
      table.writeUInt16LE(n, q);
      q += 2 + n;
    }
    const header = Buffer.alloc(LOG_HEADER_SIZE);
    CATALOG_MAGIC.copy(header, 0);
    header.writeUInt32LE(count, 8);
    header.writeUInt32LE(crc32(header.subarray(0, 12)), 12);
    let crc = crc32Range(table, 0, table.length, 0);
    for (const ch of chunks) crc = crc32Range(ch, 0, ch.length, crc);
    const trailer = Buffer.allocUnsafe(4);
    trailer.writeUInt32LE(crc, 0);
    return [header, table, ...chunks, trailer];
  }

  /**
   * Reads a snapshot: checks it whole, then maps each name to its record's offset. `exact`: the snapshot was written
   * by a clean shutdown, so its summaries are exact. Throws an `Error` saying what is wrong when it is damaged.
   */
  static decode(b: Buffer, exact: boolean): Catalog {
    const magic = b.subarray(0, 8);
    if (b.length < LOG_HEADER_SIZE + 14 || !(magic.equals(CATALOG_MAGIC) || magic.equals(CATALOG_MAGIC_2))) {
      throw new Error('the catalog snapshot has no valid header');
    }
    if (crc32(b.subarray(0, 12)) !== b.readUInt32LE(12))
      throw new Error('the catalog snapshot header is damaged');
    const count = b.readUInt32LE(8);
    const end = b.length - 4;
    if (crc32Range(b, LOG_HEADER_SIZE, end, 0) !== b.readUInt32LE(end)) {
      throw new Error('the catalog snapshot failed its checksum');
    }
    const c = new Catalog();
    c.raw = b;
    c.exact = exact;
    let p = LOG_HEADER_SIZE;
    c.snapshotBytes = b.readDoubleLE(p);
    const nTypes = b.readUInt16LE(p + 8);
    p += 10;
    for (let i = 0; i < nTypes; i++) {
      const n = b.readUInt16LE(p);
      c.rawTypes.push(b.toString('utf8', p + 2, p + 2 + n));
      p += 2 + n;
    }
    const eager: string[] = [];
    for (let i = 0; i < count; i++) {
      if (p + FIXED > end) throw new Error('the catalog snapshot is malformed');
      const at = skipRecord(b, p);
      if (at.end > end) throw new Error('the catalog snapshot is malformed');
      const name = b.toString('utf8', at.nameStart, at.nameStart + at.nameLen);
      c.map.set(name, p);
      if ((b[p]! & (S_FORK | S_TOMBSTONE)) !== 0) eager.push(name);
      if (at.inline > 0) {
        c.inlineBytes += at.inline;
        c.inlineNames.push(name);
      }
      p = at.end;
    }
    if (p !== end) throw new Error('the catalog snapshot is malformed');
    for (const name of eager) c.get(name);
    return c;
  }

  private decodeAt(p: number, name: string): CatalogRecord {
    const b = this.raw;
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
    const contentType = this.rawTypes[b.readUInt16LE(q)];
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
    if (flags2 & S2_INLINE) {
      const il = b.readUInt32LE(q);
      inline = b.subarray(q + 4, q + 4 + il);
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
    r.summaryExact = this.exact;
    r.inline = inline;
    return r;
  }
}

/** Where the name of the record at `p` lies, and where the record ends. */
function skipRecord(
  b: Buffer,
  p: number,
): { nameStart: number; nameLen: number; end: number; inline: number } {
  const flags = b[p]!;
  const flags2 = b[p + 1]!;
  let q = p + FIXED;
  if (flags & S_TTL) q += 8;
  if (flags & S_EXPIRES) q += 8;
  if (flags & S_UPDATED) q += 8;
  const nameLen = b.readUInt32LE(q + 2);
  const nameStart = q + 6;
  q = nameStart + nameLen;
  if (flags2 & S2_LAST_SEQ) q += 4 + b.readUInt32LE(q);
  if (flags & S_FORK) {
    q += 4 + b.readUInt32LE(q);
    q += 1 + b[q]! + 4;
  }
  let inline = 0;
  if (flags2 & S2_INLINE) {
    inline = b.readUInt32LE(q);
    q += 4 + inline;
  }
  return { nameStart, nameLen, end: q, inline };
}

/** Buffers of about a megabyte, filled one after the other. */
class Out {
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

function encodeRecord(r: CatalogRecord, types: Map<string, number>, out: Out): void {
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
  const inline = r.inline;
  out.room(
    FIXED +
      24 +
      6 +
      nameLen +
      4 +
      seqLen +
      (fork === null ? 0 : 4 + srcLen + 1 + fork.offset.length + 4) +
      (inline === undefined ? 0 : 4 + inline.byteLength),
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
    p += 4;
    p += inline.copy(cur, p);
  }
  out.p = p;
}
