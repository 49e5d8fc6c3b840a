import { randomInt } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { ForkInfo, ProducerState, StreamConfig } from '@streamkeep/storage';
import { crc32Range } from './crc.js';

// ---------------------------------------------------------------------------------------------------------------
// Log file header: 16 bytes. magic (8) | salt u32 LE | crc32(magic + salt) u32 LE
// ---------------------------------------------------------------------------------------------------------------

export const LOG_MAGIC = Buffer.from('SKLOG\u0000\u0001\u0000', 'latin1');
export const LOG_HEADER_SIZE = 16;
/** crc (4) + body length (4). */
export const RECORD_HEADER_SIZE = 8;
export const MAX_BODY = 0xffff_ffff;

export const RECORD_COMMIT = 1;
export const RECORD_TOUCH = 2;

export const F_CLOSED = 1;
export const F_LAST_SEQ = 2;
export const F_PRODUCER = 4;
export const F_EXPIRES_AT = 8;
export const F_UPDATED_AT = 16;
const KNOWN_FLAGS = F_CLOSED | F_LAST_SEQ | F_PRODUCER | F_EXPIRES_AT | F_UPDATED_AT;

export function newSalt(): number {
  return randomInt(0, 0xffff_ffff);
}

export function encodeLogHeader(salt: number): Buffer {
  // Every byte is written: a pooled buffer (each first write of a stream makes one).
  const b = Buffer.allocUnsafe(LOG_HEADER_SIZE);
  LOG_MAGIC.copy(b, 0);
  b.writeUInt32LE(salt >>> 0, 8);
  b.writeUInt32LE(crc32Range(b, 0, 12, 0), 12);
  return b;
}

/** The salt of a valid header, or `undefined`. */
export function decodeLogHeader(b: Uint8Array): number | undefined {
  if (b.byteLength < LOG_HEADER_SIZE) return undefined;
  const buf = Buffer.from(b.buffer, b.byteOffset, LOG_HEADER_SIZE);
  if (!buf.subarray(0, 8).equals(LOG_MAGIC)) return undefined;
  if (crc32(buf.subarray(0, 12)) !== buf.readUInt32LE(12)) return undefined;
  return buf.readUInt32LE(8);
}

// ---------------------------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------------------------

/** The metadata a commit record carries: the stream's state *after* the commit. */
export interface CommitMeta {
  readonly closed: boolean;
  readonly updatedAt: number | null;
  readonly expiresAt: number | null;
  readonly lastSeq: string | null;
  readonly producer?: { readonly id: string; readonly state: ProducerState } | undefined;
}

/** Messages at least this large are written from the caller's buffer instead of being copied. */
const DIRECT_WRITE_BYTES = 16 * 1024;

/**
 * Bytes a {@link GroupEncoder} copies for `messages` (small payloads and every length prefix; large payloads are
 * passed through): its size hint, so that a group of large messages does not get a chunk the size of its payload.
 */
export function copiedBytes(messages: readonly Uint8Array[]): number {
  let n = 0;
  for (const m of messages) n += (m.byteLength < DIRECT_WRITE_BYTES ? m.byteLength : 0) + 4;
  return n;
}
const CHUNK_BYTES = 64 * 1024;

/**
 * Builds the bytes of one group write (several records) as a list of buffers for one `writev`: small messages are
 * copied into shared chunks, large ones are passed through. Records each message's payload file position.
 */
export class GroupEncoder {
  private readonly parts: Uint8Array[] = [];
  /** File position of each encoded message's payload, in encoding order across records. */
  readonly positions: number[] = [];
  private cur: Buffer = Buffer.allocUnsafe(0);
  private curPos = 0;
  private curStart = 0;
  /** File position of the next byte. */
  pos: number;
  readonly startPos: number;
  // The CRC run of the record being encoded: contiguous bytes [runStart, runEnd) of runBuf not yet checksummed.
  private crc = 0;
  private runBuf: Uint8Array | undefined;
  private runStart = 0;
  private runEnd = 0;

