import {
  isVisible,
  isWellFormed,
  type ListStreamsOptions,
  listingPage,
  type StreamMetadata,
  validateListStreams,
} from '@streamkeep/storage';
import type { Database } from './database.js';
import { CAPABILITIES } from './options.js';
import { accessViewOf, metadataOf, STREAM_COLUMNS, type StreamRow } from './rows.js';

// Questions about the whole schema rather than one stream: the listing of visible streams and the total payload bytes.

export async function listStreams(db: Database, options?: ListStreamsOptions): Promise<StreamMetadata[]> {
  const query = validateListStreams(CAPABILITIES, options);
  const now = db.clock.now();
  const { prefix, after, limit } = query;
  // The query narrows by visibility and by the listing rule where UTF-8 bytes express it exactly (well-formed
  // strings compare and prefix-match the same as bytes); `isVisible` and `listingPage` then decide, so the rules
  // are applied as the contract states them.
  const exact =
    (prefix === undefined || isWellFormed(prefix)) && (after === undefined || isWellFormed(after));
  const values: unknown[] = [now];
  let where = 'NOT tombstone AND (expires_at IS NULL OR expires_at > $1::float8)';
  if (exact && prefix !== undefined && prefix.length > 0) {
    const bytes = Buffer.from(prefix, 'utf8');
    values.push(bytes, bytes.length);
    where += ` AND substring(name FROM 1 FOR $${values.length}::int) = $${values.length - 1}::bytea`;
  }
  if (exact && after !== undefined) {
    values.push(Buffer.from(after, 'utf8'));
    where += ` AND name > $${values.length}::bytea`;
  }
  let sql = `SELECT ${STREAM_COLUMNS} FROM ${db.s}.streams WHERE ${where} ORDER BY name`;
  if (exact && limit !== undefined) {
    values.push(limit);
    sql += ` LIMIT $${values.length}::int8`;
  }
  const rows = await db.queryOnce<StreamRow>(sql, values);
  const visible = rows.filter((row) => isVisible(accessViewOf(row), now));
  return listingPage(visible.map(metadataOf), query);
}

/** Payload bytes currently stored across all streams of the schema (tombstones included), by every instance. */
export async function totalBytes(db: Database): Promise<number> {
  const rows = await db.queryOnce<{ total: number }>(
    `SELECT COALESCE(sum(bytes), 0)::int8 AS total FROM ${db.s}.usage`,
  );
  return rows[0]!.total;
}
