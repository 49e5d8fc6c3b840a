import type { Offset } from './offsets.js';

/**
 * The source of "now" for every time-dependent rule (expiry, sliding TTL renewal, `createdAt` / `updatedAt`,
 * producer-state pruning), in milliseconds since the Unix epoch.
 *
 * @remarks
 * Backends take a clock as an option so that tests (and the conformance kit) can move time forward without sleeping.
 * A clock must never go backwards within one storage instance.
 */
export interface Clock {
  now(): number;
}

/** The wall clock (`Date.now()`). The default of every Streamkeep backend. */
export const systemClock: Clock = { now: () => Date.now() };

/**
 * What a backend reports after each commit group it has made durable, to an `onCommit` observer given in its options
 * (for metrics: group sizes and sync latency). A group is the commits (appends, closes, producer appends) of one
 * stream written together; a commit that was refused or was a producer duplicate is not counted.
 *
 * @remarks
 * Observers are called synchronously after the group's state is applied and before its callers are answered; they
 * must be cheap and must not throw (a backend ignores what an observer throws). Optional for backends: one that never
 * calls it is still conformant.
 */
export interface CommitReport {
  /** Commits applied in the group (at least 1). */
  readonly entries: number;
  /** Payload bytes of the group's messages. */
  readonly bytes: number;
  /** Milliseconds spent making the group durable (the write and its fdatasync, or the database's COMMIT); `0` when nothing was synced. */
  readonly syncMs: number;
}

/** Receives a {@link CommitReport} per durable commit group. */
export type CommitObserver = (report: CommitReport) => void;

/** Calls an observer, ignoring what it throws: a metrics hook must never fail a commit. */
export function reportCommit(observer: CommitObserver | undefined, report: CommitReport): void {
  if (observer === undefined) return;
  try {
    observer(report);
  } catch {
    // an observer's failure is its own
  }
}

/**
 * What a caller asks for when creating a stream. Resolved into a {@link StreamConfig} at the instant of the call.
 *
 * @remarks
 * `ttlSeconds` and `expiresAt` are mutually exclusive (`CONFLICTING_EXPIRY`). With neither, the stream never expires.
 */
export interface StreamOptions {
  /** The stream's content type, normalised (text before the first `;`, trimmed, lower-cased) before use. */
  readonly contentType: string;
  /**
   * A sliding time-to-live in whole seconds: the deadline is `now + ttl` and moves forward on every successful read,
   * append, producer append and close. `0` expires the stream at once. Must be a non-negative safe integer.
   */
  readonly ttlSeconds?: number | undefined;
  /** An absolute deadline in milliseconds since the epoch; never renewed. */
  readonly expiresAt?: number | undefined;
  /**
   * Create the stream already closed. When the stream exists, it must equal the stream's *current* closure for the
   * create to be idempotent: a stream closed since matches `closed: true` and no longer matches `false`.
   * @default false
   */
  readonly closed?: boolean | undefined;
}

/** {@link StreamOptions} plus the stream's initial messages, committed atomically with the creation. */
export interface CreateStreamOptions extends StreamOptions {
  /** Initial messages. Ignored (nothing is written) when the stream already exists with an equal config. */
  readonly messages?: readonly Uint8Array[] | undefined;
}

/**
 * The resolved, persisted configuration of a stream.
 *
 * @remarks
 * Two configs are *equal* (see `streamConfigsEqual`) when content types and `ttlSeconds` are equal and, only when
 * there is no TTL, `expiresAt` too: a TTL-derived deadline drifts with "now" and is not part of the identity. A
 * create or fork request matches an existing stream when the configs are equal *and* its `closed` flag equals the
 * stream's current closure (see `createMatchesExisting`).
 */