  /** Capacity of the next chunk allocated: the size hint first (a 100-byte append needs no 64 KiB buffer). */
  private nextChunk: number;

  constructor(
    startPos: number,
    private readonly salt: number,
    sizeHint = CHUNK_BYTES,
  ) {
    this.pos = startPos;
    this.startPos = startPos;
    this.nextChunk = Math.min(CHUNK_BYTES, Math.max(64, sizeHint));
  }

  get empty(): boolean {
    return this.pos === this.startPos;
  }

  private reserve(n: number): void {
    if (this.cur.byteLength - this.curPos >= n) return;
    this.flushCur();
    this.cur = Buffer.allocUnsafe(Math.max(this.nextChunk, n));
    this.nextChunk = CHUNK_BYTES;
    this.curPos = 0;
    this.curStart = 0;
  }

  private flushCur(): void {
    if (this.curPos > this.curStart) this.parts.push(this.cur.subarray(this.curStart, this.curPos));
    this.curStart = this.curPos;
  }

  /** Adds bytes [start, end) of `buf` to the running CRC, merging contiguous ranges into one call. */
  private sum(buf: Uint8Array, start: number, end: number): void {
    if (this.runBuf === buf && this.runEnd === start) {
      this.runEnd = end;
      return;
    }
    this.flushSum();
    this.runBuf = buf;
    this.runStart = start;
    this.runEnd = end;
  }

  private flushSum(): void {
    if (this.runBuf !== undefined && this.runEnd > this.runStart) {
      this.crc = crc32Range(this.runBuf, this.runStart, this.runEnd, this.crc);
    }
    this.runBuf = undefined;
  }

  /** Appends a commit record. */
  commit(meta: CommitMeta, messages: readonly Uint8Array[]): void {
    const seq = meta.lastSeq === null ? undefined : Buffer.from(meta.lastSeq, 'utf8');
    const pid = meta.producer === undefined ? undefined : Buffer.from(meta.producer.id, 'utf8');
    let flags = meta.closed ? F_CLOSED : 0;
    let fixed = 8; // type, flags, reserved u16, count u32
    if (meta.updatedAt !== null) {
      flags |= F_UPDATED_AT;
      fixed += 8;
    }
    if (meta.expiresAt !== null) {
      flags |= F_EXPIRES_AT;
      fixed += 8;
    }
    if (seq !== undefined) {
      flags |= F_LAST_SEQ;
      fixed += 4 + seq.byteLength;
    }
    if (pid !== undefined) {
      flags |= F_PRODUCER;
      fixed += 4 + pid.byteLength + 16;
    }
    let body = fixed;
    for (const m of messages) body += 4 + m.byteLength;
    this.reserve(RECORD_HEADER_SIZE + fixed);
    const b = this.cur;
    const recordAt = this.curPos;
    let w = recordAt + 4;
    w = b.writeUInt32LE(body, w);
    b[w++] = RECORD_COMMIT;
    b[w++] = flags;
    w = b.writeUInt16LE(0, w);
    w = b.writeUInt32LE(messages.length, w);
    if (meta.updatedAt !== null) w = b.writeDoubleLE(meta.updatedAt, w);
    if (meta.expiresAt !== null) w = b.writeDoubleLE(meta.expiresAt, w);
    if (seq !== undefined) {
      w = b.writeUInt32LE(seq.byteLength, w);
      w += seq.copy(b, w);
    }
    if (pid !== undefined && meta.producer !== undefined) {
      w = b.writeUInt32LE(pid.byteLength, w);
      w += pid.copy(b, w);
      w = b.writeDoubleLE(meta.producer.state.epoch, w);
      w = b.writeDoubleLE(meta.producer.state.lastSeq, w);
    }
    this.crc = this.salt >>> 0;
    this.runBuf = undefined;
    this.sum(b, recordAt + 4, w);
    this.curPos = w;
    this.pos += RECORD_HEADER_SIZE + fixed;
    for (const m of messages) {
      const len = m.byteLength;
      if (len >= DIRECT_WRITE_BYTES) {
        this.reserve(4);
        const c = this.cur;
        c.writeUInt32LE(len, this.curPos);
        this.sum(c, this.curPos, this.curPos + 4);
        this.curPos += 4;
        this.flushCur();
        this.parts.push(m);
        this.sum(m, 0, len);
        this.pos += 4;
        this.positions.push(this.pos);
        this.pos += len;
      } else {
        this.reserve(4 + len);
        const c = this.cur;
        const at = this.curPos;
        c.writeUInt32LE(len, at);
        c.set(m, at + 4);
        this.sum(c, at, at + 4 + len);
        this.curPos = at + 4 + len;
        this.pos += 4;
        this.positions.push(this.pos);
        this.pos += len;
      }
    }
    this.flushSum();
    b.writeUInt32LE(this.crc, recordAt);
  }

