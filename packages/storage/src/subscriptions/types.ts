import type { Offset } from '../offsets.js';

/**
 * The two kinds of subscription (protocol §6–7).
 *
 * - `webhook`: the server POSTs each wake to `webhookUrl`; the receiver acks through a callback.
 * - `pull-wake`: the server appends a wake event to the application's `wakeStream`; workers `claim`, `ack` and
 *   `release` the wake under a lease.
 */
export type SubscriptionType = 'webhook' | 'pull-wake';

/** `failed`: the server gave up delivering (a webhook that kept failing); set only through `planSetStatus`. */
export type SubscriptionStatus = 'active' | 'failed';

/** How a stream became a member: named in `streams` (explicit) or matched by the subscription's `pattern` (glob). */
export type SubscriptionLinkType = 'explicit' | 'glob';

/**
 * What a client asks for when it creates a subscription (the body of `PUT /__ds/subscriptions/:id`, in camel case).
 *
 * @remarks
 * Fields are typed as the request should carry them, but `validateSubscriptionInput` checks every one at run time
 * and answers `INVALID_SUBSCRIPTION` for anything else, so a server may pass a parsed JSON body straight in (after
 * renaming `webhook.url`, `wake_stream` and `lease_ttl_ms`): a client mistake must never surface as a `TypeError`.
 */
export interface SubscriptionInput {
  readonly type: SubscriptionType;
  /** A glob over stream names (see `matchesPattern`). `pattern` and/or a non-empty `streams` is required. */
  readonly pattern?: string | undefined;
  /** Streams to link explicitly. Duplicates collapse; order does not matter. */
  readonly streams?: readonly string[] | undefined;
  /** `webhook` only, and required there. The server, not storage, vets the URL (scheme, SSRF rules). */
  readonly webhookUrl?: string | undefined;
  /** `pull-wake` only, and required there: the stream the server appends wake events to. */
  readonly wakeStream?: string | undefined;
  /** Lease length in whole milliseconds, {@link MIN_LEASE_TTL_MS}–{@link MAX_LEASE_TTL_MS}. @default 30000 */
  readonly leaseTtlMs?: number | undefined;
  readonly description?: string | undefined;
}

/**
 * A validated, normalised {@link SubscriptionInput}: the identity of a subscription. Two creates with equal configs
 * (`subscriptionConfigsEqual`) are the same request, so the second one is an idempotent re-confirmation.
 *
 * @remarks
 * Normalised: `streams` deduplicated and sorted in UTF-8 byte order, `leaseTtlMs` defaulted, absent fields `null`
 * (records are plain JSON: `undefined` does not survive a round trip through a file or a database).
 */
export interface SubscriptionConfig {
  readonly type: SubscriptionType;
  readonly pattern: string | null;
  /** The streams the create named, as given at creation; later `addStreams` / `removeStream` do not change it. */
  readonly streams: readonly string[];
  readonly webhookUrl: string | null;
  readonly wakeStream: string | null;
  readonly leaseTtlMs: number;
  readonly description: string | null;
}

/** One linked stream of a subscription. A stream may be linked both ways; it stays a member while either holds. */
export interface SubscriptionMember {
  readonly path: string;
  /** Named by the create or by `addStreams`, and not removed since. */
  readonly explicit: boolean;
  /** Matched by the pattern (at creation, or when the stream appeared later). */
  readonly glob: boolean;
  /**
   * Everything up to and including this offset is acknowledged: the member has pending work while its stream's tail
   * lies beyond it. Starts where the member was linked (the tail then, for a stream that already existed) and only
   * moves forward. `-1` means nothing acked yet (only for members linked before their stream had a position).
   */
  readonly ackedOffset: Offset;
}

/**
 * The wake state of a subscription: which wake is outstanding and who holds its lease.
 *
 * @remarks
 * - `generation` starts at 0 and rises by exactly 1 with every new wake; acks and releases carry the generation they
 *   were given, and any other generation is `FENCED`. It never goes down within a record's life; a deleted and
 *   re-created id is a new record that starts again at 0, so a server binding callback tokens to a generation should
 *   bind them to the record's `createdAt` too.
 * - A wake is *outstanding* while `wakeId` is set. Its lease runs until `leaseExpiresAt` (storage clock, epoch ms):
 *   the wake is *live* while `now < leaseExpiresAt`. A webhook wake is held by the delivering server (`holder`
 *   `null`); a pull-wake wake is unheld until a worker claims it (`holder` = the worker), which restarts the lease.
 * - Nothing clears an expired lease eagerly: an expired wake is treated as finished by every planner (a new wake or
 *   claim starts generation + 1, and acks of the expired one are `FENCED`).
 */
