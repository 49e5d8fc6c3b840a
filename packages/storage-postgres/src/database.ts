import { type ByteLimits, type Clock, type CommitObserver, StorageError } from '@streamkeep/storage';
import pg from 'pg';
import { isNameRace, isRetryable, toStorageError } from './errors.js';
import { Notifier } from './notifier.js';
import type { ResolvedOptions } from './options.js';
import { channelOf, migrate, quoteSchema, subscriptionChannelOf } from './schema.js';
import { Tx } from './transaction.js';

// The state one storage instance shares between its operations — the pool, the LISTEN connection, the settings — and
// the machinery every operation runs through: opening (pool, migration, LISTEN), admission and close, transactions
// with retries and wake-ups, single statements.

export const BEGIN_WRITE = 'BEGIN';
export const BEGIN_READ = 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY';

export class Database {
  readonly pool: pg.Pool;
  readonly notifier: Notifier;
  /** The quoted schema, for building statements. */
  readonly s: string;
  readonly clock: Clock;
  /** Subscriptions read "now" from the database (no clock was given); see `ResolvedOptions.databaseClock`. */
  readonly databaseClock: boolean;
  readonly onCommit: CommitObserver | undefined;
  readonly limits: ByteLimits;
  readonly maxMessageBytes: number;
  readonly maxRetries: number;
  readonly #inflight = new Set<Promise<unknown>>();
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(pool: pg.Pool, notifier: Notifier, options: ResolvedOptions) {
    this.pool = pool;
    this.notifier = notifier;
    this.s = quoteSchema(options.schema);
    this.clock = options.clock;
    this.databaseClock = options.databaseClock;
    this.onCommit = options.onCommit;
    this.limits = options.limits;
    this.maxMessageBytes = options.maxMessageBytes;
    this.maxRetries = options.maxRetries;
  }

  /** Connects, creates or migrates the schema and starts listening; `UNAVAILABLE` when the database is unreachable. */
  static async connect(options: ResolvedOptions): Promise<Database> {
    const pool = new pg.Pool(options.pool);
    // Idle clients that lose their connection are discarded by the pool; without a listener the error would crash.
    pool.on('error', () => {});
    const migrated = (async () => {
      const client = await pool.connect();
      client.on('error', ignore);
      try {
        await migrate(client, options.schema);
      } finally {
        client.off('error', ignore);
        client.release();
      }
    })();
    // LISTEN needs no tables, so its connection is made while the schema is checked.
    const listening = Notifier.start(
      options.client,
      channelOf(options.schema),
      subscriptionChannelOf(options.schema),
    );
    const [migration, notifier] = await Promise.allSettled([migrated, listening]);
    if (migration.status === 'rejected' || notifier.status === 'rejected') {
      if (notifier.status === 'fulfilled') await notifier.value.close();
      await pool.end().catch(() => {});
      throw toStorageError(
        migration.status === 'rejected' ? migration.reason : (notifier as PromiseRejectedResult).reason,
      );
    }
    return new Database(pool, notifier.value, options);
  }

  /** Runs one public operation: refuses after close, and lets close wait for it. */
  run<T>(body: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new StorageError('STORAGE_CLOSED', 'storage is closed'));
    const promise = body();
    this.#inflight.add(promise);
    const forget = () => this.#inflight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  /** Refuses new operations, waits for those in flight, then closes the LISTEN connection and the pool. */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closed = true;
    this.#closing = (async () => {
      await Promise.allSettled([...this.#inflight]);
      await Promise.all([this.notifier.close(), this.pool.end().catch(() => {})]);
    })();
    return this.#closing;
  }

  /**
   * Runs `body` in a transaction on a pooled connection, again from the start after a serialization failure, a
   * deadlock or a lost race to create the same name; wakes local listeners after COMMIT.
   */
  async transaction<T>(
    begin: string,
    body: (tx: Tx) => Promise<T>,
    committed?: (tx: Tx) => void,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        throw toStorageError(err);
      }
      // A checked-out client whose connection dies also emits 'error'; the failing query reports it already.
      client.on('error', ignore);
      const tx = new Tx(client, this.s, begin);
      let value: T;
      try {
        value = await body(tx);
        await tx.commit(this.notifier.channel, (kind, id) => this.notifier.payload(kind, id));
      } catch (err) {
        let broken = false;
        if (tx.begun) await client.query('ROLLBACK').catch(() => (broken = true));
        client.off('error', ignore);
        client.release(broken ? true : undefined);
        // The commit may have happened: a spurious hint is harmless, a missing one would stall a local reader. The
        // listeners stay registered, since a removal is not certain.
        if (tx.commitSent) this.#wake(tx, true);
        if ((isRetryable(err) || isNameRace(err)) && attempt < this.maxRetries) {
          await sleep(Math.min(2 ** attempt, 50) * (0.5 + Math.random()));
          continue;
        }
        throw toStorageError(err);
      }
      client.off('error', ignore);
      client.release();
      committed?.(tx);
      this.#wake(tx);
      return value;
    }
  }

  #wake(tx: Tx, uncertain = false): void {
    for (const [kind, id] of tx.changes) this.notifier.dispatch(uncertain ? 'w' : kind, String(id));
  }

  /** One statement outside any explicit transaction. */
  async queryOnce<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    try {
      return (await this.pool.query<R>(text, values)).rows;
    } catch (err) {
      throw toStorageError(err);
    }
  }
}

function ignore(): void {}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
