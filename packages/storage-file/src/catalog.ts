import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { ForkInfo, StreamConfig } from '@streamkeep/storage';
import { crc32Range } from './crc.js';
import { LOG_HEADER_SIZE } from './format.js';

/**
 * The catalog: one record per stream with what does not change with appends (name, config, creation time, lineage,
 * tombstone, the salt of its log). It lives in memory for every stream, loaded or not, and is persisted in two
 * places: lifecycle changes (create, tombstone, delete) as entries of the commit journal, made durable by the same
 * `fdatasync` rounds as group writes, and the whole table as a snapshot file (`catalog`) written at each checkpoint,
 * after which the journal is emptied. Opening reads the snapshot and applies the journal's catalog entries: no
 * per-stream file is touched until a stream is first used.
 */

export type MutableConfig = { -readonly [K in keyof StreamConfig]: StreamConfig[K] };

export class CatalogRecord {
  /** Direct forks (tombstones included) that read this stream's data. Derived at open, never persisted. */
  refs = 0;
  /**
   * The stream's summary — local messages and payload bytes, closure, last update, last `Stream-Seq` — kept in step
   * with its log while it is loaded and saved in the snapshot, so that a listing need not load every log. Exact
   * unless `summaryExact` is false (after a crash, for streams not loaded since: their logs may hold more).
   */
  count = 0;
  bytes = 0;
  closed: boolean;
  updatedAt: number | null = null;
  lastSeq: string | null = null;
  summaryExact = true;
  /** Why the stream is refused (`CORRUPTED`), once its log failed a check. */
  quarantined: string | undefined;
  /** Set once a delete is durable. */
  removed = false;
  /** The stream's log file exists (created by its first write). */
  hasLog: boolean;
  /** Known to have no log file (created by this process and not written to yet): it loads without any I/O. */
  noFile = false;
  private idCache: string | undefined;

  constructor(
    readonly name: string,
    readonly config: MutableConfig,
    readonly createdAt: number,
    readonly fork: ForkInfo | null,
    public tombstone: boolean,
    readonly salt: number,
    hasLog: boolean,
  ) {
    this.hasLog = hasLog;
    this.closed = config.createdClosed;
  }

  /** The stream's file id: a SHA-256 of its name (any name maps to a short, safe, fixed-length file name). */
  get id(): string {
    this.idCache ??= streamId(this.name);
    return this.idCache;
  }
}

export function streamId(name: string): string {
  return createHash('sha256').update(name, 'utf8').digest('hex');
}

// ---------------------------------------------------------------------------------------------------------------
// Catalog entries of the journal: JSON, one lifecycle change each.
// ---------------------------------------------------------------------------------------------------------------

export type CatalogOp =
  | {
      readonly op: 'create';
      readonly name: string;
      readonly config: StreamConfig;
      readonly createdAt: number;
      readonly fork: ForkInfo | null;
      readonly salt: number;
      readonly hasLog: boolean;
    }
  | { readonly op: 'tombstone'; readonly name: string }
  | { readonly op: 'delete'; readonly name: string };

export function encodeCatalogOp(op: CatalogOp): Buffer {
  return Buffer.from(JSON.stringify(op), 'utf8');
}

export function decodeCatalogOp(bytes: Uint8Array): CatalogOp {
  const o = JSON.parse(
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
  ) as CatalogOp;
  if (typeof o !== 'object' || o === null || typeof o.name !== 'string') throw new Error('bad catalog entry');
  if (o.op === 'create') {
    if (typeof o.config?.contentType !== 'string' || typeof o.salt !== 'number') {
      throw new Error('bad catalog entry');
    }
  } else if (o.op !== 'tombstone' && o.op !== 'delete') {
    throw new Error('bad catalog entry');
  }
  return o;
}

