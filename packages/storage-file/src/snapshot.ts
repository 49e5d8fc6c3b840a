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
  /** Records decoded from the snapshot or made in this process. A name is here or live in the index, never both. */
  private readonly map = new Map<string, CatalogRecord>();
  private raw: Buffer = Buffer.alloc(0);
  private rawTypes: string[] = [];
  /** Whether records decoded from the snapshot have exact summaries (a clean shutdown preceded the open). */
  private exact = true;
  /**
   * The snapshot's records never decoded, found by name without a string per record: their offsets (by ordinal),
   * the hashes of their names' UTF-8 bytes, an open-addressed table of ordinal + 1 (0: empty), and a mark for each
   * ordinal that left the index (decoded into `map`, replaced or deleted).
   */
  private offsets = new Uint32Array(0);
  private hashes = new Uint32Array(0);
  private slots = new Uint32Array(0);
  private gone = new Uint8Array(0);
  private live = 0;
  /** Ordinals of the snapshot's records with a carried log. */
  private inlineOrds: number[] = [];
  /** Payload bytes of all streams, as the snapshot recorded them. */
  snapshotBytes = 0;
  /** Bytes of the carried logs in the snapshot read at open. */
  inlineBytes = 0;

  get size(): number {
    return this.map.size + this.live;
  }

  get(name: string): CatalogRecord | undefined {
    const r = this.map.get(name);
    if (r !== undefined || this.live === 0) return r;
    const ord = this.find(name);
    return ord < 0 ? undefined : this.take(ord, name);
  }

  has(name: string): boolean {
    return this.map.has(name) || (this.live > 0 && this.find(name) >= 0);
  }

  set(name: string, record: CatalogRecord): this {
    if (this.live > 0 && !this.map.has(name)) {
      const ord = this.find(name);
      if (ord >= 0) this.drop(ord);
    }
    this.map.set(name, record);
    return this;
  }

  delete(name: string): boolean {
    if (this.map.delete(name)) return true;
    if (this.live === 0) return false;
    const ord = this.find(name);
    if (ord < 0) return false;
    this.drop(ord);
    return true;
  }

  clear(): void {
    this.map.clear();
    this.raw = Buffer.alloc(0);
    this.offsets = new Uint32Array(0);
    this.hashes = new Uint32Array(0);
    this.slots = new Uint32Array(0);
    this.gone = new Uint8Array(0);
    this.live = 0;
    this.inlineOrds = [];
  }

  /** Every name (the snapshot's not yet decoded are read from its bytes). */
  *keys(): IterableIterator<string> {
    yield* this.map.keys();
    for (let i = 0; i < this.gone.length; i++) if (this.gone[i] === 0) yield this.nameAt(i);
  }

  /** The records decoded so far (forks and tombstones always are), without decoding any. */
  decoded(): IterableIterator<CatalogRecord> {
    return this.map.values();
  }

  /** Every record, decoding those not yet decoded. */
  *values(): IterableIterator<CatalogRecord> {
    // The records decoded below join `map`: collected first, so that its iteration does not meet them.
    const known = [...this.map.values()];
    yield* known;
    for (let i = 0; i < this.gone.length; i++) {
      if (this.gone[i] === 0) yield this.take(i, this.nameAt(i));
    }
  }

  /** The records of the snapshot read at open that carried a log (decoding them). */
  *carried(): IterableIterator<CatalogRecord> {
    for (const ord of this.inlineOrds) {
      const name = this.nameAt(ord);
      const r = this.gone[ord] === 0 ? this.take(ord, name) : this.map.get(name);
      if (r !== undefined) yield r;
    }
  }

  /** The snapshot of this catalog: records never decoded are copied as they were read. */
  encode(): Buffer[] {
    const types = new Map<string, number>();
    for (const t of this.rawTypes) types.set(t, types.size);
    const out = new Out();
    let count = 0;
    let total = 0;
    const raw = this.raw;
    for (let i = 0; i < this.gone.length; i++) {
      if (this.gone[i] !== 0) continue;
      const v = this.offsets[i]!;
      const end = skipRecord(raw, v);
      out.room(end - v);
      raw.copy(out.cur, out.p, v, end);
      out.p += end - v;
      total += raw.readDoubleLE(v + 14);
      count++;
    }
    for (const [name, v] of this.map) {
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
   * Reads a snapshot: checks it whole, then indexes each record by the bytes of its name (no string, no record made
   * until a name is looked up). `exact`: the snapshot was written by a clean shutdown, so its summaries are exact.
   * Throws an `Error` saying what is wrong when it is damaged.
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
    // Each record takes at least FIXED bytes: a count the file cannot hold is damage, not a table to allocate.
    if (count > (end - LOG_HEADER_SIZE) / FIXED) throw new Error('the catalog snapshot is malformed');
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
    let cap = 16;
    while (cap < count * 2) cap *= 2;
    const offsets = new Uint32Array(count);
    const hashes = new Uint32Array(count);
    const slots = new Uint32Array(cap);
    const mask = cap - 1;
    const eager: number[] = [];
    for (let i = 0; i < count; i++) {
      if (p + FIXED > end) throw new Error('the catalog snapshot is malformed');
      const next = skipRecord(b, p);
      if (next > end) throw new Error('the catalog snapshot is malformed');
      const start = scanName;
      const len = scanNameLen;
      const h = hashBytes(b, start, start + len);
      let s = h & mask;
      for (let o = slots[s]!; o !== 0; o = slots[s]!) {
        if (hashes[o - 1] === h && sameBytes(b, start, len, offsets[o - 1]!)) {
          throw new Error('the catalog snapshot names a stream twice');
        }
        s = (s + 1) & mask;
      }
      slots[s] = i + 1;
      offsets[i] = p;
      hashes[i] = h;
      if ((b[p]! & (S_FORK | S_TOMBSTONE)) !== 0) eager.push(i);
      if (scanInline > 0) {
        c.inlineBytes += scanInline;
        c.inlineOrds.push(i);
      }
      p = next;
    }
    if (p !== end) throw new Error('the catalog snapshot is malformed');
    c.offsets = offsets;
    c.hashes = hashes;
    c.slots = slots;
    c.gone = new Uint8Array(count);
    c.live = count;
    for (const i of eager) c.take(i, c.nameAt(i));
    return c;
  }

  /** The ordinal of `name`'s record in the index, or -1 (also once it left the index). */
  private find(name: string): number {
    const n = writeKey(name);
    const key = keyBuf;
    const h = hashBytes(key, 0, n);
    const mask = this.slots.length - 1;
    const b = this.raw;
    for (let s = h & mask, o = this.slots[s]!; o !== 0; s = (s + 1) & mask, o = this.slots[s]!) {
      const ord = o - 1;
      if (this.hashes[ord] !== h) continue;
      const at = this.offsets[ord]!;
      const q = nameOffset(b, at);
      const len = b.readUInt32LE(q - 4);
      if (len !== n || b.compare(key, 0, n, q, q + n) !== 0) continue;
      // Two strings share UTF-8 bytes only when one has a lone surrogate (never a valid name): not this one.
      return this.gone[ord] === 0 && this.nameAt(ord) === name ? ord : -1;
    }
    return -1;
  }

  /** Decodes the record at `ord` into `map`, where it stays. */
  private take(ord: number, name: string): CatalogRecord {
    const r = this.decodeAt(this.offsets[ord]!, name);
    this.drop(ord);
    this.map.set(name, r);
    return r;
  }

  private drop(ord: number): void {
    this.gone[ord] = 1;
    this.live--;
  }

  private nameAt(ord: number): string {
    const q = nameOffset(this.raw, this.offsets[ord]!);
    return this.raw.toString('utf8', q, q + this.raw.readUInt32LE(q - 4));
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

// Where `skipRecord` found the name and the carried log of the record it skipped (no object per record).
let scanName = 0;
let scanNameLen = 0;
let scanInline = 0;

/** Where the name of the record at `p` starts. */
function nameOffset(b: Buffer, p: number): number {
  const flags = b[p]!;
  let q = p + FIXED;
  if (flags & S_TTL) q += 8;
  if (flags & S_EXPIRES) q += 8;
  if (flags & S_UPDATED) q += 8;
  return q + 6;
}

/** Where the record at `p` ends; its name and carried log's length are left in `scanName*` and `scanInline`. */
function skipRecord(b: Buffer, p: number): number {
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
    q += 4 + inline;
  }
  scanName = nameStart;
  scanNameLen = nameLen;
  scanInline = inline;
  return q;
}

/** FNV-1a over bytes: the index's hash of a name's UTF-8 encoding. */
function hashBytes(b: Uint8Array, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

/** Whether the name of the record at `p` is the `len` bytes at `start` of `b`. */
function sameBytes(b: Buffer, start: number, len: number, p: number): boolean {
  const q = nameOffset(b, p);
  return b.readUInt32LE(q - 4) === len && b.compare(b, start, start + len, q, q + len) === 0;
}

/** A name's UTF-8 bytes are written here for a lookup (grown for a long name); `writeKey` returns their length. */
let keyBuf = Buffer.allocUnsafe(1024);
function writeKey(name: string): number {
  if (name.length * 3 > keyBuf.length) keyBuf = Buffer.allocUnsafe(name.length * 3);
  return keyBuf.write(name, 0, 'utf8');
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
