import {
  batchBytes,
  type CommitRequest,
  checkByteLimits,
  committedResult,
  duplicateResult,
  formatOffset,
  notFound,
  type ProducerAppendResult,
  type ProducerState,
  planCommit,
  producerStateCutoff,
  reportCommit,
  StorageError,
} from '@streamkeep/storage';
import { BEGIN_WRITE, type Database } from './database.js';
import { lockByName } from './lookup.js';
import {
  configOf,
  decodeText,
  encodeText,
  type ProducerRow,
  producerStateOf,
  tailBytes,
  tailOf,
  tailSeq,
} from './rows.js';
import type { Tx } from './transaction.js';

// Writing messages: the commit transaction behind append, close and producer appends, and the message inserts and
// byte-limit checks that creates and forks share with it.

/** Inserts are split so one statement stays far below PostgreSQL's 1 GiB message and 65535-parameter limits. */
const INSERT_ROWS = 1000;
const INSERT_BYTES = 64 * 1024 * 1024;

/**
 * One commit on the stream `name`: `validate` runs the method's argument checks and returns the request to commit.
 * The stream's row is locked, the contract's `planCommit` decides on it, and data, producer state, `Stream-Seq`,
 * closure and usage are written in the same transaction.
 */
export async function commit(
  db: Database,
  name: string,
  validate: () => CommitRequest,
): Promise<ProducerAppendResult> {
  const request = validate();
  const producerId = request.producer?.id;
  const now = db.clock.now();
  let committedBytes = -1;
  return db.transaction(
    BEGIN_WRITE,
    async (tx) => {
      committedBytes = -1;
      const row = await lockByName(tx, name);
      if (row === undefined) notFound(name);
      let producers: Map<string, ProducerState> | undefined;
      if (producerId !== undefined) {
        // A separate statement after the lock: it reads the producer state as committed by whoever held the lock.
        const found = await tx.query<ProducerRow>(
          `SELECT epoch, last_seq, updated_at FROM ${tx.s}.producers WHERE stream_id = $1 AND producer_id = $2`,
          [row.id, encodeText(producerId)],
        );
        producers = new Map(found.length === 0 ? [] : [[producerId, producerStateOf(found[0]!)]]);
      }
      const tail = tailOf(row);
      const plan = planCommit(
        {
          name,
          config: configOf(row),
          closed: row.closed,
          tombstone: row.tombstone,
          lastSeq: decodeText(row.last_seq),
          nextOffset: tail,
          producers,
        },
        request,
        now,
      );
      if (plan.kind === 'duplicate') return duplicateResult(plan, tail, row.closed);
      const { messages } = request;
      await checkLimits(db, tx, messages, row.total_bytes);
      const bytes = batchBytes(messages);
      await insertMessages(tx, row.id, tailSeq(row), tailBytes(row), messages);
      const p = (v: unknown) => tx.param(v);
      tx.write(
        `UPDATE ${tx.s}.streams SET message_count = message_count + ${p(messages.length)}, ` +
          `total_bytes = total_bytes + ${p(bytes)}, closed = ${p(plan.closed)}, ` +
          `last_seq = ${p(encodeText(plan.lastSeq))}, updated_at = ${p(plan.updatedAt)}::float8, ` +
          `expires_at = ${p(plan.expiresAt)}::float8 WHERE id = ${p(row.id)}`,
      );
      if (plan.producer !== undefined) {
        const { id, state } = plan.producer;
        const streamId = p(row.id);
        const encodedId = p(encodeText(id));
        tx.write(
          `DELETE FROM ${tx.s}.producers WHERE stream_id = ${streamId} AND producer_id <> ${encodedId} ` +
            `AND updated_at < ${p(producerStateCutoff(now))}::float8`,
        );
        tx.write(
          `INSERT INTO ${tx.s}.producers (stream_id, producer_id, epoch, last_seq, updated_at) ` +
            `VALUES (${streamId}, ${encodedId}, ${p(state.epoch)}, ${p(state.lastSeq)}, ${p(state.updatedAt)}::float8) ` +
            'ON CONFLICT (stream_id, producer_id) DO UPDATE SET epoch = EXCLUDED.epoch, ' +
            'last_seq = EXCLUDED.last_seq, updated_at = EXCLUDED.updated_at',
        );
      }
      tx.addUsage(row.id, bytes);
      tx.change('w', row.id);
      committedBytes = bytes;
      const next = formatOffset(tailSeq(row) + messages.length, tailBytes(row) + bytes);
      return committedResult(request, plan, tail, next);
    },
    (tx) => {
      // A duplicate (or a refusal) commits nothing of its own: only applied commits are reported.
      if (committedBytes >= 0)
        reportCommit(db.onCommit, { entries: 1, bytes: committedBytes, syncMs: tx.commitMs });
    },
  );
}

/**
 * Inserts `messages` at consecutive offsets from `(seq, bytes)`. The last chunk is queued for the final statement;
 * earlier chunks of a large batch are sent at once, so no statement exceeds the row, byte or parameter limits.
 */
export async function insertMessages(
  tx: Tx,
  id: number,
  seq: number,
  bytes: number,
  messages: readonly Uint8Array[],
): Promise<void> {
  let i = 0;
  let nextSeq = seq;
  let nextBytes = bytes;
  while (i < messages.length) {
    const start = i;
    let chunkBytes = 0;
    while (
      i < messages.length &&
      i - start < INSERT_ROWS &&
      (i === start || chunkBytes + messages[i]!.byteLength <= INSERT_BYTES)
    ) {
      chunkBytes += messages[i]!.byteLength;
      i++;
    }
    const last = i === messages.length;
    const params: unknown[] = [];
    const param = last ? (v: unknown) => tx.param(v) : (v: unknown) => `$${params.push(v)}`;
    const streamId = param(id);
    const rows: string[] = [];
    for (let k = start; k < i; k++) {
      const message = messages[k]!;
      rows.push(`(${streamId}, ${param(nextSeq)}, ${param(nextBytes)}, ${param(message)})`);
      nextSeq += 1;
      nextBytes += message.byteLength;
    }
    const sql = `INSERT INTO ${tx.s}.messages (stream_id, seq, byte_offset, data) VALUES ${rows.join(', ')}`;
    if (last) tx.write(sql);
    else await tx.query(sql, params);
  }
}

/**
 * Checks message sizes and byte limits for a commit of `messages` onto a stream holding `streamBytes`. With a
 * storage-wide limit, the usage rows are locked (in shard order) so instances cannot overshoot it together.
 */
export async function checkLimits(
  db: Database,
  tx: Tx,
  messages: readonly Uint8Array[],
  streamBytes: number,
): Promise<void> {
  for (const message of messages) {
    if (message.byteLength > db.maxMessageBytes) {
      throw new StorageError(
        'MESSAGE_TOO_LARGE',
        `a message of ${message.byteLength} bytes exceeds the limit of ${db.maxMessageBytes} bytes`,
      );
    }
  }
  const bytes = batchBytes(messages);
  if (bytes === 0) return;
  let total = 0;
  if (db.limits.maxTotalBytes !== Number.POSITIVE_INFINITY) {
    const rows = await tx.query<{ bytes: number }>(
      `SELECT bytes FROM ${tx.s}.usage ORDER BY shard FOR UPDATE`,
    );
    tx.markUsageLocked();
    total = -tx.released;
    for (const row of rows) total += row.bytes;
  }
  checkByteLimits(db.limits, total, streamBytes, bytes);
}