export interface StreamConfig {
  /** Normalised content type. */
  readonly contentType: string;
  /** Sliding TTL in seconds, or `null` for none (absolute deadline or no expiry). */
  readonly ttlSeconds: number | null;
  /** The current deadline in epoch milliseconds (TTL-derived or absolute), or `null` for none. */
  readonly expiresAt: number | null;
  /** The stream was created closed. */
  readonly createdClosed: boolean;
}

/** Where a fork branches off its source. Persisted with the fork. */
export interface ForkInfo {
  /** The source stream's name. */
  readonly source: string;
  /** The fork point: source messages with an offset below it are inherited. Always a concrete offset. */
  readonly offset: Offset;
  /** See {@link ForkOptions.subOffset}. */
  readonly subOffset: number;
}

/** Everything `head` knows about a stream, captured at one instant. */
export interface StreamMetadata {
  readonly name: string;
  readonly config: StreamConfig;
  /** The tail: the offset the next message will get. */
  readonly nextOffset: Offset;
  readonly closed: boolean;
  /** Payload bytes stored for this stream itself (framing and inherited fork data excluded). */
  readonly totalBytes: number;
  /** Messages stored for this stream itself (inherited fork messages excluded). */
  readonly messageCount: number;
  /** Creation instant, epoch milliseconds. */
  readonly createdAt: number;
  /** The last append, close or producer write, epoch milliseconds; `null` before the first one. */
  readonly updatedAt: number | null;
  /** The last accepted `Stream-Seq`, or `null`. */
  readonly lastSeq: string | null;
  /** Fork lineage, or `null` for a root stream. */
  readonly fork: ForkInfo | null;
}

/** The outcome of a create or fork. */
export interface CreateStreamResult {
  /** `true` when this call created the stream; `false` when an equal stream already existed (nothing written). */
  readonly created: boolean;
  /** The stream's tail after the call. */
  readonly nextOffset: Offset;
  /** The stream's closed flag after the call. */
  readonly closed: boolean;
}

/** What `createFork` needs beyond the fork's name. */
export interface ForkOptions {
  /** The stream to fork. */
  readonly source: string;
  /**
   * The fork point; defaults to the source's tail. `-1` inherits nothing. Must not lie beyond the source's tail
   * (`FORK_OFFSET_BEYOND_TAIL`). It need not fall on a message boundary: an offset inside a source message inherits
   * that whole message, and the fork's own messages still start at the fork offset (offsets stay strictly increasing
   * but are no longer contiguous). Forking at an offset a read or append returned avoids the oddity.
   */
  readonly offset?: Offset | undefined;
  /**
   * Copy a prefix of the data after the fork point into the fork as its first local message(s): for
   * `application/json` streams, this many whole messages; for every other type, this many bytes of the first message
   * after the fork point. `FORK_SUB_OFFSET_OUT_OF_RANGE` when not enough data follows. @default 0
   */
  readonly subOffset?: number | undefined;
  /** The fork's content type; `undefined` inherits the source's. Must equal the source's otherwise. */
  readonly contentType?: string | undefined;
  /** Sliding TTL; wins over every inherited expiry. */
  readonly ttlSeconds?: number | undefined;
  /** Absolute deadline; wins over the source's expiry. */
  readonly expiresAt?: number | undefined;
  /** Create the fork closed. A closed source may be forked; the fork starts open unless this is set. */
  readonly closed?: boolean | undefined;
  /** The fork's initial local messages, after any sub-offset prefix. */
  readonly messages?: readonly Uint8Array[] | undefined;
}

/**
 * One atomic commit: zero or more messages, an optional writer sequence and an optional close.
 *
 * @remarks
 * Messages are opaque bytes; zero-length messages are legal and advance `readSeq` only. An empty `messages` list is
 * legal only together with `close: true` (a close-only commit); otherwise `EMPTY_APPEND`. The caller keeps ownership
 * of the buffers only until the returned promise settles; backends may retain them after that, so do not mutate them.
 */
