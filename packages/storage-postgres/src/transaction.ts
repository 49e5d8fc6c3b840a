import type pg from 'pg';
import type { ChangeKind } from './notifier.js';
import { USAGE_SHARDS } from './schema.js';

/**
 * One attempt at a transaction on a pooled connection. Statements that need an answer run at once; the final writes
 * (message inserts, row updates, usage counters, notifications) are queued as data-modifying CTEs and sent together
 * with the `pg_notify` calls in one statement just before COMMIT, which saves round trips on the hot path.
 */
export class Tx {
  readonly client: pg.PoolClient;
  /** Quoted schema, for building statements. */
  readonly s: string;
  #begin: string | undefined;
  readonly #writes: string[] = [];
  readonly #params: unknown[] = [];
  readonly #usage = new Map<number, number>();
  readonly #changes: [ChangeKind, number][] = [];
  /** Notifications on other channels than the streams' one: `[channel, payload]`. */
  readonly #notices: [string, string][] = [];
  #usageLocked = false;

  constructor(client: pg.PoolClient, schema: string, begin: string) {
    this.client = client;
    this.s = schema;
    this.#begin = begin;
  }

  /** True once BEGIN was sent (so a failure needs a ROLLBACK). */
  get begun(): boolean {
    return this.#begin === undefined;
  }

  /** Runs a statement now. The first one of the attempt carries the BEGIN along when it has no parameters. */
  async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    if (this.#begin !== undefined) {
      const begin = this.#begin;
      this.#begin = undefined;
      if (values === undefined || values.length === 0) {
        const results = (await this.client.query(`${begin}; ${text}`)) as unknown as pg.QueryResult<R>[];
        return results[1]!.rows;
      }
      await this.client.query(begin);
    }
    return (await this.client.query<R>(text, values)).rows;
  }

  /** A placeholder for `value` in the queued final statement. */
  param(value: unknown): string {
    this.#params.push(value);
    return `$${this.#params.length}`;
  }

  /** Queues a data-modifying statement (built with {@link Tx.param}) for the final statement. */
  write(statement: string): void {
    this.#writes.push(statement);
  }

  /** Adds `delta` payload bytes to the usage counter of stream `id`. */
  addUsage(id: number, delta: number): void {
    if (delta === 0) return;
    const shard = id % USAGE_SHARDS;
    this.#usage.set(shard, (this.#usage.get(shard) ?? 0) + delta);
  }

  /**
   * Payload bytes of the expired stream this create or fork replaces. The storage-wide limit is checked as if they
   * were already gone (the contract counts only the replaced stream itself, not ancestors its removal releases).
   */
  released = 0;

  /** Records that the usage rows are already locked (the storage-wide limit check locks them all). */
  markUsageLocked(): void {
    this.#usageLocked = true;
  }

  /** Announces a change of stream `id` to every instance once the transaction commits. */
  change(kind: ChangeKind, id: number): void {
    this.#changes.push([kind, id]);
  }

  get changes(): readonly (readonly [ChangeKind, number])[] {
    return this.#changes;
  }

  /** Sends `payload` on `channel` with the final statement, so that it is delivered only if and after COMMIT. */
  notify(channel: string, payload: string): void {
    this.#notices.push([channel, payload]);
  }

  /** Sends the queued writes and notifications, then commits. */
  async commit(channel: string, payload: (kind: ChangeKind, id: number) => string): Promise<void> {
    if (this.#begin !== undefined) {
      if (
        this.#writes.length === 0 &&
        this.#changes.length === 0 &&
        this.#notices.length === 0 &&
        this.#usage.size === 0
      ) {
        return;
      }
      await this.client.query(this.#begin);
      this.#begin = undefined;
    }
    const shards = [...this.#usage.entries()].filter(([, d]) => d !== 0).sort((a, b) => a[0] - b[0]);
    if (shards.length > 1 && !this.#usageLocked) {
      // Usage rows are locked in shard order so that two multi-stream commits cannot deadlock on them.
      await this.client.query(
        `SELECT 1 FROM ${this.s}.usage WHERE shard = ANY($1::int[]) ORDER BY shard FOR UPDATE`,
        [shards.map(([shard]) => shard)],
      );
    }
    shards.forEach(([shard, delta]) => {
      this.write(
        `UPDATE ${this.s}.usage SET bytes = bytes + ${this.param(delta)} WHERE shard = ${this.param(shard)}`,
      );
    });
    let select = 'SELECT 1';
    if (this.#notices.length > 0) {
      const notices = [
        ...this.#changes.map(([kind, id]): [string, string] => [channel, payload(kind, id)]),
        ...this.#notices,
      ];
      const channels = this.param(notices.map(([c]) => c));
      const payloads = this.param(notices.map(([, p]) => p));
      select = `SELECT pg_notify(c, p) FROM unnest(${channels}::text[], ${payloads}::text[]) AS n(c, p)`;
    } else if (this.#changes.length > 0) {
      const payloads = this.#changes.map(([kind, id]) => payload(kind, id));
      select = `SELECT pg_notify(${this.param(channel)}, p) FROM unnest(${this.param(payloads)}::text[]) AS p`;
    }
    const started = performance.now();
    if (this.#writes.length > 0 || this.#changes.length > 0 || this.#notices.length > 0) {
      const ctes = this.#writes.map((w, i) => `w${i} AS (${w})`).join(', ');
      await this.client.query(ctes.length > 0 ? `WITH ${ctes} ${select}` : select, this.#params);
    }
    this.commitSent = true;
    await this.client.query('COMMIT');
    this.commitMs = performance.now() - started;
  }

  /** Time the final write statement and COMMIT took (what makes the transaction durable). */
  commitMs = 0;

  /** True once COMMIT was sent: after a failure from then on, the outcome is unknown. */
  commitSent = false;
}
