import type { StorageCapabilities } from './capabilities.js';
import type { Offset } from './offsets.js';
import type {
  AppendRequest,
  AppendResult,
  CreateStreamOptions,
  CreateStreamResult,
  DeleteResult,
  ForkOptions,
  ListStreamsOptions,
  ProducerAppendRequest,
  ProducerAppendResult,
  ReadOptions,
  ReadResult,
  StreamListener,
  StreamMetadata,
  Subscription,
} from './types.js';

/**
 * The Streamkeep storage contract: durable, append-only streams of opaque messages, addressed by name.
 *
 * @remarks
 * **Invariants every backend keeps** (the conformance kit checks each):
 *
 * 1. *Monotonic offsets.* Every committed message of a stream gets an offset greater than every earlier message of
 *    that stream. A message's offset is `(messages before it, payload bytes before it)`; a fork continues from its
 *    fork offset.
 * 2. *Atomic commits.* Create (with its initial messages), append (batch, `Stream-Seq`, close and producer state
 *    together), fork and delete either happen whole or not at all. A rejected call changes nothing: no bytes stay
 *    reserved, no `Stream-Seq`, TTL, `updatedAt` or producer state moves.
 * 3. *Idempotent producers.* A retried producer request is recognised and writes nothing.
 * 4. *Coherent reads.* The messages, tail and closed flag of one read come from one instant.
 * 5. *Expiry.* An expired stream (`now >= expiresAt`) behaves as missing (`EXPIRED`), except that `delete` still
 *    deletes it and `createStream` replaces it.
 * 6. *Concurrency.* Methods may be called concurrently. Commits to one stream are serialised in call order of
 *    their admission; different streams proceed independently.
 *
 * **Access rule** (head, read, append, close, producer append, subscribe): a missing name is `NOT_FOUND`; a tombstone
 * is `GONE`; an expired stream is `EXPIRED` — checked in that order.
 *
 * **Names** are non-empty, well-formed Unicode strings (no lone surrogate, so a name has exactly one UTF-8 encoding);
 * this layer imposes no other syntax (the HTTP app enforces its own name policy) and every backend stores every such
 * name. A malformed name is `INVALID_STREAM_NAME` on *every* method that takes one — `head`, `read`, `append`,
 * `closeStream`, `appendWithProducer`, `subscribe`, `delete` and `exists` included (`exists` rejects, it does not
 * answer `false`), and for a fork's `source` too — never `NOT_FOUND`.
 *
 * **Invalid arguments.** Every call is decided in this order, and the first failing step is the answer:
 *
 * 1. `STORAGE_CLOSED` after {@link Storage.close}.
 * 2. `NOT_SUPPORTED` for a method whose capability is off (`createFork`: `forks`; `appendWithProducer`:
 *    `producers`; `listStreams`: `listStreams`), whatever the arguments.
 * 3. *Types* — a `TypeError` (no code) when an argument has a type its TypeScript signature forbids: a name, offset,
 *    content type, `Stream-Seq`, producer id, `prefix` or `after` that is not a string; an options or request argument
 *    that is not an object (optional ones may be `undefined`); `messages` that is not an array of `Uint8Array`; a
 *    `closed` / `close` that is not a boolean; a TTL, deadline, epoch, seq, sub-offset, `maxBytes` or `limit` that is
 *    not a number; a listener that is not a function. `null` is not `undefined`: it is a wrong type. Every argument's
 *    type is checked before any value.
 * 4. *Values* — each method's list below, in its order: `StorageError` codes for values a protocol request can carry
 *    (`INVALID_STREAM_NAME`, `INVALID_OFFSET`, `INVALID_CONTENT_TYPE`, `CONFLICTING_EXPIRY`, `INVALID_TTL`,
 *    `INVALID_PRODUCER`, `EMPTY_APPEND`), so a server answers them as client errors; a `RangeError` (no code) for
 *    the numbers only a program supplies: a fork `subOffset` or a listing `limit` that is not a non-negative safe
 *    integer, a read `maxBytes` that is NaN or negative (`Infinity` is allowed and means unlimited; a fraction is a
 *    budget like any other).
 * 5. `NOT_SUPPORTED` for an argument that needs an off capability (a TTL or deadline without `expiry`).
 * 6. The state rules of the method (lookup, access rule, rule codes, byte limits).
 *
 * Steps 1–5 look at no stream, so their answer is the same for every state — for a missing, expired or deleted name
 * too. A call rejected at any step (and every rejected call, see invariant 2) leaves the storage exactly as it was:
 * nothing written, no TTL renewed, no subscriber woken.
 *
 * Every method may also reject with the backend-health codes `UNAVAILABLE`, `INSUFFICIENT_STORAGE`, `CORRUPTED` or
 * `INTERNAL`, and a commit with `MESSAGE_TOO_LARGE` for a message larger than the backend's record format holds;
 * those are not repeated below. `@streamkeep/storage` exports one `validate…` function per method that performs steps
 * 3 and 4 exactly as written here; backends call them instead of restating the rules.
 *
 * **Subscriptions** (protocol §6–7) are a separate interface, `SubscriptionStore` (`subscriptions/store.ts`): a
 * backend that declares the `subscriptions` capability implements it too (`supportsSubscriptions` narrows a
 * `Storage` to both). Its records are independent of streams: nothing on this interface reads or changes them.
 */