/** Applies one journaled change to a catalog map (at open, replaying the journal). */
export function applyCatalogOp(catalog: Map<string, CatalogRecord>, op: CatalogOp): void {
  if (op.op === 'create') {
    const r = new CatalogRecord(op.name, { ...op.config }, op.createdAt, op.fork, false, op.salt, op.hasLog);
    // Replayed after a crash: what its log holds is learnt when it is loaded.
    r.summaryExact = false;
    catalog.set(op.name, r);
  } else if (op.op === 'tombstone') {
    const r = catalog.get(op.name);
    if (r !== undefined) r.tombstone = true;
  } else {
    catalog.delete(op.name);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Snapshot file: binary, so that 100k records decode in tens of milliseconds.
//
// header (16): magic (8) | record count u32 | crc32(magic + count) u32
// content-type table: u16 count, each u16 length + UTF-8
// records: u8 flags | u8 flags2 | u32 salt | f64 createdAt | f64 bytes | f64 count | [f64 ttlSeconds]
//          [f64 expiresAt] [f64 updatedAt] | u16 content type | u32 name length + UTF-8 |
//          [u32 Stream-Seq length + UTF-8] | [fork: u32 source length + UTF-8 | u8 offset length + latin1 | u32 subOffset]
// flags: 1 tombstone · 2 has a log · 4 created closed · 8 fork · 16 TTL · 32 deadline · 64 closed · 128 updatedAt;
// flags2: 1 Stream-Seq.
// trailer: crc32 of everything after the header, u32
// ---------------------------------------------------------------------------------------------------------------

export const CATALOG_MAGIC = Buffer.from('SKCAT\u0000\u0002\u0000', 'latin1');
const S_TOMBSTONE = 1;
const S_HAS_LOG = 2;
const S_CREATED_CLOSED = 4;
const S_FORK = 8;
const S_TTL = 16;
const S_EXPIRES = 32;
const S_CLOSED = 64;
const S_UPDATED = 128;
const S2_LAST_SEQ = 1;

export function encodeSnapshot(records: Iterable<CatalogRecord>): Buffer[] {
  const types = new Map<string, number>();
  const chunks: Buffer[] = [];
  let cur = Buffer.allocUnsafe(1 << 20);
  let p = 0;
  let count = 0;
  const room = (n: number): void => {
    if (p + n <= cur.length) return;
    chunks.push(cur.subarray(0, p));
    cur = Buffer.allocUnsafe(Math.max(1 << 20, n));
    p = 0;
  };
  for (const r of records) {
    if (r.removed) continue;
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
    room(70 + nameLen + seqLen + (fork === null ? 0 : 4 + srcLen + 1 + fork.offset.length + 4));
    const flags =
      (r.tombstone ? S_TOMBSTONE : 0) |
      (r.hasLog ? S_HAS_LOG : 0) |
      (c.createdClosed ? S_CREATED_CLOSED : 0) |
      (fork !== null ? S_FORK : 0) |
      (c.ttlSeconds !== null ? S_TTL : 0) |
      (c.expiresAt !== null ? S_EXPIRES : 0) |
      (r.closed ? S_CLOSED : 0) |
      (r.updatedAt !== null ? S_UPDATED : 0);
    cur[p++] = flags;
    cur[p++] = r.lastSeq !== null ? S2_LAST_SEQ : 0;
    cur.writeUInt32LE(r.salt >>> 0, p);
    cur.writeDoubleLE(r.createdAt, p + 4);
    cur.writeDoubleLE(r.bytes, p + 12);
    cur.writeDoubleLE(r.count, p + 20);
    p += 28;
    if (c.ttlSeconds !== null) {
      cur.writeDoubleLE(c.ttlSeconds, p);
      p += 8;
    }
    if (c.expiresAt !== null) {
      cur.writeDoubleLE(c.expiresAt, p);
      p += 8;
    }
    if (r.updatedAt !== null) {
      cur.writeDoubleLE(r.updatedAt, p);
      p += 8;
    }
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
    count++;
  }
  chunks.push(cur.subarray(0, p));
  let tableLen = 2;
  for (const k of types.keys()) tableLen += 2 + Buffer.byteLength(k, 'utf8');
  const table = Buffer.allocUnsafe(tableLen);
  table.writeUInt16LE(types.size, 0);
  let q = 2;
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

/** Decodes a snapshot; throws an `Error` saying what is wrong when it is damaged. */
export function decodeSnapshot(b: Buffer): Map<string, CatalogRecord> {
  if (b.length < LOG_HEADER_SIZE + 6 || !b.subarray(0, 8).equals(CATALOG_MAGIC)) {
    throw new Error('the catalog snapshot has no valid header');
  }
  if (crc32(b.subarray(0, 12)) !== b.readUInt32LE(12))
    throw new Error('the catalog snapshot header is damaged');
  const count = b.readUInt32LE(8);
  const end = b.length - 4;
  if (crc32Range(b, LOG_HEADER_SIZE, end, 0) !== b.readUInt32LE(end)) {
    throw new Error('the catalog snapshot failed its checksum');
  }
  let p = LOG_HEADER_SIZE;
  const nTypes = b.readUInt16LE(p);
  p += 2;
  const types: string[] = [];
  for (let i = 0; i < nTypes; i++) {
    const n = b.readUInt16LE(p);
    types.push(b.toString('utf8', p + 2, p + 2 + n));
    p += 2 + n;
  }
  const out = new Map<string, CatalogRecord>();
  for (let i = 0; i < count; i++) {
    const flags = b[p]!;
    const flags2 = b[p + 1]!;
    const salt = b.readUInt32LE(p + 2);
    const createdAt = b.readDoubleLE(p + 6);
    const bytes = b.readDoubleLE(p + 14);
    const count = b.readDoubleLE(p + 22);
    p += 30;
    let ttlSeconds: number | null = null;
    let expiresAt: number | null = null;
    if (flags & S_TTL) {
      ttlSeconds = b.readDoubleLE(p);
      p += 8;
    }
    if (flags & S_EXPIRES) {
      expiresAt = b.readDoubleLE(p);
      p += 8;
    }
    let updatedAt: number | null = null;
    if (flags & S_UPDATED) {
      updatedAt = b.readDoubleLE(p);
      p += 8;
    }
    const contentType = types[b.readUInt16LE(p)];
    const nameLen = b.readUInt32LE(p + 2);
    p += 6;
    const name = b.toString('utf8', p, p + nameLen);
    p += nameLen;
    let lastSeq: string | null = null;
    if (flags2 & S2_LAST_SEQ) {
      const sl = b.readUInt32LE(p);
      lastSeq = b.toString('utf8', p + 4, p + 4 + sl);
      p += 4 + sl;
    }
    let fork: ForkInfo | null = null;
    if (flags & S_FORK) {
      const sl = b.readUInt32LE(p);
      const source = b.toString('utf8', p + 4, p + 4 + sl);
      p += 4 + sl;
      const ol = b[p]!;
      const offset = b.toString('latin1', p + 1, p + 1 + ol);
      p += 1 + ol;
      fork = { source, offset, subOffset: b.readUInt32LE(p) };
      p += 4;
    }
    if (contentType === undefined || p > end) throw new Error('the catalog snapshot is malformed');
    const r = new CatalogRecord(
      name,
      { contentType, ttlSeconds, expiresAt, createdClosed: (flags & S_CREATED_CLOSED) !== 0 },
      createdAt,
      fork,
      (flags & S_TOMBSTONE) !== 0,
      salt,
      (flags & S_HAS_LOG) !== 0,
    );
    r.bytes = bytes;
    r.count = count;
    r.closed = (flags & S_CLOSED) !== 0;
    r.updatedAt = updatedAt;
    r.lastSeq = lastSeq;
    out.set(name, r);
  }
  if (p !== end) throw new Error('the catalog snapshot is malformed');
  return out;
}
