import {
  checkFound,
  formatOffset,
  isVisible,
  type Offset,
  parseOffset,
  readSegments as planSegments,
  type ReadOptions,
  type ReadResult,
  readStart,
  renewedDeadline,
  type StreamListener,
  type StreamMetadata,
  type Subscription,
  tailReadResult,
  takeWithinBudget,
  validateName,
  validateRead,
  validateSubscribe,
} from '@streamkeep/storage';
import { BEGIN_READ, type Database } from './database.js';
import { chainByName, rowByName, visibleRow } from './lookup.js';
import { accessViewOf, configOf, forkOf, metadataOf, type StreamRow, tailOf } from './rows.js';
import type { Tx } from './transaction.js';

// Reading: messages across a fork lineage (with or without a byte budget), metadata, existence, and subscribing to a
// stream's wake-ups.

/** Messages per budgeted metadata page. */
const PAGE = 512;
const MAX = Number.MAX_SAFE_INTEGER;

/** A piece of a read: the messages of one stream of the lineage below `bound` (a fork point), root first. */
export interface Segment {
  readonly id: number;
  readonly boundSeq: number;
  readonly boundBytes: number;
}

/** A position in a stream's offset space: message sequence number and byte offset. */
export interface Position {
  readonly seq: number;
  readonly bytes: number;
}

export async function read(
  db: Database,
  name: string,
  from: Offset,
  options?: ReadOptions,
): Promise<ReadResult> {
  const { from: position, maxBytes } = validateRead(name, from, options);
  const now = db.clock.now();
  const { row, result } = await db.transaction(BEGIN_READ, async (tx) => {
    const chain = await chainByName(tx, name);
    const row = checkFound(name, chain[0] && accessViewOf(chain[0]), now).row;
    const tail = tailOf(row);
    if (position.kind === 'now') return { row, result: tailReadResult(tail, row.closed) };
    const at = readStart(position);
    const start: Position = { seq: Math.min(at.readSeq, MAX), bytes: Math.min(at.byteOffset, MAX) };
    const { messages, stop } = await readSegments(tx, segmentsOf(chain), start, maxBytes, undefined);
    return {
      row,
      result: {
        messages,
        nextOffset: stop ?? tail,
        upToDate: stop === undefined,
        closed: row.closed,
      } satisfies ReadResult,
    };
  });
  const deadline = renewedDeadline(configOf(row), now);
  if (deadline !== row.expires_at) {
    await db.queryOnce(
      `UPDATE ${db.s}.streams SET expires_at = GREATEST(expires_at, $2::float8) ` +
        'WHERE id = $1 AND NOT tombstone AND ttl_seconds IS NOT NULL',
      [row.id, deadline],
    );
  }
  return result;
}

export async function head(db: Database, name: string): Promise<StreamMetadata> {
  validateName(name);
  const row = await visibleRow(db, name);
  return metadataOf(row);
}

export async function exists(db: Database, name: string): Promise<boolean> {
  validateName(name);
  const row = await rowByName(db, name);
  return isVisible(row && accessViewOf(row), db.clock.now());
}

export async function subscribe(db: Database, name: string, listener: StreamListener): Promise<Subscription> {
  validateSubscribe(name, listener);
  const row = await visibleRow(db, name);
  const id = row.id;
  // A distinct wrapper per call: subscribing one function twice gives two independent registrations.
  const registration: StreamListener = () => listener();
  if (!db.notifier.add(id, registration)) {
    // The stream was removed between the lookup and the registration: give the last hint now.
    queueMicrotask(() => {
      try {
        listener();
      } catch (err) {
        process.emitWarning(`a stream listener threw: ${String(err)}`);
      }
    });
    return { unsubscribe: () => {} };
  }
  return { unsubscribe: () => db.notifier.remove(id, registration) };
}

/**
 * Reads the messages at or after `start` across a lineage's segments. With a byte budget it pages through message
 * sizes first and fetches only the payloads that fit; `stop` is then the offset of the first message left out.
 * `maxCount` caps the number of messages (used for fork prefixes).
 */
export async function readSegments(
  tx: Tx,
  segments: readonly Segment[],
  start: Position,
  maxBytes: number | undefined,
  maxCount: number | undefined,
): Promise<{ messages: Uint8Array[]; stop: Offset | undefined }> {
  const messages: Uint8Array[] = [];
  const range =
    `stream_id = $1 AND seq >= $2 AND (seq > $2 OR byte_offset >= $3) ` +
    'AND seq <= $4 AND (seq < $4 OR (seq = $4 AND byte_offset < $5))';
  let used = 0;
  for (const segment of segments) {
    if (maxBytes === undefined) {
      const limit = maxCount === undefined ? '' : ` LIMIT ${maxCount - messages.length}`;
      const rows = await tx.query<{ data: Buffer }>(
        `SELECT data FROM ${tx.s}.messages WHERE ${range} ORDER BY seq${limit}`,
        [segment.id, start.seq, start.bytes, segment.boundSeq, segment.boundBytes],
      );
      for (const row of rows) messages.push(asBytes(row.data));
      if (maxCount !== undefined && messages.length >= maxCount) break;
      continue;
    }
    let from = start;
    for (;;) {
      // One page of sizes; payloads only for the rows that fit the remaining budget. A stream's own messages are
      // contiguous, so the bytes up to and including a row are its end offset minus the page's first offset.
      const page = await tx.query<{ seq: number; byte_offset: number; len: number; data: Buffer | null }>(
        `SELECT seq, byte_offset, len, CASE WHEN fits THEN data END AS data FROM (
           SELECT seq, byte_offset, octet_length(data)::int8 AS len, data,
                  (${messages.length === 0 ? 'row_number() OVER (ORDER BY seq) = 1 OR ' : ''}
                   byte_offset + octet_length(data) - first_value(byte_offset) OVER (ORDER BY seq) <= $6) AS fits
           FROM ${tx.s}.messages WHERE ${range} ORDER BY seq LIMIT ${PAGE}
         ) AS page ORDER BY seq`,
        [
          segment.id,
          from.seq,
          from.bytes,
          segment.boundSeq,
          segment.boundBytes,
          Math.max(0, maxBytes - used),
        ],
      );
      const sizes = page.map((r) => r.len);
      const take =
        messages.length === 0
          ? takeWithinBudget(sizes, 0, sizes.length, maxBytes)
          : takeWithinBudget([used, ...sizes], 0, sizes.length + 1, maxBytes) - 1;
      for (let i = 0; i < take; i++) {
        const data = page[i]!.data;
        if (data === null) throw new Error('a read page left out a payload that fits the budget');
        messages.push(asBytes(data));
        used += data.byteLength;
      }
      if (take < page.length) {
        const next = page[take]!;
        return { messages, stop: formatOffset(next.seq, next.byte_offset) };
      }
      if (page.length < PAGE) break;
      from = { seq: page[page.length - 1]!.seq + 1, bytes: 0 };
    }
  }
  return { messages, stop: undefined };
}

/** The read segments of a stream from its chain (the stream first, then its ancestors): root first. */
export function segmentsOf(chain: readonly StreamRow[]): Segment[] {
  return planSegments(chain.map((row) => ({ id: row.id, fork: forkOf(row) }))).map(({ entry, bound }) => {
    const parsed = bound === null ? undefined : parseOffset(bound);
    return parsed?.kind === 'position'
      ? { id: entry.id, boundSeq: parsed.readSeq, boundBytes: parsed.byteOffset }
      : { id: entry.id, boundSeq: MAX, boundBytes: MAX };
  });
}

function asBytes(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}