export interface Storage {
  /** The contract revision this backend implements. Raised on breaking changes to this interface. */
  readonly specificationVersion: 'v1';

  /** What this backend persists and which optional operations it implements. Constant for the instance's life. */
  readonly capabilities: StorageCapabilities;

  /**
   * Creates a stream, optionally with initial messages and already closed, in one atomic step.
   *
   * @remarks
   * Arguments: `name` (`INVALID_STREAM_NAME`); `options.contentType` (`INVALID_CONTENT_TYPE` when empty after
   * normalisation or not a legal header value); both `ttlSeconds` and `expiresAt` given (`CONFLICTING_EXPIRY`);
   * `ttlSeconds` not a non-negative safe integer or `now + ttl` beyond `MAX_DEADLINE_MS`, `expiresAt` not finite
   * or beyond ±`MAX_DEADLINE_MS` (`INVALID_TTL`) — in that order; then `NOT_SUPPORTED` for an expiry without the
   * `expiry` capability. The options are resolved at "now" before anything changes (content type normalised,
   * deadline computed). Then:
   * - no stream by that name → create it at offset `(0, 0)` with the initial messages (byte limits checked for the
   *   whole batch), closed when `options.closed`; `created: true`;
   * - a root stream (not a fork) with an *equal* config whose current closure equals `options.closed` (see
   *   {@link StreamConfig}) → `created: false` with its current tail and closed flag; the messages of this call are
   *   ignored and nothing is written;
   * - an expired stream → it is replaced by the new one, unless forks still reference it (`PATH_BLOCKED`); the byte
   *   limits are checked as if the expired stream's own bytes were already released, and it is removed only when the
   *   create succeeds.
   *
   * @throws StorageError `CONFIG_MISMATCH` when the name exists with a different config; `PATH_BLOCKED` when it is a
   *   tombstone or an expired stream with forks; `INVALID_CONTENT_TYPE`, `INVALID_TTL`, `CONFLICTING_EXPIRY`,
   *   `INVALID_STREAM_NAME`, `MESSAGE_TOO_LARGE`; `STORAGE_LIMIT_EXCEEDED` then `STREAM_LIMIT_EXCEEDED` for the
   *   initial messages; `NOT_SUPPORTED` for an expiry without the `expiry` capability.
   */
  createStream(name: string, options: CreateStreamOptions): Promise<CreateStreamResult>;

