import {
  type AppendRequest,
  type AppendResult,
  afterForkRemoved,
  appendResultOf,
  type ByteLimits,
  batchBytes,
  type Clock,
  type CommitObserver,
  type CommitRequest,
  type CreateStreamOptions,
  type CreateStreamResult,
  checkByteLimits,
  checkFound,
  committedResult,
  type DeleteResult,
  duplicateResult,
  type ForkInfo,
  type ForkOptions,
  forkPrefix,
  formatOffset,
  isVisible,
  isWellFormed,
  type ListStreamsOptions,
  listingPage,
  type NameClaim,
  notFound,
  type Offset,
  type ProducerAppendRequest,
  type ProducerAppendResult,
  type ProducerState,
  parseOffset,
  planCommit,
  planDelete,
  planExpiry,
  planFork,
  planNameClaim,
  producerStateCutoff,
  type ReadOptions,
  type ReadResult,
  type Removal,
  readSegments,
  readStart,
  renewedDeadline,
  reportCommit,
  resolveByteLimits,
  type Storage,
  type StorageCapabilities,
  StorageError,
  type StreamConfig,
  type StreamListener,
  type StreamMetadata,
  type Subscription,
  systemClock,
  tailReadResult,
  takeWithinBudget,
  validateAppend,
  validateCloseStream,
  validateCreateFork,
  validateCreateStream,
  validateListStreams,
  validateName,
  validateProducerAppend,
  validateRead,
  validateSubscribe,
} from '@streamkeep/storage';
import pg from 'pg';
import { isNameRace, isRetryable, toStorageError } from './errors.js';
import { Notifier } from './notifier.js';
import {
  accessViewOf,
  configOf,
  decodeText,
  encodeText,
  forkOf,
  lifecycleViewOf,
  metadataOf,
  type ProducerRow,
  producerStateOf,
  STREAM_COLUMNS,
  type StreamRow,
  tailBytes,
  tailOf,
  tailSeq,
} from './rows.js';
import { channelOf, migrate, quoteSchema } from './schema.js';
import { Tx } from './transaction.js';

/** Connection-pool settings passed through to `pg.Pool` (and, minus the pool-only ones, to the LISTEN client). */
export type PostgresPoolOptions = Omit<pg.PoolConfig, 'connectionString' | 'types'>;

/** Options of {@link PostgresStorage.open}. */
export interface PostgresStorageOptions {
  /** A libpq-style connection URL, e.g. `postgresql://user:pass@db:5432/app`. Optional when `pool` names the host. */
  readonly connectionString?: string | undefined;
  /** The schema holding Streamkeep's tables; created or migrated on open. @default 'streamkeep' */
  readonly schema?: string | undefined;
  /** Source of "now" for expiry, TTL renewal, timestamps and producer pruning. @default systemClock */
  readonly clock?: Clock | undefined;
  /** Payload bytes across all streams of the schema, enforced across instances. @default Infinity */
  readonly maxTotalBytes?: number | undefined;
  /** Payload bytes stored locally by one stream. @default Infinity */
  readonly maxStreamBytes?: number | undefined;
  /** The largest single message accepted (`MESSAGE_TOO_LARGE` above). At most 512 MiB. @default 256 MiB */
  readonly maxMessageBytes?: number | undefined;
  /** How often a transaction that hit a serialization failure or deadlock is run again. @default 10 */
  readonly maxRetries?: number | undefined;
  /** Pool settings (`max`, `idleTimeoutMillis`, `connectionTimeoutMillis`, `ssl`, …). @default { max: 10 } */
  readonly pool?: PostgresPoolOptions | undefined;
  /**
   * Called after each applied commit (one per transaction), `syncMs` being the time its last statement and COMMIT
   * took. See `CommitReport` in `@streamkeep/storage`.
   */
  readonly onCommit?: CommitObserver | undefined;
}

const CAPABILITIES: StorageCapabilities = Object.freeze({
  durable: true,
  forks: true,
  expiry: true,
  producers: true,
  listStreams: true,
  byteLimits: true,
  multiInstance: true,
});