  /** Appends a touch record: a deadline renewed by reads. */
  touch(expiresAt: number): void {
    this.reserve(RECORD_HEADER_SIZE + 12);
    const b = this.cur;
    const at = this.curPos;
    b.writeUInt32LE(12, at + 4);
    b[at + 8] = RECORD_TOUCH;
    b[at + 9] = 0;
    b.writeUInt16LE(0, at + 10);
    b.writeDoubleLE(expiresAt, at + 12);
    b.writeUInt32LE(crc32Range(b, at + 4, at + 20, this.salt >>> 0), at);
    this.curPos = at + 20;
    this.pos += 20;
  }

  /** The buffers to write, in order. */
  finish(): Uint8Array[] {
    this.flushCur();
    return this.parts;
  }
}

/**
 * A cheap structural test of a record start (`b[o]` is its crc field, `len` its body length), used to look for good
 * records after a bad one without checksumming every byte position: every record written passes it, random bytes
 * almost never (type, flags and the zero reserved field must all fit).
 */
export function plausibleRecord(b: Uint8Array, o: number, len: number): boolean {
  const type = b[o + 8];
  if (b[o + 10] !== 0 || b[o + 11] !== 0) return false;
  if (type === RECORD_TOUCH) return len === 12 && b[o + 9] === 0;
  return type === RECORD_COMMIT && len >= 8 && (b[o + 9]! & ~KNOWN_FLAGS) === 0;
}

/** Receives the content of verified records during a scan. Payloads are reported by position, never copied. */
export interface RecordSink {
  message(position: number, length: number): void;
  /** A commit's metadata: the stream's state after it (`null` / `undefined`: unchanged by this record). */
  commit(
    closed: boolean,
    updatedAt: number | null,
    expiresAt: number | null,
    lastSeq: string | null,
    producer: CommitMeta['producer'],
  ): void;
  touch(expiresAt: number): void;
}

/**
 * Decodes a verified record body `b[start, end)` into `sink` (message positions are `base` + their index in `b`).
 * Returns `false` when the body is structurally invalid, which a verified CRC makes a bug or a foreign writer.
 */
