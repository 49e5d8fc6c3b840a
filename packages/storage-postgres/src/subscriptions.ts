import {
  checkSubscriptionWrite,
  isWellFormed,
  type ListSubscriptionsOptions,
  parseSubscriptionRecord,
  StorageError,
  type SubscriptionPlan,
  type SubscriptionRecord,
  subscriptionListingPage,
  validateListSubscriptions,
  validateMutateSubscription,
  validateSubscriptionCall,
} from '@streamkeep/storage';
import { BEGIN_WRITE, type Database } from './database.js';
import { CAPABILITIES } from './options.js';
import type { Tx } from './transaction.js';

// The subscription store over `Database`: one row per record in `subscriptions` (the record's JSON plus the columns
// the listing filters on) and one row per member in `subscription_members`, both written in the mutation's
// transaction. Every rule is the contract's planner; this module reads, serialises and writes. A creation, a new
// config or a deletion also sends a notification on the schema's subscription channel from the same transaction, so
// that other instances hear of it (`onSubscriptionsChanged`) only once it is committed and visible.

/** The database clock in epoch milliseconds, whole like `Date.now()`. */
const DATABASE_NOW = 'floor(extract(epoch FROM clock_timestamp()) * 1000)::float8';

/** A key as SQL that needs no parameter (hex digits only), so it can travel with BEGIN in one round trip. */
function keyLiteral(key: Buffer): string {
  return `decode('${key.toString('hex')}', 'hex')`;
}

/** Decodes a stored record, refusing damage (`CORRUPTED`) rather than serving it. */
function decode(id: string, text: string): SubscriptionRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new StorageError('CORRUPTED', `stored subscription ${JSON.stringify(id)} is not JSON`, {
      cause: err,
    });
  }
  const record = parseSubscriptionRecord(value);
  if (record.id !== id) {
    throw new StorageError(
      'CORRUPTED',
      `the row of subscription ${JSON.stringify(id)} holds the record of ${JSON.stringify(record.id)}`,
    );
  }
  return record;
}

export async function getSubscription(db: Database, id: string): Promise<SubscriptionRecord | undefined> {
  validateSubscriptionCall(CAPABILITIES, id);
  const rows = await db.queryOnce<{ record: string }>(
    `SELECT record FROM ${db.s}.subscriptions WHERE id = $1`,
    [Buffer.from(id, 'utf8')],
  );
  return rows[0] === undefined ? undefined : decode(id, rows[0].record);
}

/**
 * One READ COMMITTED transaction: lock the record's row and read the clock, run the plan, check and queue its write,
 * commit. A missing record has no row to lock: its first write is a plain INSERT, and when another transaction
 * inserted the same id first the primary key refuses it and the whole attempt runs again, this time against the
 * winner's row (the plan is pure, so running it twice is allowed).
 */
export async function mutateSubscription<R>(db: Database, id: string, plan: SubscriptionPlan<R>): Promise<R> {
  validateMutateSubscription(CAPABILITIES, id, plan);
  const key = Buffer.from(id, 'utf8');
  // What the plan threw, so it reaches the caller unchanged instead of mapped as a database failure.
  let thrown: { readonly error: unknown } | undefined;
  try {
    return await db.transaction(BEGIN_WRITE, async (tx) => {
      thrown = undefined;
      const { current, now } = await lockRecord(db, tx, id, key);
      let decision: ReturnType<SubscriptionPlan<R>>;
      try {
        decision = plan(current, now);
      } catch (error) {
        thrown = { error };
        throw error;
      }
      const write = checkSubscriptionWrite(id, current, decision);
      if (write !== undefined) {
        queueWrite(tx, key, current, write);
        if (current === undefined || !sameConfig(current, write)) announce(db, tx, id);
      }
      return decision.result;
    });
  } catch (err) {
    if (thrown !== undefined) throw thrown.error;
    throw err;
  }
}

/** Tells the other instances, once `tx` commits, that subscription `id` was created, reconfigured or deleted. */
function announce(db: Database, tx: Tx, id: string): void {
  tx.notify(db.notifier.subscriptionChannel, db.notifier.subscriptionPayload(id));
}

/** True when a write keeps the incarnation and config of the record (acks, wakes, membership, status). */
function sameConfig(current: SubscriptionRecord, next: SubscriptionRecord): boolean {
  return (
    current.createdAt === next.createdAt && JSON.stringify(current.config) === JSON.stringify(next.config)
  );
}

/** Registers a listener of subscription changes made through other instances (see `SubscriptionStore`). */
export function onSubscriptionsChanged(db: Database, listener: (id: string | undefined) => void): () => void {
  return db.notifier.onSubscriptionsChanged(listener);
}

/**
 * Locks the row of `id` (`FOR UPDATE`: serialised across every instance until COMMIT) and reads "now".
 *
 * @remarks
 * With the database clock, the time comes in the same statement. When the lock had to wait for a writer, PostgreSQL
 * re-evaluates the row (and so the clock) after that writer committed; when the holder wrote nothing, the time is
 * from before the wait, which is still later than the last write's. An injected clock is read after the lock.
 */