  /**
   * Creates `name` as a fork of `options.source`: it inherits the source's messages below the fork offset (without
   * copying them) and continues with its own, at offsets starting from the fork offset.
   *
   * @remarks
   * Check order: the request's own arguments — `name`, then `options.source` (`INVALID_STREAM_NAME`), `offset`
   * (`INVALID_OFFSET`), `contentType` (`INVALID_CONTENT_TYPE`), `CONFLICTING_EXPIRY`, `INVALID_TTL` (as for
   * {@link Storage.createStream}), `subOffset` not a non-negative safe integer (`RangeError`); `-1` forks at `(0, 0)`
   * and `now` lies beyond every tail (`FORK_OFFSET_BEYOND_TAIL`, as does a part above 2^53 − 1); source missing →
   * `NOT_FOUND`; source tombstoned → `FORK_FROM_TOMBSTONE`; source expired →
   * `EXPIRED`; fork offset beyond the source tail → `FORK_OFFSET_BEYOND_TAIL`; content type differs from the source's
   * → `CONTENT_TYPE_MISMATCH`; sub-offset larger than the data after the fork point → `FORK_SUB_OFFSET_OUT_OF_RANGE`.
   * The fork's expiry is, by priority: its own TTL, its own deadline, the source's TTL (a fresh deadline from now),
   * the source's absolute deadline, none. Forks do not inherit producer state or `Stream-Seq`.
   *
   * If `name` exists with an equal effective config, a current closure equal to `options.closed`, *and* the same
   * lineage (source, offset, sub-offset), the result is
   * `created: false` and nothing is written; any other existing stream is `CONFIG_MISMATCH` (tombstones and
   * referenced expired streams: `PATH_BLOCKED`). The source's fork reference is taken only after every check passed.
   * Ancestors stay readable through the fork even after they are soft-deleted or expire.
   *
   * @throws StorageError the codes above, plus those of {@link Storage.createStream}; `NOT_SUPPORTED` without the
   *   `forks` capability.
   */
  createFork(name: string, options: ForkOptions): Promise<CreateStreamResult>;

  /**
   * Appends a batch of messages, optionally with a `Stream-Seq` and a close, as one atomic commit.
   *
   * @remarks
   * Check order: arguments (`INVALID_STREAM_NAME`; no messages without `close` → `EMPTY_APPEND`); `NOT_FOUND`; the rest of the access rule; then for a *close-only* commit (no messages, `close: true`) only the `Stream-Seq` rule —
   * closing an already closed stream succeeds and still renews a sliding TTL, bumps `updatedAt` and wakes
   * subscribers; otherwise closed → `STREAM_CLOSED`, content type → `CONTENT_TYPE_MISMATCH`, `Stream-Seq` →
   * `SEQ_CONFLICT`, then the byte limits while committing (storage-wide first). On success: messages get consecutive
   * offsets from the old tail, `updatedAt = now`, the `Stream-Seq` is stored, a sliding TTL is renewed, the stream is
   * closed if asked, and subscribers are woken. Plain appends are *not* idempotent: a retry appends again.
   *
   * A missing `contentType` on an append with messages is `INVALID_CONTENT_TYPE`, decided with the content-type rule
   * (after the access rule and the closed check), like a malformed one.
   *
   * @throws StorageError `INVALID_STREAM_NAME`, `NOT_FOUND`, `GONE`, `EXPIRED`, `EMPTY_APPEND`, `STREAM_CLOSED` (with `details.nextOffset`),
   *   `CONTENT_TYPE_MISMATCH`, `INVALID_CONTENT_TYPE`, `SEQ_CONFLICT`, `MESSAGE_TOO_LARGE`, `STORAGE_LIMIT_EXCEEDED`,
   *   `STREAM_LIMIT_EXCEEDED`.
   */
  append(name: string, request: AppendRequest): Promise<AppendResult>;

