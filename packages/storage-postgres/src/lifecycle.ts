import {
  afterForkRemoved,
  batchBytes,
  type CreateStreamOptions,
  type CreateStreamResult,
  type DeleteResult,
  type ForkInfo,
  type ForkOptions,
  forkPrefix,
  formatOffset,
  type NameClaim,
  type Offset,
  planDelete,
  planExpiry,
  planFork,
  planNameClaim,
  type Removal,
  type StreamConfig,
  validateCreateFork,
  validateCreateStream,
  validateName,
} from '@streamkeep/storage';
import { checkLimits, insertMessages } from './commit.js';
import { BEGIN_WRITE, type Database } from './database.js';
import { chain, lockByName } from './lookup.js';
import { CAPABILITIES } from './options.js';
import { type Position, readSegments, segmentsOf } from './reads.js';
import { lifecycleViewOf, STREAM_COLUMNS, type StreamRow, tailOf } from './rows.js';
import type { Tx } from './transaction.js';

// A stream's life: create, fork (with its inherited prefix), soft or hard delete, the expiry sweep, and the removal of
// tombstones that no fork needs any more. Rows are always locked descendant first, then ancestors.

export async function createStream(
  db: Database,
  name: string,
  options: CreateStreamOptions,
): Promise<CreateStreamResult> {
  const now = db.clock.now();
  const config = validateCreateStream(CAPABILITIES, name, options, now);
  const messages = options.messages ?? [];
  return db.transaction(BEGIN_WRITE, async (tx) => {
    const held = await lockByName(tx, name);
    if ((await claim(tx, held, name, { config, fork: null }, now)) === 'existing') return answerOf(held!);
    const id = await insertStream(tx, name, config, now, messages, null);
    await checkLimits(db, tx, messages, 0);
    await insertMessages(tx, id, 0, 0, messages);
    const bytes = batchBytes(messages);
    tx.addUsage(id, bytes);
    return {
      created: true,
      nextOffset: formatOffset(messages.length, bytes),
      closed: config.createdClosed,
    };
  });
}

export async function createFork(
  db: Database,
  name: string,
  options: ForkOptions,
): Promise<CreateStreamResult> {
  const now = db.clock.now();
  const requested = validateCreateFork(CAPABILITIES, name, options, now);
  return db.transaction(BEGIN_WRITE, async (tx) => {
    // Rows are locked descendants first (the fork's name, then its source), as delete and clean-up do, so a
    // fork racing a delete of the same name cannot deadlock with it.
    const held = await lockByName(tx, name);
    const source = name === options.source ? held : await lockByName(tx, options.source);
    const plan = planFork(options, requested, source && lifecycleViewOf(source), now);
    const after =
      plan.prefixMessages === 0
        ? []
        : (
            await readSegments(
              tx,
              segmentsOf(await chain(tx, `id = ${Number(source!.id)}`)),
              { seq: plan.baseSeq, bytes: plan.baseBytes },
              undefined,
              plan.prefixMessages,
            )
          ).messages;
    const local = [...forkPrefix(plan, after), ...(options.messages ?? [])];
    if ((await claim(tx, held, name, plan, now)) === 'existing') return answerOf(held!);
    const base: Position = { seq: plan.baseSeq, bytes: plan.baseBytes };
    const id = await insertStream(tx, name, plan.config, now, local, {
      parentId: source!.id,
      source: plan.fork.source,
      offset: plan.fork.offset,
      subOffset: plan.fork.subOffset,
      base,
    });
    await checkLimits(db, tx, local, 0);
    await insertMessages(tx, id, base.seq, base.bytes, local);
    tx.write(`UPDATE ${tx.s}.streams SET ref_count = ref_count + 1 WHERE id = ${tx.param(source!.id)}`);
    const bytes = batchBytes(local);
    tx.addUsage(id, bytes);
    return {
      created: true,
      nextOffset: formatOffset(base.seq + local.length, base.bytes + bytes),
      closed: plan.config.createdClosed,
    };
  });
}

export async function deleteStream(db: Database, name: string): Promise<DeleteResult> {
  validateName(name);
  return db.transaction(BEGIN_WRITE, async (tx) => {
    const row = await lockByName(tx, name);
    const removal = planDelete(name, row && lifecycleViewOf(row));
    await apply(tx, row!, removal);
    return { softDeleted: removal === 'tombstone' };
  });
}

