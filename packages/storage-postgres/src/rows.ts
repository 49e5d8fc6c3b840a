import {
  type ForkInfo,
  type ForkSourceView,
  formatOffset,
  type LifecycleView,
  type Offset,
  type ProducerState,
  type StreamConfig,
  type StreamMetadata,
} from '@streamkeep/storage';

/** The columns of `streams` every query selects, in the shape {@link StreamRow} expects. */
export const STREAM_COLUMNS =
  'id, name, content_type, ttl_seconds, expires_at, created_closed, closed, tombstone, ref_count, parent_id, ' +
  'fork_source, fork_offset, fork_sub_offset, base_seq, base_bytes, message_count, total_bytes, created_at, ' +
  'updated_at, last_seq';

/** One row of `streams` as the driver returns it (int8 parsed to numbers, bytea to Buffers). */
export interface StreamRow {
  readonly id: number;
  readonly name: Buffer;
  readonly content_type: string;
  readonly ttl_seconds: number | null;
  readonly expires_at: number | null;
  readonly created_closed: boolean;
  readonly closed: boolean;
  readonly tombstone: boolean;
  readonly ref_count: number;
  readonly parent_id: number | null;
  readonly fork_source: Buffer | null;
  readonly fork_offset: string | null;
  readonly fork_sub_offset: number | null;
  readonly base_seq: number;
  readonly base_bytes: number;
  readonly message_count: number;
  readonly total_bytes: number;
  readonly created_at: number;
  readonly updated_at: number | null;
  readonly last_seq: string | null;
}

export function configOf(row: StreamRow): StreamConfig {
  return {
    contentType: row.content_type,
    ttlSeconds: row.ttl_seconds,
    expiresAt: row.expires_at,
    createdClosed: row.created_closed,
  };
}

export function tailSeq(row: StreamRow): number {
  return row.base_seq + row.message_count;
}

export function tailBytes(row: StreamRow): number {
  return row.base_bytes + row.total_bytes;
}

export function tailOf(row: StreamRow): Offset {
  return formatOffset(tailSeq(row), tailBytes(row));
}

export function forkOf(row: StreamRow): ForkInfo | null {
  if (row.fork_source === null || row.fork_offset === null) return null;
  return {
    source: row.fork_source.toString('utf8'),
    offset: row.fork_offset,
    subOffset: row.fork_sub_offset ?? 0,
  };
}

/** The row as the lifecycle rules (name claims, forks, deletes, expiry) read it. */
export function lifecycleViewOf(row: StreamRow): LifecycleView & ForkSourceView {
  return {
    config: configOf(row),
    closed: row.closed,
    tombstone: row.tombstone,
    refCount: row.ref_count,
    fork: forkOf(row),
    nextOffset: tailOf(row),
  };
}

/** The row as the access rule reads it, carrying the row through `checkFound`. */
export function accessViewOf(row: StreamRow): {
  readonly config: StreamConfig;
  readonly tombstone: boolean;
  readonly row: StreamRow;
} {
  return { config: configOf(row), tombstone: row.tombstone, row };
}

export function metadataOf(row: StreamRow): StreamMetadata {
  return {
    name: row.name.toString('utf8'),
    config: configOf(row),
    nextOffset: tailOf(row),
    closed: row.closed,
    totalBytes: row.total_bytes,
    messageCount: row.message_count,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastSeq: decodeText(row.last_seq),
    fork: forkOf(row),
  };
}

/** Stores a JavaScript string losslessly in a `text` column (NUL and lone surrogates included). */
export function encodeText(value: string): string;
export function encodeText(value: string | null): string | null;
export function encodeText(value: string | null): string | null {
  return value === null ? null : JSON.stringify(value);
}

export function decodeText(value: string | null): string | null {
  return value === null ? null : (JSON.parse(value) as string);
}

/** A producer row, as the commit rules want it. */
export interface ProducerRow {
  readonly epoch: number;
  readonly last_seq: number;
  readonly updated_at: number;
}

export function producerStateOf(row: ProducerRow): ProducerState {
  return { epoch: row.epoch, lastSeq: row.last_seq, updatedAt: row.updated_at };
}
