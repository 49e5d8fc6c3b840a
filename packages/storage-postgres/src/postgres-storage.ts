import {
  type AppendRequest,
  type AppendResult,
  appendResultOf,
  type CreateStreamOptions,
  type CreateStreamResult,
  type DeleteResult,
  type ForkOptions,
  type ListStreamsOptions,
  type ListSubscriptionsOptions,
  type Offset,
  type ProducerAppendRequest,
  type ProducerAppendResult,
  type ReadOptions,
  type ReadResult,
  type Storage,
  type StorageCapabilities,
  type StreamListener,
  type StreamMetadata,
  type Subscription,
  type SubscriptionPlan,
  type SubscriptionRecord,
  type SubscriptionStore,
  validateAppend,
  validateCloseStream,
  validateProducerAppend,
} from '@streamkeep/storage';
import { commit } from './commit.js';
import { Database } from './database.js';
import { cleanupExpiredStreams, createFork, createStream, deleteStream } from './lifecycle.js';
import { listStreams, totalBytes } from './listing.js';
import { CAPABILITIES, type PostgresStorageOptions, resolveOptions } from './options.js';
import { exists, head, read, subscribe } from './reads.js';
import { loadOrCreateSecret } from './secrets.js';
import {
  deleteSubscription,
  getSubscription,
  listSubscriptions,
  mutateSubscription,
  onSubscriptionsChanged,
} from './subscriptions.js';

// The facade: the public class. Each method admits the call (`Database.run`: refused after close, awaited by close)
// and hands it to the module that owns it — `lifecycle` (create, fork, delete, expiry), `commit` (append, close,
// producer appends), `reads` (read, head, exists, subscribe), `listing` (listing, usage), `subscriptions` (the
// subscription store), `secrets` (shared secrets). A new area gets its own module over the same `Database` and one
// delegating method per operation here.

/**
 * A {@link Storage} on PostgreSQL: durable, and shared by any number of instances (processes) over one database.
 *
 * @remarks
 * Every commit is one READ COMMITTED transaction that locks the stream's row (`SELECT … FOR UPDATE`), applies the
 * contract's shared rules (`planCommit`, `checkByteLimits`, …) to the row it locked, and writes data, producer state,
 * `Stream-Seq`, closure, usage counters and the wake-up notification before COMMIT. Reads run in a REPEATABLE READ
 * read-only transaction, so one read sees one instant.
 */
export class PostgresStorage implements Storage, SubscriptionStore {
  readonly specificationVersion = 'v1' as const;
  readonly capabilities: StorageCapabilities = CAPABILITIES;

  readonly #db: Database;

  private constructor(db: Database) {
    this.#db = db;
  }

  /**
   * Connects, creates or migrates the schema, starts listening for other instances' commits, and resolves once the
   * storage is ready.
   *
   * @throws RangeError for invalid options; StorageError `UNAVAILABLE` when the database cannot be reached.
   */
  static async open(options: PostgresStorageOptions): Promise<PostgresStorage> {
    return new PostgresStorage(await Database.connect(resolveOptions(options)));
  }

  /** Payload bytes currently stored across all streams of the schema (tombstones included), by every instance. */
  async totalBytes(): Promise<number> {
    return this.#db.run(() => totalBytes(this.#db));
  }

  // ----- create and fork ------------------------------------------------------------------------------------------

  async createStream(name: string, options: CreateStreamOptions): Promise<CreateStreamResult> {
    return this.#db.run(() => createStream(this.#db, name, options));
  }

  async createFork(name: string, options: ForkOptions): Promise<CreateStreamResult> {
    return this.#db.run(() => createFork(this.#db, name, options));
  }

  // ----- commits --------------------------------------------------------------------------------------------------

