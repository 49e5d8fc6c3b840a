import { hasCapability, type StorageCapabilities } from '../capabilities.js';
import { StorageError } from '../errors.js';
import { compareUtf8, typeName } from '../rules/names.js';
import type { Storage } from '../storage.js';
import { validateStreamPath, validateSubscriptionId } from './config.js';
import { findMember, isWakeLive } from './record.js';
import type {
  ListSubscriptionsOptions,
  SubscriptionDecision,
  SubscriptionPlan,
  SubscriptionRecord,
} from './types.js';

/**
 * The subscription half of the storage contract (capability `subscriptions`): a store of versioned subscription
 * records with an atomic read-modify-write. Backends persist and serialise; every rule is a planner of this package.
 *
 * @remarks
 * **Why this shape.** Subscriptions (protocol §6–7) must behave as one object however many server instances share a
 * store: a claim through instance A is `ALREADY_CLAIMED` through B, an ack through B fences a stale worker on A, an
 * append through either wakes a subscriber once. All of that follows from one primitive,
 * {@link SubscriptionStore.mutateSubscription}: the backend reads the current record and its own clock, runs a pure
 * planner, and writes the planner's record atomically — so no decision rests on process memory. Memory does it in one
 * synchronous step; a file backend in one journal record made durable before it answers; PostgreSQL in one
 * transaction (`SELECT … FOR UPDATE` on the record's row, `now()` from the database).
 *
 * **Which planner the server calls per route** (each validates its arguments before reading any state):
 *
 * | route | planner |
 * | --- | --- |
 * | `PUT /__ds/subscriptions/:id` | `validateSubscriptionInput` (learn what to read tails of) → `planCreateSubscription` |
 * | `GET …/:id` | {@link SubscriptionStore.getSubscription} (+ `memberLinkType`, `isWakeLive` for the view) |
 * | `DELETE …/:id` | {@link SubscriptionStore.deleteSubscription} |
 * | `POST …/:id/streams` | `planAddStreams` |
 * | `DELETE …/:id/streams/:path` | `planRemoveStream` |
 * | after a stream is created | `listSubscriptions({ withPattern: true })` → `planLinkStream` per match |
 * | after a stream is deleted | `listSubscriptions({ member })` → `planUnlinkStream` |
 * | after an append | `listSubscriptions({ member })` → `planWake` (then deliver, or append the wake event) |
 * | `POST …/:id/claim` | `planClaim` |
 * | `POST …/:id/ack`, `…/callback` | `planAck` (then `planWake` when `hasPendingWork`) |
 * | a webhook's synchronous `{done: true}` | `planAck` with `ackWakeTails` |
 * | `POST …/:id/release` | `planRelease` (then `planWake`) |
 * | a lease sweep (any instance, periodically) | `listSubscriptions({ withExpiredLease: true })` → `planWake` |
 * | a webhook given up on | `planSetStatus` |
 *
 * **Check order** of every method, as for {@link Storage}: `STORAGE_CLOSED`; `NOT_SUPPORTED` when the capability is
 * off (whatever the arguments); a `TypeError` for an argument of the wrong type (a plan that is not a function, an
 * options argument that is not an object, a `limit` that is not a number); `INVALID_SUBSCRIPTION` for a malformed id
 * or member filter, `RangeError` for a `limit` that is not a non-negative safe integer; then the state. The shared
 * {@link validateSubscriptionCall}, {@link validateMutateSubscription} and {@link validateListSubscriptions} do the
 * steps after `STORAGE_CLOSED`.
 *
 * **Scale.** Records are per subscription, so a write touches one record; `listSubscriptions` pages by id and filters
 * by member and by "has a pattern" so that the server never loads tens of thousands of records to route one append.
 * Backends should index members (memory: a map from path to ids; PostgreSQL: a member table or a JSONB index).
 *
 * Subscription records are independent of streams: deleting a stream does not touch them (the server unlinks it with
 * `planUnlinkStream`), and `delete`, `cleanupExpiredStreams` and `close` never remove a record.
 */
export interface SubscriptionStore {
  /**
   * The record of subscription `id`, or `undefined` when there is none (not an error: the server answers 404).
   *
   * @throws StorageError `INVALID_SUBSCRIPTION` (malformed id); `NOT_SUPPORTED` without the capability.
   */
  getSubscription(id: string): Promise<SubscriptionRecord | undefined>;