const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;
const HARD_MAX_MESSAGE_BYTES = 512 * 1024 * 1024;
/** Messages per budgeted metadata page. */
const PAGE = 512;
/** Inserts are split so one statement stays far below PostgreSQL's 1 GiB message and 65535-parameter limits. */
const INSERT_ROWS = 1000;
const INSERT_BYTES = 64 * 1024 * 1024;
const MAX = Number.MAX_SAFE_INTEGER;

const BEGIN_WRITE = 'BEGIN';
const BEGIN_READ = 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY';

const POOL_ONLY_KEYS = [
  'max',
  'min',
  'idleTimeoutMillis',
  'allowExitOnIdle',
  'maxUses',
  'maxLifetimeSeconds',
  'log',
  'Promise',
] as const;

/** Parses int8 as a JavaScript number: every count, offset and size stays below 2^53. */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === 20 && format !== 'binary') return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** A piece of a read: the messages of one stream of the lineage below `bound` (a fork point), root first. */
interface Segment {
  readonly id: number;
  readonly boundSeq: number;
  readonly boundBytes: number;
}

interface Position {
  readonly seq: number;
  readonly bytes: number;
}

/**
 * A {@link Storage} on PostgreSQL: durable, and shared by any number of instances (processes) over one database.
 *
 * @remarks
 * Every commit is one READ COMMITTED transaction that locks the stream's row (`SELECT … FOR UPDATE`), applies the
 * contract's shared rules (`planCommit`, `checkByteLimits`, …) to the row it locked, and writes data, producer state,
 * `Stream-Seq`, closure, usage counters and the wake-up notification before COMMIT. Reads run in a REPEATABLE READ
 * read-only transaction, so one read sees one instant.
 */
export class PostgresStorage implements Storage {
  readonly specificationVersion = 'v1' as const;
  readonly capabilities: StorageCapabilities = CAPABILITIES;

  readonly #pool: pg.Pool;
  readonly #notifier: Notifier;
  readonly #s: string;
  readonly #clock: Clock;
  readonly #onCommit: CommitObserver | undefined;
  readonly #limits: ByteLimits;
  readonly #maxMessageBytes: number;
  readonly #maxRetries: number;
  readonly #inflight = new Set<Promise<unknown>>();
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(
    pool: pg.Pool,
    notifier: Notifier,
    schema: string,
    options: PostgresStorageOptions,
    limits: ByteLimits,
  ) {
    this.#pool = pool;
    this.#notifier = notifier;
    this.#s = quoteSchema(schema);
    this.#clock = options.clock ?? systemClock;
    this.#onCommit = options.onCommit;
    this.#limits = limits;
    this.#maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#maxRetries = options.maxRetries ?? 10;
  }

  /**
   * Connects, creates or migrates the schema, starts listening for other instances' commits, and resolves once the
   * storage is ready.
   *
   * @throws RangeError for invalid options; StorageError `UNAVAILABLE` when the database cannot be reached.
   */
  static async open(options: PostgresStorageOptions): Promise<PostgresStorage> {
    const schema = options.schema ?? 'streamkeep';
    quoteSchema(schema);
    const limits = resolveByteLimits(options);
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (
      !Number.isSafeInteger(maxMessageBytes) ||
      maxMessageBytes < 0 ||
      maxMessageBytes > HARD_MAX_MESSAGE_BYTES
    ) {
      throw new RangeError(`maxMessageBytes must be an integer between 0 and ${HARD_MAX_MESSAGE_BYTES}`);
    }
    const maxRetries = options.maxRetries ?? 10;
    if (!Number.isSafeInteger(maxRetries) || maxRetries < 0) throw new RangeError('maxRetries must be >= 0');

    const poolOptions: pg.PoolConfig = { max: 10, ...options.pool, types: TYPES };
    if (options.connectionString !== undefined) poolOptions.connectionString = options.connectionString;
    const clientOptions: Record<string, unknown> = { ...poolOptions };
    for (const key of POOL_ONLY_KEYS) delete clientOptions[key];

    const pool = new pg.Pool(poolOptions);
    // Idle clients that lose their connection are discarded by the pool; without a listener the error would crash.
    pool.on('error', () => {});
    const migrated = (async () => {
      const client = await pool.connect();
      client.on('error', ignore);
      try {
        await migrate(client, schema);
      } finally {
        client.off('error', ignore);
        client.release();
      }
    })();
    // LISTEN needs no tables, so its connection is made while the schema is checked.
    const listening = Notifier.start(clientOptions as pg.ClientConfig, channelOf(schema));
    const [migration, notifier] = await Promise.allSettled([migrated, listening]);
    if (migration.status === 'rejected' || notifier.status === 'rejected') {
      if (notifier.status === 'fulfilled') await notifier.value.close();
      await pool.end().catch(() => {});
      throw toStorageError(
        migration.status === 'rejected' ? migration.reason : (notifier as PromiseRejectedResult).reason,
      );
    }
    return new PostgresStorage(pool, notifier.value, schema, options, limits);
  }