async function lockRecord(
  db: Database,
  tx: Tx,
  id: string,
  key: Buffer,
): Promise<{ current: SubscriptionRecord | undefined; now: number }> {
  const clock = db.databaseClock ? `, ${DATABASE_NOW} AS now` : '';
  const rows = await tx.query<{ record: string; now?: number }>(
    `SELECT record${clock} FROM ${db.s}.subscriptions WHERE id = ${keyLiteral(key)} FOR UPDATE`,
  );
  const row = rows[0];
  const current = row === undefined ? undefined : decode(id, row.record);
  if (!db.databaseClock) return { current, now: db.clock.now() };
  if (row !== undefined) return { current, now: row.now! };
  const [clockRow] = await tx.query<{ now: number }>(`SELECT ${DATABASE_NOW} AS now`);
  return { current, now: clockRow!.now };
}

/** Queues the record's write and the member rows it adds or drops, for the transaction's final statement. */
function queueWrite(
  tx: Tx,
  key: Buffer,
  current: SubscriptionRecord | undefined,
  next: SubscriptionRecord,
): void {
  const s = tx.s;
  const id = tx.param(key);
  const version = tx.param(next.version);
  const record = tx.param(JSON.stringify(next));
  const hasPattern = tx.param(next.config.pattern !== null);
  const lease = tx.param(next.wake.leaseExpiresAt);
  tx.write(
    current === undefined
      ? `INSERT INTO ${s}.subscriptions (id, version, record, has_pattern, lease_expires_at)
         VALUES (${id}, ${version}, ${record}, ${hasPattern}, ${lease}::float8)`
      : `UPDATE ${s}.subscriptions
         SET version = ${version}, record = ${record}, has_pattern = ${hasPattern}, lease_expires_at = ${lease}::float8
         WHERE id = ${id}`,
  );
  // Acks and wakes leave the members as they are; only membership changes touch the side table.
  const before = new Set(current?.members.map((m) => m.path));
  const after = new Set(next.members.map((m) => m.path));
  const dropped = [...before].filter((p) => !after.has(p)).map((p) => Buffer.from(p, 'utf8'));
  const added = [...after].filter((p) => !before.has(p)).map((p) => Buffer.from(p, 'utf8'));
  if (dropped.length > 0) {
    tx.write(
      `DELETE FROM ${s}.subscription_members WHERE id = ${id} AND path = ANY(${tx.param(dropped)}::bytea[])`,
    );
  }
  if (added.length > 0) {
    tx.write(
      `INSERT INTO ${s}.subscription_members (path, id)
       SELECT p, ${id} FROM unnest(${tx.param(added)}::bytea[]) AS p ON CONFLICT DO NOTHING`,
    );
  }
}

/**
 * Deletes the record, then its members in a later statement of the same transaction: the DELETE waits for a
 * mutation holding the row, and the next statement's snapshot then includes the members that mutation added.
 */
export async function deleteSubscription(db: Database, id: string): Promise<boolean> {
  validateSubscriptionCall(CAPABILITIES, id);
  const key = Buffer.from(id, 'utf8');
  return db.transaction(BEGIN_WRITE, async (tx) => {
    const deleted = await tx.query(
      `DELETE FROM ${db.s}.subscriptions WHERE id = ${keyLiteral(key)} RETURNING 1 AS one`,
    );
    if (deleted.length === 0) return false;
    tx.write(`DELETE FROM ${db.s}.subscription_members WHERE id = ${tx.param(key)}`);
    announce(db, tx, id);
    return true;
  });
}

/**
 * One statement narrows by every filter (member through the side table, pattern and expired lease through their
 * columns, `after` and `limit` when they mean in bytes what they mean in the contract); the shared
 * `subscriptionListingPage` then decides, at the same "now" the query filtered with.
 */
export async function listSubscriptions(
  db: Database,
  options?: ListSubscriptionsOptions,
): Promise<SubscriptionRecord[]> {
  const query = validateListSubscriptions(CAPABILITIES, options);
  const values: unknown[] = [];
  const param = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  const now = db.databaseClock ? DATABASE_NOW : `${param(db.clock.now())}::float8`;
  const where: string[] = [];
  // Ids are well-formed (validated on every write), so bytewise order is UTF-8 order; an `after` holding a lone
  // surrogate has no UTF-8 encoding and is left to the shared page rule, and so is the limit then.
  const exact = query.after === undefined || isWellFormed(query.after);
  if (query.after !== undefined && exact) where.push(`s.id > ${param(Buffer.from(query.after, 'utf8'))}`);
  if (query.member !== undefined) {
    where.push(
      `s.id IN (SELECT m.id FROM ${db.s}.subscription_members m WHERE m.path = ${param(Buffer.from(query.member, 'utf8'))})`,
    );
  }
  if (query.withPattern) where.push('s.has_pattern');
  if (query.withExpiredLease) where.push('s.lease_expires_at <= clock.now');
  let sql = `WITH clock AS (SELECT ${now} AS now)
    SELECT s.id, s.record, clock.now FROM clock, ${db.s}.subscriptions s
    ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY s.id`;
  if (exact && query.limit !== undefined) sql += ` LIMIT ${param(query.limit)}::int8`;
  const rows = await db.queryOnce<{ id: Buffer; record: string; now: number }>(sql, values);
  if (rows.length === 0) return [];
  const records = rows.map((row) => decode(row.id.toString('utf8'), row.record));
  return subscriptionListingPage(records, query, rows[0]!.now);
}