export interface AppendRequest {
  readonly messages: readonly Uint8Array[];
  /** Required when `messages` is non-empty; compared with the stream's type. Ignored for close-only commits. */
  readonly contentType?: string | undefined;
  /** Optional opaque `Stream-Seq`: must be strictly greater, in UTF-8 byte order, than the last accepted one. */
  readonly seq?: string | undefined;
  /** Close the stream in the same commit. */
  readonly close?: boolean | undefined;
}

/** The identity and position an idempotent producer sends with each request. */
export interface ProducerIdentity {
  /** Non-empty producer id, scoped to one stream. */
  readonly id: string;
  /** Epoch: a non-negative safe integer, raised by a restarted producer to fence its older incarnations. */
  readonly epoch: number;
  /** Sequence number within the epoch: a non-negative safe integer, starting at 0 and increasing by 1. */
  readonly seq: number;
}

/** An {@link AppendRequest} made by an idempotent producer. An empty `messages` list is legal (a producer close). */
export interface ProducerAppendRequest extends AppendRequest {
  readonly producer: ProducerIdentity;
}

/** The outcome of a commit, all fields from the same commit. */
export interface AppendResult {
  /** Where the batch began (for a close-only commit: the unchanged tail). */
  readonly startOffset: Offset;
  /** The tail after the commit: where a reader resumes. */
  readonly nextOffset: Offset;
  /** The stream's closed flag after the commit. */
  readonly closed: boolean;
}

/** The outcome of a producer append. */
export interface ProducerAppendResult extends AppendResult {
  /**
   * `true` when the request repeated an already accepted one: nothing was written, no TTL renewed, no one woken;
   * `startOffset` and `nextOffset` are then both the current tail.
   */
  readonly duplicate: boolean;
  /** Accepted: the request's epoch. Duplicate: the *stored* epoch. */
  readonly epoch: number;
  /** Accepted: the request's seq. Duplicate: the *stored* last seq. */
  readonly seq: number;
}

/** The per-producer state a stream keeps. Entries idle for {@link PRODUCER_STATE_TTL_MS} are forgotten. */
export interface ProducerState {
  readonly epoch: number;
  readonly lastSeq: number;
  /** Last accepted request, epoch milliseconds. */
  readonly updatedAt: number;
}

/** Options of a read. */
export interface ReadOptions {
  /**
   * A byte budget. The result stops before the message that would take the total payload past it, but always holds
   * at least one message when one is available, so a reader always makes progress. Unlimited when omitted.
   */
  readonly maxBytes?: number | undefined;
}

/** One coherent snapshot of a stream's content from an offset. */
export interface ReadResult {
  /** Whole messages, oldest first. */
  readonly messages: readonly Uint8Array[];
  /** The offset to read from next: the position after the last returned message, or the tail. */
  readonly nextOffset: Offset;
  /** `true` when the result reaches the stream's tail (`nextOffset` is the tail at the snapshot). */
  readonly upToDate: boolean;
  /** The stream's raw closed flag at the snapshot. The stream has *ended* for this reader when `closed && upToDate`. */
  readonly closed: boolean;
}

/** The outcome of a delete. */
export interface DeleteResult {
  /**
   * `true` when forks still read this stream, so it became a tombstone (invisible, its name blocked, its data kept
   * until the last fork is gone); `false` when it was removed outright.
   */
  readonly softDeleted: boolean;
}

/** Options of `listStreams`. */
export interface ListStreamsOptions {
  /** Only names starting with this prefix. */
  readonly prefix?: string | undefined;
  /** Only names sorting strictly after this one (UTF-8 byte order), for paging. */
  readonly after?: string | undefined;
  /** At most this many entries. */
  readonly limit?: number | undefined;
}

/** A wake-up hint: "this stream changed, read again". Carries no data; several commits may share one hint. */
export type StreamListener = () => void;

/** A registration made by `subscribe`. */
export interface Subscription {
  /** Stops the hints. Idempotent. */
  unsubscribe(): void;
}