  /**
   * Closes a stream: exactly `append(name, { messages: [], close: true, seq })`. Idempotent. `options` may be
   * `undefined`; `options.seq` must be a string or `undefined` (`TypeError`).
   *
   * @throws StorageError `INVALID_STREAM_NAME`, `NOT_FOUND`, `GONE`, `EXPIRED`, `SEQ_CONFLICT`.
   */
  closeStream(name: string, options?: { readonly seq?: string | undefined }): Promise<AppendResult>;

  /**
   * Appends on behalf of an idempotent producer: like {@link Storage.append}, plus the producer rules, all in one
   * commit with the producer's new state.
   *
   * @remarks
   * Check order: arguments (`INVALID_STREAM_NAME`; `producer` an object with a string `id` and number `epoch` and
   * `seq`, else `TypeError`; an empty id, or an epoch or seq that is not a non-negative safe integer →
   * `INVALID_PRODUCER`); `NOT_FOUND`; the rest of the access rule; content type (only
   * when there are messages); producer rules — known producer: older
   * epoch → `PRODUCER_EPOCH_FENCED`; same epoch and `seq <= lastSeq` → *duplicate* (success, nothing written, no TTL
   * renewal, no wake-up, the stored epoch and seq returned — even on a closed stream); closed → `STREAM_CLOSED`; newer
   * epoch with `seq != 0` → `PRODUCER_INVALID_EPOCH_SEQ`; `seq > lastSeq + 1` → `PRODUCER_SEQ_GAP`. Unknown producer:
   * closed → `STREAM_CLOSED`; `seq != 0` → `PRODUCER_SEQ_GAP` (any epoch may start). Then `Stream-Seq`, then limits.
   * An empty message list is a producer close-only request when `close` is set, and a producer state bump otherwise.
   * Producer state idle for 7 days is forgotten.
   *
   * @throws StorageError the codes of {@link Storage.append} plus `PRODUCER_EPOCH_FENCED` (with
   *   `details.currentEpoch`), `PRODUCER_SEQ_GAP` (with `details.expectedSeq`), `PRODUCER_INVALID_EPOCH_SEQ`,
   *   `INVALID_PRODUCER`; `NOT_SUPPORTED` without the `producers` capability.
   */
  appendWithProducer(name: string, request: ProducerAppendRequest): Promise<ProducerAppendResult>;

  /**
   * Reads the messages at or after `from`, in order, as one coherent snapshot.
   *
   * @remarks
   * `from` is `-1` (the start), `now` (the tail: no messages, `upToDate: true`) or a concrete offset; one that falls
   * inside a message rounds up to the next message; one beyond the tail yields no messages and `upToDate: true`. With
   * `maxBytes` the result may stop early (`upToDate: false`, `nextOffset` = the offset after the last returned
   * message), never inside a message and never empty while a message is available. For a fork, inherited messages come
   * first, then the fork's own. A sliding TTL is renewed by every successful read, `now` included.
   *
   * Arguments, before the stream is looked up: `name` (`INVALID_STREAM_NAME`), `from` (`INVALID_OFFSET` for anything
   * but `-1`, `now` or a well-formed concrete offset), `options.maxBytes` (`RangeError` when NaN or negative).
   *
   * @throws StorageError `INVALID_STREAM_NAME`, `INVALID_OFFSET` (malformed `from`), `NOT_FOUND`, `GONE`, `EXPIRED`.
   */
  read(name: string, from: Offset, options?: ReadOptions): Promise<ReadResult>;

  /**
   * Returns a stream's metadata without reading data. Never renews a TTL.
   *
   * @throws StorageError `INVALID_STREAM_NAME`, `NOT_FOUND`, `GONE`, `EXPIRED`.
   */
  head(name: string): Promise<StreamMetadata>;