  /** Payload bytes currently stored across all streams of the schema (tombstones included), by every instance. */
  async totalBytes(): Promise<number> {
    return this.#run(async () => {
      const rows = await this.#queryOnce<{ total: number }>(
        `SELECT COALESCE(sum(bytes), 0)::int8 AS total FROM ${this.#s}.usage`,
      );
      return rows[0]!.total;
    });
  }

  // ----- create and fork ------------------------------------------------------------------------------------------

  async createStream(name: string, options: CreateStreamOptions): Promise<CreateStreamResult> {
    return this.#run(async () => {
      const now = this.#clock.now();
      const config = validateCreateStream(CAPABILITIES, name, options, now);
      const messages = options.messages ?? [];
      return this.#transaction(BEGIN_WRITE, async (tx) => {
        const held = await this.#lockByName(tx, name);
        if ((await this.#claim(tx, held, name, { config, fork: null }, now)) === 'existing')
          return answerOf(held!);
        const id = await this.#insertStream(tx, name, config, now, messages, null);
        await this.#checkLimits(tx, messages, 0);
        await this.#insertMessages(tx, id, 0, 0, messages);
        const bytes = batchBytes(messages);
        tx.addUsage(id, bytes);
        return {
          created: true,
          nextOffset: formatOffset(messages.length, bytes),
          closed: config.createdClosed,
        };
      });
    });
  }

  async createFork(name: string, options: ForkOptions): Promise<CreateStreamResult> {
    return this.#run(async () => {
      const now = this.#clock.now();
      const requested = validateCreateFork(CAPABILITIES, name, options, now);
      return this.#transaction(BEGIN_WRITE, async (tx) => {
        // Rows are locked descendants first (the fork's name, then its source), as delete and clean-up do, so a
        // fork racing a delete of the same name cannot deadlock with it.
        const held = await this.#lockByName(tx, name);
        const source = name === options.source ? held : await this.#lockByName(tx, options.source);
        const plan = planFork(options, requested, source && lifecycleViewOf(source), now);
        const after =
          plan.prefixMessages === 0
            ? []
            : (
                await this.#readSegments(
                  tx,
                  segmentsOf(await this.#chain(tx, `id = ${Number(source!.id)}`)),
                  { seq: plan.baseSeq, bytes: plan.baseBytes },
                  undefined,
                  plan.prefixMessages,
                )
              ).messages;
        const local = [...forkPrefix(plan, after), ...(options.messages ?? [])];
        if ((await this.#claim(tx, held, name, plan, now)) === 'existing') return answerOf(held!);
        const base: Position = { seq: plan.baseSeq, bytes: plan.baseBytes };
        const id = await this.#insertStream(tx, name, plan.config, now, local, {
          parentId: source!.id,
          source: plan.fork.source,
          offset: plan.fork.offset,
          subOffset: plan.fork.subOffset,
          base,
        });
        await this.#checkLimits(tx, local, 0);
        await this.#insertMessages(tx, id, base.seq, base.bytes, local);
        tx.write(
          `UPDATE ${this.#s}.streams SET ref_count = ref_count + 1 WHERE id = ${tx.param(source!.id)}`,
        );
        const bytes = batchBytes(local);
        tx.addUsage(id, bytes);
        return {
          created: true,
          nextOffset: formatOffset(base.seq + local.length, base.bytes + bytes),
          closed: plan.config.createdClosed,
        };
      });
    });
  }

  // ----- commits --------------------------------------------------------------------------------------------------

  async append(name: string, request: AppendRequest): Promise<AppendResult> {
    const result = await this.#commit(name, () => {
      validateAppend(name, request);
      return request;
    });
    return appendResultOf(result);
  }

  async closeStream(name: string, options?: { readonly seq?: string | undefined }): Promise<AppendResult> {
    return appendResultOf(await this.#commit(name, () => validateCloseStream(name, options)));
  }

  appendWithProducer(name: string, request: ProducerAppendRequest): Promise<ProducerAppendResult> {
    return this.#commit(name, () => {
      validateProducerAppend(CAPABILITIES, name, request);
      return request;
    });
  }

  /** One commit: `validate` runs the method's argument checks and returns the request to commit. */
  #commit(name: string, validate: () => CommitRequest): Promise<ProducerAppendResult> {
    return this.#run(async () => {
      const request = validate();
      const producerId = request.producer?.id;
      const now = this.#clock.now();
      let committedBytes = -1;
      return this.#transaction(
        BEGIN_WRITE,
        async (tx) => {
          committedBytes = -1;
          const row = await this.#lockByName(tx, name);
          if (row === undefined) notFound(name);
          let producers: Map<string, ProducerState> | undefined;
          if (producerId !== undefined) {
            // A separate statement after the lock: it reads the producer state as committed by whoever held the lock.
            const found = await tx.query<ProducerRow>(
              `SELECT epoch, last_seq, updated_at FROM ${this.#s}.producers WHERE stream_id = $1 AND producer_id = $2`,
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
          await this.#checkLimits(tx, messages, row.total_bytes);
          const bytes = batchBytes(messages);
          await this.#insertMessages(tx, row.id, tailSeq(row), tailBytes(row), messages);
          const p = (v: unknown) => tx.param(v);
          tx.write(
            `UPDATE ${this.#s}.streams SET message_count = message_count + ${p(messages.length)}, ` +
              `total_bytes = total_bytes + ${p(bytes)}, closed = ${p(plan.closed)}, ` +
              `last_seq = ${p(encodeText(plan.lastSeq))}, updated_at = ${p(plan.updatedAt)}::float8, ` +
              `expires_at = ${p(plan.expiresAt)}::float8 WHERE id = ${p(row.id)}`,
          );
          if (plan.producer !== undefined) {
            const { id, state } = plan.producer;
            const streamId = p(row.id);
            const encodedId = p(encodeText(id));
            tx.write(
              `DELETE FROM ${this.#s}.producers WHERE stream_id = ${streamId} AND producer_id <> ${encodedId} ` +
                `AND updated_at < ${p(producerStateCutoff(now))}::float8`,
            );
            tx.write(
              `INSERT INTO ${this.#s}.producers (stream_id, producer_id, epoch, last_seq, updated_at) ` +
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
            reportCommit(this.#onCommit, { entries: 1, bytes: committedBytes, syncMs: tx.commitMs });
        },
      );
    });
  }

  // ----- reads ----------------------------------------------------------------------------------------------------

  async read(name: string, from: Offset, options?: ReadOptions): Promise<ReadResult> {
    return this.#run(async () => {
      const { from: position, maxBytes } = validateRead(name, from, options);
      const now = this.#clock.now();
      const { row, result } = await this.#transaction(BEGIN_READ, async (tx) => {
        const chain = await this.#chainByName(tx, name);
        const row = checkFound(name, chain[0] && accessViewOf(chain[0]), now).row;
        const tail = tailOf(row);
        if (position.kind === 'now') return { row, result: tailReadResult(tail, row.closed) };
        const at = readStart(position);
        const start: Position = { seq: Math.min(at.readSeq, MAX), bytes: Math.min(at.byteOffset, MAX) };
        const { messages, stop } = await this.#readSegments(
          tx,
          segmentsOf(chain),
          start,
          maxBytes,
          undefined,
        );
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
        await this.#queryOnce(
          `UPDATE ${this.#s}.streams SET expires_at = GREATEST(expires_at, $2::float8) ` +
            'WHERE id = $1 AND NOT tombstone AND ttl_seconds IS NOT NULL',
          [row.id, deadline],
        );
      }
      return result;
    });
  }

  async head(name: string): Promise<StreamMetadata> {
    return this.#run(async () => {
      validateName(name);
      const row = await this.#visibleRow(name);
      return metadataOf(row);
    });
  }

  async exists(name: string): Promise<boolean> {
    return this.#run(async () => {
      validateName(name);
      const row = await this.#rowByName(name);
      return isVisible(row && accessViewOf(row), this.#clock.now());
    });
  }

  async subscribe(name: string, listener: StreamListener): Promise<Subscription> {
    return this.#run(async () => {
      validateSubscribe(name, listener);
      const row = await this.#visibleRow(name);
      const id = row.id;
      // A distinct wrapper per call: subscribing one function twice gives two independent registrations.
      const registration: StreamListener = () => listener();
      if (!this.#notifier.add(id, registration)) {
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
      return { unsubscribe: () => this.#notifier.remove(id, registration) };
    });
  }

  async listStreams(options?: ListStreamsOptions): Promise<StreamMetadata[]> {
    return this.#run(async () => {
      const query = validateListStreams(CAPABILITIES, options);
      const now = this.#clock.now();
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
      let sql = `SELECT ${STREAM_COLUMNS} FROM ${this.#s}.streams WHERE ${where} ORDER BY name`;
      if (exact && limit !== undefined) {
        values.push(limit);
        sql += ` LIMIT $${values.length}::int8`;
      }
      const rows = await this.#queryOnce<StreamRow>(sql, values);
      const visible = rows.filter((row) => isVisible(accessViewOf(row), now));
      return listingPage(visible.map(metadataOf), query);
    });
  }

  // ----- deletion and expiry --------------------------------------------------------------------------------------

  async delete(name: string): Promise<DeleteResult> {
    return this.#run(async () => {
      validateName(name);
      return this.#transaction(BEGIN_WRITE, async (tx) => {
        const row = await this.#lockByName(tx, name);
        const removal = planDelete(name, row && lifecycleViewOf(row));
        await this.#apply(tx, row!, removal);
        return { softDeleted: removal === 'tombstone' };
      });
    });
  }

  async cleanupExpiredStreams(): Promise<number> {
    return this.#run(async () => {
      const now = this.#clock.now();
      const due = await this.#queryOnce<{ id: number }>(
        `SELECT id FROM ${this.#s}.streams WHERE NOT tombstone AND expires_at IS NOT NULL ` +
          'AND expires_at <= $1::float8 ORDER BY id',
        [now],
      );
      let count = 0;
      for (const { id } of due) {
        const removed = await this.#transaction(BEGIN_WRITE, async (tx) => {
          const rows = await tx.query<StreamRow>(
            `SELECT ${STREAM_COLUMNS} FROM ${this.#s}.streams WHERE id = ${Number(id)} FOR UPDATE`,
          );
          const row = rows[0];
          const removal = row && planExpiry(lifecycleViewOf(row), now);
          if (removal === undefined) return false;
          await this.#apply(tx, row!, removal);
          return true;
        });
        if (removed) count++;
      }
      return count;
    });
  }

  async close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closed = true;
    this.#closing = (async () => {
      await Promise.allSettled([...this.#inflight]);
      await Promise.all([this.#notifier.close(), this.#pool.end().catch(() => {})]);
    })();
    return this.#closing;
  }

  // ----- machinery ------------------------------------------------------------------------------------------------

  /** Runs one public operation: refuses after close, and lets close wait for it. */
  #run<T>(body: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new StorageError('STORAGE_CLOSED', 'storage is closed'));
    const promise = body();
    this.#inflight.add(promise);
    const forget = () => this.#inflight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  /**
   * Runs `body` in a transaction on a pooled connection, again from the start after a serialization failure, a
   * deadlock or a lost race to create the same name; wakes local listeners after COMMIT.
   */
  async #transaction<T>(
    begin: string,
    body: (tx: Tx) => Promise<T>,
    committed?: (tx: Tx) => void,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.#pool.connect();
      } catch (err) {
        throw toStorageError(err);
      }
      // A checked-out client whose connection dies also emits 'error'; the failing query reports it already.
      client.on('error', ignore);
      const tx = new Tx(client, this.#s, begin);
      let value: T;
      try {
        value = await body(tx);
        await tx.commit(this.#notifier.channel, (kind, id) => this.#notifier.payload(kind, id));
      } catch (err) {
        let broken = false;
        if (tx.begun) await client.query('ROLLBACK').catch(() => (broken = true));
        client.off('error', ignore);
        client.release(broken ? true : undefined);
        // The commit may have happened: a spurious hint is harmless, a missing one would stall a local reader. The
        // listeners stay registered, since a removal is not certain.
        if (tx.commitSent) this.#wake(tx, true);
        if ((isRetryable(err) || isNameRace(err)) && attempt < this.#maxRetries) {
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
    for (const [kind, id] of tx.changes) this.#notifier.dispatch(uncertain ? 'w' : kind, String(id));
  }

  /** One statement outside any explicit transaction. */
  async #queryOnce<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    try {
      return (await this.#pool.query<R>(text, values)).rows;
    } catch (err) {
      throw toStorageError(err);
    }
  }

  async #rowByName(name: string): Promise<StreamRow | undefined> {
    const key = nameKey(name);
    const rows = await this.#queryOnce<StreamRow>(
      `SELECT ${STREAM_COLUMNS} FROM ${this.#s}.streams WHERE name = decode('${key}', 'hex')`,
    );
    return rows[0];
  }

  async #visibleRow(name: string): Promise<StreamRow> {
    const row = await this.#rowByName(name);
    return checkFound(name, row && accessViewOf(row), this.#clock.now()).row;
  }

  async #lockByName(tx: Tx, name: string): Promise<StreamRow | undefined> {
    const key = nameKey(name);
    const rows = await tx.query<StreamRow>(
      `SELECT ${STREAM_COLUMNS} FROM ${this.#s}.streams WHERE name = decode('${key}', 'hex') FOR UPDATE`,
    );
    return rows[0];
  }

  /** The stream named `name` followed by its fork ancestors, nearest first. */
  async #chainByName(tx: Tx, name: string): Promise<StreamRow[]> {
    const key = nameKey(name);
    return this.#chain(tx, `name = decode('${key}', 'hex')`);
  }

  async #chain(tx: Tx, anchor: string): Promise<StreamRow[]> {
    return tx.query<StreamRow>(
      `WITH RECURSIVE chain AS (
         SELECT ${STREAM_COLUMNS}, 0 AS depth FROM ${this.#s}.streams WHERE ${anchor}
         UNION ALL
         SELECT ${STREAM_COLUMNS.split(', ')
           .map((c) => `p.${c}`)
           .join(', ')}, chain.depth + 1
           FROM ${this.#s}.streams p JOIN chain ON p.id = chain.parent_id
       ) SELECT * FROM chain ORDER BY depth`,
    );
  }

  /**
   * Decides a create's or fork's name against the row holding it, which the transaction has locked; an expired,
   * unreferenced stream it replaces is removed here (the transaction makes that atomic with the create).
   */
  async #claim(
    tx: Tx,
    held: StreamRow | undefined,
    name: string,
    requested: { readonly config: StreamConfig; readonly fork: ForkInfo | null },
    now: number,
  ): Promise<NameClaim> {
    const claim = planNameClaim(name, held && lifecycleViewOf(held), requested, now);
    if (claim === 'replace') {
      await this.#remove(tx, held!);
      tx.released = held!.total_bytes;
    }
    return claim;
  }

  async #insertStream(
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
      `INSERT INTO ${this.#s}.streams (name, content_type, ttl_seconds, expires_at, created_closed, closed,
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

  /**
   * Inserts `messages` at consecutive offsets from `(seq, bytes)`. The last chunk is queued for the final statement;
   * earlier chunks of a large batch are sent at once, so no statement exceeds the row, byte or parameter limits.
   */
  async #insertMessages(
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
      const sql = `INSERT INTO ${this.#s}.messages (stream_id, seq, byte_offset, data) VALUES ${rows.join(', ')}`;
      if (last) tx.write(sql);
      else await tx.query(sql, params);
    }
  }

  /**
   * Checks message sizes and byte limits for a commit of `messages` onto a stream holding `streamBytes`. With a
   * storage-wide limit, the usage rows are locked (in shard order) so instances cannot overshoot it together.
   */
  async #checkLimits(tx: Tx, messages: readonly Uint8Array[], streamBytes: number): Promise<void> {
    for (const message of messages) {
      if (message.byteLength > this.#maxMessageBytes) {
        throw new StorageError(
          'MESSAGE_TOO_LARGE',
          `a message of ${message.byteLength} bytes exceeds the limit of ${this.#maxMessageBytes} bytes`,
        );
      }
    }
    const bytes = batchBytes(messages);
    if (bytes === 0) return;
    let total = 0;
    if (this.#limits.maxTotalBytes !== Number.POSITIVE_INFINITY) {
      const rows = await tx.query<{ bytes: number }>(
        `SELECT bytes FROM ${this.#s}.usage ORDER BY shard FOR UPDATE`,
      );
      tx.markUsageLocked();
      total = -tx.released;
      for (const row of rows) total += row.bytes;
    }
    checkByteLimits(this.#limits, total, streamBytes, bytes);
  }

  async #apply(tx: Tx, row: StreamRow, removal: Removal): Promise<void> {
    if (removal === 'remove') return this.#remove(tx, row);
    tx.write(`UPDATE ${this.#s}.streams SET tombstone = true WHERE id = ${tx.param(row.id)}`);
    tx.change('r', row.id);
  }

  /** Hard-deletes a locked stream, then walks up its lineage removing tombstones no fork needs any more. */
  async #remove(tx: Tx, row: StreamRow): Promise<void> {
    let current: StreamRow | undefined = row;
    while (current !== undefined) {
      const parents: StreamRow[] = await tx.query<StreamRow>(
        `WITH m AS (DELETE FROM ${this.#s}.messages WHERE stream_id = $1),
              p AS (DELETE FROM ${this.#s}.producers WHERE stream_id = $1),
              s AS (DELETE FROM ${this.#s}.streams WHERE id = $1)
         SELECT ${STREAM_COLUMNS} FROM ${this.#s}.streams WHERE id = $2 FOR UPDATE`,
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
        await tx.query(`UPDATE ${this.#s}.streams SET ref_count = $1 WHERE id = $2`, [
          after.refCount,
          parent.id,
        ]);
      }
      current = after.remove ? parent : undefined;
    }
  }

  /**
   * Reads the messages at or after `start` across a lineage's segments. With a byte budget it pages through message
   * sizes first and fetches only the payloads that fit; `stop` is then the offset of the first message left out.
   * `maxCount` caps the number of messages (used for fork prefixes).
   */
  async #readSegments(
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
          `SELECT data FROM ${this.#s}.messages WHERE ${range} ORDER BY seq${limit}`,
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
             FROM ${this.#s}.messages WHERE ${range} ORDER BY seq LIMIT ${PAGE}
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
}

/** The read segments of a stream from its chain (the stream first, then its ancestors): root first. */
function segmentsOf(chain: readonly StreamRow[]): Segment[] {
  return readSegments(chain.map((row) => ({ id: row.id, fork: forkOf(row) }))).map(({ entry, bound }) => {
    const parsed = bound === null ? undefined : parseOffset(bound);
    return parsed?.kind === 'position'
      ? { id: entry.id, boundSeq: parsed.readSeq, boundBytes: parsed.byteOffset }
      : { id: entry.id, boundSeq: MAX, boundBytes: MAX };
  });
}

/** The hex of a (validated) name's UTF-8 bytes for an inline literal. */
function nameKey(name: string): string {
  return Buffer.from(name, 'utf8').toString('hex');
}

function asBytes(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** The answer of a create or fork that found an equal stream: nothing written. */
function answerOf(row: StreamRow): CreateStreamResult {
  return { created: false, nextOffset: tailOf(row), closed: row.closed };
}

function ignore(): void {}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
