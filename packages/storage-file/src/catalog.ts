import { hash } from 'node:crypto';
import {
  type ForkInfo,
  parseOffset,
  parseSubscriptionRecord,
  type StreamConfig,
  type SubscriptionRecord,
} from '@streamkeep/storage';

const NO_BASE = { readSeq: 0, byteOffset: 0 } as const;

/**
 * The catalog: one record per stream with what does not change with appends (name, config, creation time, lineage,
 * tombstone, the salt of its log). It lives in memory for every stream, loaded or not, and is persisted in two
 * places: lifecycle changes (create, tombstone, delete) as entries of the commit journal, made durable by the same
 * `fdatasync` rounds as group writes, and the whole table as a snapshot file (`catalog`) written at each checkpoint,
 * after which the journal is emptied. Opening reads the snapshot and applies the journal's catalog entries: no
 * per-stream file is touched until a stream is first used.
 */

/** Where a carried log lies in the catalog snapshot's carried region, with the crc32 of its bytes. */
export interface CarriedRef {
  readonly pos: number;
  readonly len: number;
  readonly crc: number;
}

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
  /**
   * A small stream's log bytes from position 0 (header and records, exactly what its log file would hold), carried
   * in the catalog snapshot instead of a file of its own (see `carry.ts`). Authoritative while set: a log file of
   * the stream, if one exists, is not trusted until a checkpoint has synced it and dropped this copy.
   */
  inline: Buffer | undefined;
  /**
   * A carried log read at open and not loaded yet: where its bytes lie in the snapshot's carried region, and their
   * checksum (`Catalog.carriedNow` / `readCarried`). Set only while `inline` is not.
   */
  carried: CarriedRef | undefined;
  /**
   * A file with the whole carried log was written in this process (not yet synced by a checkpoint): a stream loaded
   * again reads that file, as the entry that wrote it would, rather than the carried copy.
   */
  materialized = false;
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

  /** Where the stream's own messages start: its fork offset, or (0, 0). */
  base(): { readonly readSeq: number; readonly byteOffset: number } {
    if (this.fork === null) return NO_BASE;
    return parseOffset(this.fork.offset) as { readSeq: number; byteOffset: number };
  }

  /** The stream's file id: a SHA-256 of its name (any name maps to a short, safe, fixed-length file name). */
  get id(): string {
    this.idCache ??= streamId(this.name);
    return this.idCache;
  }
}

export function streamId(name: string): string {
  // The one-shot `hash` costs a third of `createHash`'s for a short input: a first write to a stream pays it.
  return hash('sha256', name, 'hex');
}

// ---------------------------------------------------------------------------------------------------------------
// Catalog entries of the journal: JSON, one lifecycle change or one subscription write each.
// ---------------------------------------------------------------------------------------------------------------

/** A journaled lifecycle change of a stream. */
export type StreamCatalogOp =
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

/**
 * A journaled subscription write (`subscriptions.ts`): the whole new record of `id`, or `null` for a delete. Applying
 * it twice is harmless, so the journal's entries may be replayed over a `subscriptions` file that already has them.
 */
export interface SubscriptionOp {
  readonly op: 'subscription';
  readonly id: string;
  readonly record: SubscriptionRecord | null;
}

export type CatalogOp = StreamCatalogOp | SubscriptionOp;

export function encodeCatalogOp(op: CatalogOp): Buffer {
  return Buffer.from(JSON.stringify(op), 'utf8');
}

export function decodeCatalogOp(bytes: Uint8Array): CatalogOp {
  const o = JSON.parse(
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
  ) as CatalogOp;
  if (typeof o === 'object' && o !== null && o.op === 'subscription') {
    if (typeof o.id !== 'string') throw new Error('bad catalog entry');
    const record = o.record === null ? null : parseSubscriptionRecord(o.record);
    if (record !== null && record.id !== o.id) throw new Error('bad catalog entry');
    return { op: 'subscription', id: o.id, record };
  }
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

/** What {@link applyCatalogOp} needs of a catalog. */
export interface CatalogMap {
  get(name: string): CatalogRecord | undefined;
  set(name: string, record: CatalogRecord): unknown;
  delete(name: string): boolean;
}

/** Applies one journaled change to a catalog (at open, replaying the journal). */
export function applyCatalogOp(catalog: CatalogMap, op: StreamCatalogOp): void {
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