  /**
   * True when the stream is visible: it exists, is not a tombstone and has not expired. Never renews a TTL.
   * Backend failures reject rather than read as `false`, and so does a malformed name (`INVALID_STREAM_NAME`): no
   * stream can have it, but asking is a mistake the caller should hear about, as on every other method.
   *
   * @throws StorageError `INVALID_STREAM_NAME`.
   */
  exists(name: string): Promise<boolean>;

  /**
   * Deletes a stream. Expiry is not checked: an expired stream is deleted normally.
   *
   * @remarks
   * If forks still reference the stream it becomes a *tombstone* (`softDeleted: true`): invisible (`GONE` on access,
   * hidden from listings), its name blocked (`PATH_BLOCKED`), its data kept for the forks. Otherwise it is removed with
   * its data and bytes; if it was a fork, its source loses a reference, and a tombstoned source left without
   * references is removed too, and so on up the lineage. Subscribers of a removed stream get one last hint and are
   * then dropped.
   *
   * @throws StorageError `INVALID_STREAM_NAME`; `NOT_FOUND`; `GONE` when it already is a tombstone.
   */
  delete(name: string): Promise<DeleteResult>;

  /**
   * Registers `listener` for wake-up hints on a visible stream: it is called after every commit that changes what a
   * read returns (append, close, producer append) and once when the stream is removed — for commits made through this
   * instance synchronously, once the change is visible to reads; for commits made by other instances sharing the store
   * (`multiInstance`), as soon as this instance learns of them. Hints carry no data and may be coalesced; a listener
   * must not throw.
   *
   * @remarks
   * Subscribe *before* reading: any commit that a read started after `subscribe` resolved did not see is followed by
   * a hint, so a reader that subscribes, reads, and then waits can never miss a wake-up. Waking the listeners of one
   * stream never touches other streams' listeners. Subscribing does not renew a TTL. Each call is its own
   * registration, even for the same function; `listener` must be a function (`TypeError`).
   *
   * @throws StorageError `INVALID_STREAM_NAME`, `NOT_FOUND`, `GONE`, `EXPIRED`.
   */
  subscribe(name: string, listener: StreamListener): Promise<Subscription>;

  /**
   * Lists visible streams (not tombstoned, not expired), sorted by name in UTF-8 byte order, with the same metadata
   * as {@link Storage.head}. Never renews a TTL.
   *
   * @remarks
   * `options` may be `undefined`. `prefix` and `after` are any strings (no name rule applies: they are filters, not
   * names): a name is listed when it starts with `prefix` (`String.prototype.startsWith`) and sorts strictly after
   * `after` in UTF-8 byte order. `limit` caps the page: a non-negative safe integer (`0` returns `[]`), else
   * `RangeError`; omitted, every match is returned. To page, pass the last name of a page as the next `after`.
   *
   * @throws StorageError `NOT_SUPPORTED` without the `listStreams` capability.
   */
  listStreams(options?: ListStreamsOptions): Promise<StreamMetadata[]>;

  /**
   * Removes every expired stream now, instead of lazily on access: streams still referenced by forks become
   * tombstones, the rest are deleted with the lineage clean-up of {@link Storage.delete}.
   *
   * @returns the number of streams that were visible and are now removed or tombstoned (a tombstone is counted once,
   *   when it is created).
   */
  cleanupExpiredStreams(): Promise<number>;

  /**
   * Waits for in-flight commits, releases files, locks and connections, and drops all subscriptions. Idempotent.
   * Every later call rejects with `STORAGE_CLOSED`.
   *
   * @remarks
   * Closing always completes: the storage is closed and its resources are released even when the backend's last
   * work fails (a file backend's final checkpoint, say). Such a failure then rejects the promise, with a
   * backend-health code (`INTERNAL`, `UNAVAILABLE` or `INSUFFICIENT_STORAGE`), once everything is released; repeated
   * calls settle alike. It never loses an acknowledged write: whatever was acknowledged is there at the next open.
   */
  close(): Promise<void>;
}