  /**
   * Atomically: reads the record of `id` (or `undefined`) and the storage clock's `now`, runs `plan(current, now)`,
   * and writes the decision's `write` (if any) as the new record — then resolves with the decision's `result`.
   *
   * @remarks
   * - *Atomic and serialised per id*: no other write to the same id happens between the read and the write, on this
   *   instance or any other sharing the store; mutations of different ids may proceed in parallel.
   * - *Validated*: the backend checks the write with {@link checkSubscriptionWrite} (same id, version + 1) before
   *   persisting it.
   * - *All or nothing*: when the plan throws, nothing is written and the call rejects with what it threw. When the
   *   write fails, the call rejects (`UNAVAILABLE`, `INSUFFICIENT_STORAGE`, …) and the record is as before.
   * - *Durable on resolve* for `durable` backends: a resolved mutation survives a crash.
   * - *One clock*: `now` comes from the backend's clock (PostgreSQL: the database's), never from the caller, so leases
   *   mean the same on every instance. A plan may run more than once (a retried transaction); it must be pure.
   *
   * @throws StorageError whatever the plan throws; `INVALID_SUBSCRIPTION` (malformed id); `NOT_SUPPORTED` without
   *   the capability. `TypeError` when `plan` is not a function.
   */
  mutateSubscription<R>(id: string, plan: SubscriptionPlan<R>): Promise<R>;

  /**
   * Deletes subscription `id` with its members and wake state. Resolves `true` when there was a record, `false` when
   * there was none. An outstanding wake is simply dropped: its acks then answer `SUBSCRIPTION_NOT_FOUND`.
   *
   * @throws StorageError `INVALID_SUBSCRIPTION` (malformed id); `NOT_SUPPORTED` without the capability.
   */
  deleteSubscription(id: string): Promise<boolean>;

  /**
   * Lists records sorted by id in UTF-8 byte order: those after `after`, with `member` among their members, with a
   * pattern when `withPattern`, with a wake whose lease has ended (at the storage clock's now) when
   * `withExpiredLease`, at most `limit` of them. To page, pass the last id of a page as the next `after`.
   *
   * @throws StorageError `INVALID_SUBSCRIPTION` (malformed `member`); `NOT_SUPPORTED` without the capability.
   *   `TypeError` / `RangeError` for options of the wrong type or a bad `limit`.
   */
  listSubscriptions(options?: ListSubscriptionsOptions): Promise<SubscriptionRecord[]>;

  /**
   * Optional: registers `listener`, called when subscriptions may have changed through *another* process sharing the
   * store. Returns a function that unregisters it (idempotent). Only backends shared by several processes (capability
   * `multiInstance`) implement it; memory and file stores are single-process and leave it out.
   *
   * @remarks
   * **Why.** A server keeps a cache of what the store holds — whether any subscription exists (so that an append
   * that can wake nobody costs nothing) and which subscriptions have patterns (so that a create costs no round trip
   * per non-matching subscription) — and refreshes it from `listSubscriptions` now and then. Changes made through
   * the same server refresh it at once; this hook tells it of changes made through the others, so that an append or
   * a create through instance B is routed by a subscription created through A a moment before.
   *
   * **When it is called.**
   * - After a mutation that *created* a record, or replaced its config, has committed, and after a
   *   `deleteSubscription` that removed a record has committed — each with the record's `id`. Acks, wakes, leases,
   *   status and membership changes need not be announced: every one of them is read from the store when it matters
   *   (`listSubscriptions({ member })` per append), never from a cache. A backend may announce more than required.
   * - With `undefined` when the backend may have missed announcements (e.g. its notification connection was lost
   *   and re-established): the listener must then assume that anything changed.
   * - Never for changes made through the same store object (its caller already knows of them), never before the
   *   change is visible to a read through this store object, never synchronously inside `mutateSubscription` or
   *   `deleteSubscription`, and never after `close`.
   *
   * **Latency.** Delivery is asynchronous (PostgreSQL: `NOTIFY`, delivered after COMMIT over a listening
   * connection), so a window of a few milliseconds remains in which another instance has not heard yet; a server
   * must keep its periodic refresh as the safety net, and treat a listener call as a hint, not a guarantee.
   *
   * A listener that throws is reported (a process warning) and does not stop the others.
   */
  onSubscriptionsChanged?(listener: (id: string | undefined) => void): () => void;
}

/**
 * True when `storage` declares the `subscriptions` capability, so it is also a {@link SubscriptionStore}; narrows
 * its type. The server answers the `__ds` routes with 501 when this is false.
 */
export function supportsSubscriptions(storage: Storage): storage is Storage & SubscriptionStore {
  return hasCapability(storage.capabilities, 'subscriptions');
}

function gate(capabilities: StorageCapabilities): void {
  if (!hasCapability(capabilities, 'subscriptions')) {
    throw new StorageError('NOT_SUPPORTED', 'subscriptions need the subscriptions capability');
  }
}

/**
 * The argument steps of `getSubscription` and `deleteSubscription`: capability gate, then the id. Returns the id.
 *
 * @throws StorageError `NOT_SUPPORTED`, `INVALID_SUBSCRIPTION`.
 */