export interface SubscriptionWakeState {
  readonly generation: number;
  /** The outstanding wake's id (chosen by the server), or `null` when no wake is outstanding. */
  readonly wakeId: string | null;
  /** The worker holding a claimed pull-wake lease, or `null`. */
  readonly holder: string | null;
  /** When the outstanding wake's lease ends (storage clock), or `null` when no wake is outstanding. */
  readonly leaseExpiresAt: number | null;
  /**
   * The tails the wake was raised for (sorted by path): what the receiver was told, so that a webhook's synchronous
   * `{done: true}` acks exactly these, whichever instance receives the answer.
   */
  readonly tails: readonly SubscriptionTail[];
}

/** A stream and its tail offset at some instant. */
export interface SubscriptionTail {
  readonly path: string;
  readonly offset: Offset;
}

/**
 * The persisted state of one subscription: everything a server instance needs, so that instances sharing a store
 * need no state of their own.
 *
 * @remarks
 * A plain, JSON-serialisable value (no `undefined`, no `Map`): a file backend writes it as JSON, a database as a JSON
 * column or a row per member. Backends store what a planner returned, unchanged, and hand it back unchanged
 * (`parseSubscriptionRecord` decodes one from untrusted JSON). Records are immutable: planners build new ones.
 */
export interface SubscriptionRecord {
  /** The id from the request path. */
  readonly id: string;
  /**
   * 1 for a new record, + 1 with every write. Backends may use it for compare-and-set (`UPDATE … WHERE version = $v`);
   * `checkSubscriptionWrite` enforces the step.
   */
  readonly version: number;
  readonly config: SubscriptionConfig;
  /** Creation instant on the storage clock, epoch ms. */
  readonly createdAt: number;
  readonly status: SubscriptionStatus;
  /** The linked streams, sorted by path in UTF-8 byte order, each path once. */
  readonly members: readonly SubscriptionMember[];
  readonly wake: SubscriptionWakeState;
}

/**
 * What a planner decides: the record to write (or none) and the value `mutateSubscription` resolves with.
 *
 * @remarks
 * `write` absent means "change nothing": the backend writes nothing and resolves with `result`. A refusal is not a
 * decision: the planner throws a `StorageError`, and the backend writes nothing and rejects with it.
 */
export interface SubscriptionDecision<R> {
  readonly write?: SubscriptionRecord | undefined;
  readonly result: R;
}

/**
 * A pure function from the current record (or `undefined` when the id has none) and the storage clock's `now` to a
 * {@link SubscriptionDecision}. Every planner of this package returns one; see `SubscriptionStore.mutateSubscription`.
 *
 * @remarks
 * It must be deterministic and side-effect free: a backend may run it more than once (a database retrying a
 * serialisation failure), and only the last run's decision counts.
 */
export type SubscriptionPlan<R> = (
  current: SubscriptionRecord | undefined,
  now: number,
) => SubscriptionDecision<R>;

/** Options of `listSubscriptions`. Filters combine with "and". */
export interface ListSubscriptionsOptions {
  /** Only ids sorting strictly after this one (UTF-8 byte order), for paging. */
  readonly after?: string | undefined;
  /** At most this many records (a non-negative safe integer). Omitted: every match. */
  readonly limit?: number | undefined;
  /** Only subscriptions having this stream as a member (explicit or glob): whom an append to it may wake. */
  readonly member?: string | undefined;
  /** `true`: only subscriptions with a pattern (the ones a newly created stream may join). */
  readonly withPattern?: boolean | undefined;
  /**
   * `true`: only subscriptions with an outstanding wake whose lease has ended at the storage clock's now — the ones a
   * server's sweep re-wakes with `planWake` (which, being atomic, lets exactly one instance do it).
   */
  readonly withExpiredLease?: boolean | undefined;
}

/** The outcome of `planCreateSubscription`. */
export interface SubscriptionCreated {
  /** `false` when an equal subscription already existed (an idempotent re-confirmation: nothing written). */
  readonly created: boolean;
  readonly record: SubscriptionRecord;
}

/** The outcome of `planWake`. `woken: false` says why nothing was written. */
export type WakeOutcome =
  | { readonly woken: true; readonly record: SubscriptionRecord }
  | {
      readonly woken: false;
      /**
       * `gone`: no such subscription (deleted meanwhile); `live`: a wake is outstanding and its lease live (another
       * delivery or worker has it: coalesced); `idle`: no member has pending work.
       */
      readonly reason: 'gone' | 'live' | 'idle';
      readonly record: SubscriptionRecord | undefined;
    };