export function decodeBody(b: Buffer, start: number, end: number, base: number, sink: RecordSink): boolean {
  if (end - start < 1) return false;
  const type = b[start];
  if (type === RECORD_TOUCH) {
    if (end - start !== 12) return false;
    sink.touch(b.readDoubleLE(start + 4));
    return true;
  }
  if (type !== RECORD_COMMIT || end - start < 8) return false;
  const flags = b[start + 1]!;
  if ((flags & ~KNOWN_FLAGS) !== 0) return false;
  const count = (b[start + 4]! | (b[start + 5]! << 8) | (b[start + 6]! << 16)) + b[start + 7]! * 0x1000000;
  let r = start + 8;
  let updatedAt: number | null = null;
  let expiresAt: number | null = null;
  let lastSeq: string | null = null;
  let producer: CommitMeta['producer'];
  if (flags & F_UPDATED_AT) {
    if (r + 8 > end) return false;
    updatedAt = b.readDoubleLE(r);
    r += 8;
  }
  if (flags & F_EXPIRES_AT) {
    if (r + 8 > end) return false;
    expiresAt = b.readDoubleLE(r);
    r += 8;
  }
  if (flags & F_LAST_SEQ) {
    if (r + 4 > end) return false;
    const n = b.readUInt32LE(r);
    r += 4;
    if (r + n > end) return false;
    lastSeq = b.toString('utf8', r, r + n);
    r += n;
  }
  if (flags & F_PRODUCER) {
    if (r + 4 > end) return false;
    const n = b.readUInt32LE(r);
    r += 4;
    if (r + n + 16 > end) return false;
    const id = b.toString('utf8', r, r + n);
    r += n;
    const epoch = b.readDoubleLE(r);
    const seq = b.readDoubleLE(r + 8);
    r += 16;
    producer = { id, state: { epoch, lastSeq: seq, updatedAt: updatedAt ?? 0 } };
  }
  for (let i = 0; i < count; i++) {
    if (r + 4 > end) return false;
    const n = (b[r]! | (b[r + 1]! << 8) | (b[r + 2]! << 16)) + b[r + 3]! * 0x1000000;
    r += 4;
    if (r + n > end) return false;
    sink.message(base + r, n);
    r += n;
  }
  if (r !== end) return false;
  sink.commit((flags & F_CLOSED) !== 0, updatedAt, expiresAt, lastSeq, producer);
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Stream metadata file of format 1 (meta.json): the immutable identity of a stream plus its tombstone flag. Read
// when migrating a format-1 root; format 2 keeps the same facts in the catalog.
// ---------------------------------------------------------------------------------------------------------------

export interface StreamMeta {
  readonly name: string;
  readonly config: StreamConfig;
  readonly createdAt: number;
  readonly fork: ForkInfo | null;
  readonly tombstone: boolean;
}

export const META_FORMAT = 1;

export function encodeMeta(meta: StreamMeta): Buffer {
  const body = JSON.stringify(meta);
  return Buffer.from(
    `${JSON.stringify({ format: META_FORMAT, crc: crc32(Buffer.from(body, 'utf8')), meta })}\n`,
    'utf8',
  );
}

/** Parses and verifies a meta file; throws an `Error` explaining what is wrong. */
export function decodeMeta(bytes: Uint8Array): StreamMeta {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw new Error('meta.json is not valid JSON');
  }
  const o = parsed as { format?: unknown; crc?: unknown; meta?: unknown };
  if (typeof o !== 'object' || o === null || o.format !== META_FORMAT) {
    throw new Error('meta.json has an unknown format');
  }
  const body = JSON.stringify(o.meta);
  if (typeof o.crc !== 'number' || crc32(Buffer.from(body ?? '', 'utf8')) !== o.crc) {
    throw new Error('meta.json failed its checksum');
  }
  const m = o.meta as StreamMeta;
  const c = m?.config;
  const okNum = (v: unknown): boolean => v === null || typeof v === 'number';
  if (
    typeof m !== 'object' ||
    m === null ||
    typeof m.name !== 'string' ||
    typeof m.createdAt !== 'number' ||
    typeof m.tombstone !== 'boolean' ||
    typeof c !== 'object' ||
    c === null ||
    typeof c.contentType !== 'string' ||
    !okNum(c.ttlSeconds) ||
    !okNum(c.expiresAt) ||
    typeof c.createdClosed !== 'boolean' ||
    (m.fork !== null &&
      (typeof m.fork !== 'object' ||
        typeof m.fork.source !== 'string' ||
        typeof m.fork.offset !== 'string' ||
        typeof m.fork.subOffset !== 'number'))
  ) {
    throw new Error('meta.json has missing or mistyped fields');
  }
  return m;
}