export function validateSubscriptionCall(capabilities: StorageCapabilities, id: string): string {
  gate(capabilities);
  return validateSubscriptionId(id);
}

/**
 * The argument steps of `mutateSubscription`: capability gate, the plan's type, then the id. Returns the id.
 *
 * @throws StorageError `NOT_SUPPORTED`, `INVALID_SUBSCRIPTION`; `TypeError` for a plan that is not a function.
 */
export function validateMutateSubscription(
  capabilities: StorageCapabilities,
  id: string,
  plan: SubscriptionPlan<unknown>,
): string {
  gate(capabilities);
  if (typeof plan !== 'function') throw new TypeError(`plan must be a function, got ${typeName(plan)}`);
  return validateSubscriptionId(id);
}

/** A validated {@link ListSubscriptionsOptions}. */
export interface SubscriptionQuery {
  readonly after: string | undefined;
  readonly limit: number | undefined;
  readonly member: string | undefined;
  readonly withPattern: boolean;
  readonly withExpiredLease: boolean;
}

/**
 * The argument steps of `listSubscriptions`: capability gate, types (`TypeError`), then values (`limit`:
 * `RangeError`; `member`: `INVALID_SUBSCRIPTION`).
 */
export function validateListSubscriptions(
  capabilities: StorageCapabilities,
  options: ListSubscriptionsOptions | undefined,
): SubscriptionQuery {
  gate(capabilities);
  if (options === undefined) {
    return {
      after: undefined,
      limit: undefined,
      member: undefined,
      withPattern: false,
      withExpiredLease: false,
    };
  }
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`options must be an object, got ${typeName(options)}`);
  }
  const { after, limit, member, withPattern, withExpiredLease } = options;
  if (after !== undefined && typeof after !== 'string') throw new TypeError('options.after must be a string');
  if (limit !== undefined && typeof limit !== 'number') throw new TypeError('options.limit must be a number');
  if (member !== undefined && typeof member !== 'string')
    throw new TypeError('options.member must be a string');
  if (withPattern !== undefined && typeof withPattern !== 'boolean') {
    throw new TypeError('options.withPattern must be a boolean');
  }
  if (withExpiredLease !== undefined && typeof withExpiredLease !== 'boolean') {
    throw new TypeError('options.withExpiredLease must be a boolean');
  }
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
    throw new RangeError(`options.limit must be a non-negative safe integer, got ${limit}`);
  }
  return {
    after,
    limit,
    member: member === undefined ? undefined : validateStreamPath('options.member', member),
    withPattern: withPattern === true,
    withExpiredLease: withExpiredLease === true,
  };
}

/** True when `record` belongs to a listing by `query` at `now` (storage clock), apart from the page limit. */
export function subscriptionListingIncludes(
  record: SubscriptionRecord,
  query: SubscriptionQuery,
  now: number,
): boolean {
  if (query.after !== undefined && compareUtf8(record.id, query.after) <= 0) return false;
  if (query.withPattern && record.config.pattern === null) return false;
  if (query.withExpiredLease && (record.wake.wakeId === null || isWakeLive(record, now))) return false;
  return query.member === undefined || findMember(record, query.member) !== undefined;
}

/** The page `listSubscriptions` returns from `records` at `now`: the included ones, sorted by id, at most `limit`. */
export function subscriptionListingPage(
  records: Iterable<SubscriptionRecord>,
  query: SubscriptionQuery,
  now: number,
): SubscriptionRecord[] {
  const page: SubscriptionRecord[] = [];
  for (const record of records) if (subscriptionListingIncludes(record, query, now)) page.push(record);
  page.sort((a, b) => compareUtf8(a.id, b.id));
  if (query.limit !== undefined && page.length > query.limit) page.length = query.limit;
  return page;
}

/**
 * Checks a decision before a backend persists it: the record keeps the id, its version is the current one + 1 (1 for
 * a new record). Returns the record to write, or `undefined` for none. A failure is a planner bug, never a client's.
 *
 * @throws StorageError `INTERNAL`.
 */
export function checkSubscriptionWrite<R>(
  id: string,
  current: SubscriptionRecord | undefined,
  decision: SubscriptionDecision<R>,
): SubscriptionRecord | undefined {
  if (typeof decision !== 'object' || decision === null) {
    throw new StorageError('INTERNAL', `a subscription plan returned ${typeName(decision)}, not a decision`);
  }
  const write = decision.write;
  if (write === undefined) return undefined;
  const expected = (current?.version ?? 0) + 1;
  if (write.id !== id || write.version !== expected) {
    throw new StorageError(
      'INTERNAL',
      `a subscription plan wrote ${JSON.stringify(write.id)} v${write.version} over ${JSON.stringify(id)} v${expected - 1}`,
    );
  }
  return write;
}