  async append(name: string, request: AppendRequest): Promise<AppendResult> {
    const result = await this.#db.run(() =>
      commit(this.#db, name, () => {
        validateAppend(name, request);
        return request;
      }),
    );
    return appendResultOf(result);
  }

  async closeStream(name: string, options?: { readonly seq?: string | undefined }): Promise<AppendResult> {
    return appendResultOf(
      await this.#db.run(() => commit(this.#db, name, () => validateCloseStream(name, options))),
    );
  }

  appendWithProducer(name: string, request: ProducerAppendRequest): Promise<ProducerAppendResult> {
    return this.#db.run(() =>
      commit(this.#db, name, () => {
        validateProducerAppend(CAPABILITIES, name, request);
        return request;
      }),
    );
  }

  // ----- reads ----------------------------------------------------------------------------------------------------

  async read(name: string, from: Offset, options?: ReadOptions): Promise<ReadResult> {
    return this.#db.run(() => read(this.#db, name, from, options));
  }

  async head(name: string): Promise<StreamMetadata> {
    return this.#db.run(() => head(this.#db, name));
  }

  async exists(name: string): Promise<boolean> {
    return this.#db.run(() => exists(this.#db, name));
  }

  async subscribe(name: string, listener: StreamListener): Promise<Subscription> {
    return this.#db.run(() => subscribe(this.#db, name, listener));
  }

  async listStreams(options?: ListStreamsOptions): Promise<StreamMetadata[]> {
    return this.#db.run(() => listStreams(this.#db, options));
  }

  // ----- deletion and expiry --------------------------------------------------------------------------------------

  async delete(name: string): Promise<DeleteResult> {
    return this.#db.run(() => deleteStream(this.#db, name));
  }

  async cleanupExpiredStreams(): Promise<number> {
    return this.#db.run(() => cleanupExpiredStreams(this.#db));
  }

  // ----- subscriptions (capability `subscriptions`; see SubscriptionStore for the contract) ---------------------------

  /** The record of subscription `id`, or `undefined`. */
  async getSubscription(id: string): Promise<SubscriptionRecord | undefined> {
    return this.#db.run(() => getSubscription(this.#db, id));
  }

  /**
   * Reads, plans and writes subscription `id` in one transaction that locks its row across every instance; "now" is
   * the database's clock unless `options.clock` was given. The plan may run again after a lost race.
   */
  async mutateSubscription<R>(id: string, plan: SubscriptionPlan<R>): Promise<R> {
    return this.#db.run(() => mutateSubscription(this.#db, id, plan));
  }

  async deleteSubscription(id: string): Promise<boolean> {
    return this.#db.run(() => deleteSubscription(this.#db, id));
  }

  async listSubscriptions(options?: ListSubscriptionsOptions): Promise<SubscriptionRecord[]> {
    return this.#db.run(() => listSubscriptions(this.#db, options));
  }

  /**
   * Calls `listener` when a subscription was created, reconfigured or deleted through another instance (with its id),
   * or with `undefined` after the listening connection was re-established (announcements may have been lost). The
   * announcement is a `NOTIFY` sent from the change's own transaction, so it arrives only after the change is
   * visible here, a few milliseconds after COMMIT. Returns the listener's removal. Listeners are dropped on close.
   *
   * @throws TypeError when `listener` is not a function.
   */
  onSubscriptionsChanged(listener: (id: string | undefined) => void): () => void {
    return onSubscriptionsChanged(this.#db, listener);
  }

  // ----- shared secrets (this backend's own, not part of the contract) ----------------------------------------------

  /**
   * The secret stored under `name` in the database, created with `create()` when there is none. Atomic across
   * instances: when several create the same name at once, the first stored value wins and every caller gets it. The
   * server keeps its signing key here, so that every instance signs with one key.
   *
   * @throws TypeError for a `name` that is not a non-empty string, or a `create` that is not a function or does not
   *   return a string; StorageError `STORAGE_CLOSED` after close.
   */
  async loadOrCreateSecret(name: string, create: () => string): Promise<string> {
    return this.#db.run(() => loadOrCreateSecret(this.#db, name, create));
  }

  async close(): Promise<void> {
    return this.#db.close();
  }
}