/** Removes (or turns into tombstones) the streams whose deadline has passed, one transaction each. */
export async function cleanupExpiredStreams(db: Database): Promise<number> {
  const now = db.clock.now();
  const due = await db.queryOnce<{ id: number }>(
    `SELECT id FROM ${db.s}.streams WHERE NOT tombstone AND expires_at IS NOT NULL ` +
      'AND expires_at <= $1::float8 ORDER BY id',
    [now],
  );
  let count = 0;
  for (const { id } of due) {
    const removed = await db.transaction(BEGIN_WRITE, async (tx) => {
      const rows = await tx.query<StreamRow>(
        `SELECT ${STREAM_COLUMNS} FROM ${tx.s}.streams WHERE id = ${Number(id)} FOR UPDATE`,
      );
      const row = rows[0];
      const removal = row && planExpiry(lifecycleViewOf(row), now);
      if (removal === undefined) return false;
      await apply(tx, row!, removal);
      return true;
    });
    if (removed) count++;
  }
  return count;
}

/**
 * Decides a create's or fork's name against the row holding it, which the transaction has locked; an expired,
 * unreferenced stream it replaces is removed here (the transaction makes that atomic with the create).
 */
async function claim(
  tx: Tx,
  held: StreamRow | undefined,
  name: string,
  requested: { readonly config: StreamConfig; readonly fork: ForkInfo | null },
  now: number,
): Promise<NameClaim> {
  const claimed = planNameClaim(name, held && lifecycleViewOf(held), requested, now);
  if (claimed === 'replace') {
    await remove(tx, held!);
    tx.released = held!.total_bytes;
  }
  return claimed;
}

async function insertStream(
  tx: Tx,
  name: string,
  config: StreamConfig,
  now: number,
  messages: readonly Uint8Array[],
  fork: {
    parentId: number;
    source: string;
    offset: Offset;
    subOffset: number;
    base: Position;
  } | null,
): Promise<number> {
  const rows = await tx.query<{ id: number }>(
    `INSERT INTO ${tx.s}.streams (name, content_type, ttl_seconds, expires_at, created_closed, closed,
       parent_id, fork_source, fork_offset, fork_sub_offset, base_seq, base_bytes, created_at, message_count,
       total_bytes)
     VALUES ($1, $2, $3, $4::float8, $5, $5, $6, $7, $8, $9, $10, $11, $12::float8, $13, $14) RETURNING id`,
    [
      Buffer.from(name, 'utf8'),
      config.contentType,
      config.ttlSeconds,
      config.expiresAt,
      config.createdClosed,
      fork?.parentId ?? null,
      fork === null ? null : Buffer.from(fork.source, 'utf8'),
      fork?.offset ?? null,
      fork?.subOffset ?? null,
      fork?.base.seq ?? 0,
      fork?.base.bytes ?? 0,
      now,
      messages.length,
      batchBytes(messages),
    ],
  );
  return rows[0]!.id;
}

async function apply(tx: Tx, row: StreamRow, removal: Removal): Promise<void> {
  if (removal === 'remove') return remove(tx, row);
  tx.write(`UPDATE ${tx.s}.streams SET tombstone = true WHERE id = ${tx.param(row.id)}`);
  tx.change('r', row.id);
}

/** Hard-deletes a locked stream, then walks up its lineage removing tombstones no fork needs any more. */
async function remove(tx: Tx, row: StreamRow): Promise<void> {
  let current: StreamRow | undefined = row;
  while (current !== undefined) {
    const parents: StreamRow[] = await tx.query<StreamRow>(
      `WITH m AS (DELETE FROM ${tx.s}.messages WHERE stream_id = $1),
            p AS (DELETE FROM ${tx.s}.producers WHERE stream_id = $1),
            s AS (DELETE FROM ${tx.s}.streams WHERE id = $1)
       SELECT ${STREAM_COLUMNS} FROM ${tx.s}.streams WHERE id = $2 FOR UPDATE`,
      [current.id, current.parent_id],
    );
    tx.addUsage(current.id, -current.total_bytes);
    tx.change('r', current.id);
    const parent = parents[0];
    if (parent === undefined) break;
    const after = afterForkRemoved(lifecycleViewOf(parent));
    if (!after.remove) {
      // At once, not queued: the queued writes go out as one statement, where a second change of this row (a fork
      // of the same source created in this transaction) would not be applied reliably.
      await tx.query(`UPDATE ${tx.s}.streams SET ref_count = $1 WHERE id = $2`, [after.refCount, parent.id]);
    }
    current = after.remove ? parent : undefined;
  }
}

/** The answer of a create or fork that found an equal stream: nothing written. */
function answerOf(row: StreamRow): CreateStreamResult {
  return { created: false, nextOffset: tailOf(row), closed: row.closed };
}
