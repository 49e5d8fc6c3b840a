/**
 * Every error a {@link Storage} backend reports on purpose is a {@link StorageError} with one of these codes.
 *
 * @remarks
 * Codes are a semver contract: a code is never renamed or repurposed within a major version, and callers (the HTTP
 * app, third-party servers, the conformance kit) branch on `code`, never on `message`. Messages are for humans and may
 * change in any release. Programmer errors (a non-string name, a negative TTL of the wrong type) are thrown as plain
 * `TypeError` / `RangeError` without a code.
 *
 * The storage layer knows nothing of HTTP. The one table that maps a code to a status lives in the server.
 */
export const STORAGE_ERROR_CODES = [
  // --- lookup and lifecycle -------------------------------------------------------------------------------------
  /** No stream has this name (never created, or hard-deleted). */
  'NOT_FOUND',
  /** The stream exists but its deadline has passed (`now >= expiresAt`); it behaves as missing. */
  'EXPIRED',
  /** The stream was soft-deleted while forks still read it; the name is invisible and blocked. */
  'GONE',
  /** A create or fork named an existing stream whose configuration (or fork lineage) differs. */
  'CONFIG_MISMATCH',
  /** A create or fork named a stream that is a tombstone, or an expired stream that forks still reference. */
  'PATH_BLOCKED',
  /** A fork named a soft-deleted (tombstoned) source. */
  'FORK_FROM_TOMBSTONE',
  /** A fork offset lies beyond the source's tail. */
  'FORK_OFFSET_BEYOND_TAIL',
  /** A fork sub-offset asks for more data than follows the fork offset. */
  'FORK_SUB_OFFSET_OUT_OF_RANGE',

  // --- append rules ---------------------------------------------------------------------------------------------
  /** Data was appended to a closed stream. Carries `nextOffset` (the final tail) in {@link StorageError.details}. */
  'STREAM_CLOSED',
  /** The append's content type differs (ASCII case-insensitively, after normalisation) from the stream's. */
  'CONTENT_TYPE_MISMATCH',
  /** A `Stream-Seq` value was not strictly greater (UTF-8 byte order) than the stream's last one. */
  'SEQ_CONFLICT',
  /** An idempotent producer skipped sequence numbers. Carries `expectedSeq` and `receivedSeq`. */
  'PRODUCER_SEQ_GAP',
  /** An idempotent producer used an epoch older than the stored one. Carries `currentEpoch`. */
  'PRODUCER_EPOCH_FENCED',
  /** An idempotent producer started a new epoch at a sequence number other than 0. */
  'PRODUCER_INVALID_EPOCH_SEQ',
  /** An append carried no messages and did not close the stream. */
  'EMPTY_APPEND',

  // --- argument validation --------------------------------------------------------------------------------------
  /** An offset string is not `-1`, `now` or 16 lower-case hex digits, `_`, 16 lower-case hex digits. */
  'INVALID_OFFSET',
  /** A content type is empty after normalisation or is not a legal header value. */
  'INVALID_CONTENT_TYPE',
  /** A TTL is not a non-negative safe integer, or `now + ttl` overflows. */
  'INVALID_TTL',
  /** Both a TTL and an absolute deadline were given. */
  'CONFLICTING_EXPIRY',
  /** A stream name is empty or holds a lone surrogate; answered on every method that takes a name. */
  'INVALID_STREAM_NAME',
  /** Producer headers are malformed (empty id, epoch or seq not a safe non-negative integer). */
  'INVALID_PRODUCER',
  /** One message is larger than the backend's record format allows. */
  'MESSAGE_TOO_LARGE',

  // --- subscriptions (capability `subscriptions`; see `SubscriptionStore`) ---------------------------------------
  /** No subscription has this id (never created, or deleted). */
  'SUBSCRIPTION_NOT_FOUND',
  /** A create named an existing subscription whose normalised configuration differs from the request's. */
  'SUBSCRIPTION_CONFLICT',
  /**
   * A subscription request is invalid: a malformed id, type, pattern, stream list, lease TTL, webhook URL or wake
   * stream, a field of the other type, or an operation the subscription's type does not offer (claiming a webhook
   * subscription). Always a client mistake.
   */
  'INVALID_SUBSCRIPTION',
  /**
   * A claim met a live lease held by someone else. Carries `currentHolder` (the worker holding it) and `generation`
   * (the wake it holds) in {@link StorageError.details}.
   */
  'ALREADY_CLAIMED',
  /**
   * An ack or release named a wake that is no longer the live one: a stale generation, a lease that expired, or a
   * wake already finished. Carries the subscription's current `generation`.
   */
  'FENCED',
  /** A claim found nothing to do: no wake outstanding and every member acked up to its tail. */
  'NO_PENDING_WORK',

  // --- limits ---------------------------------------------------------------------------------------------------
  /** The commit would exceed the storage-wide byte limit (checked before the per-stream limit). */
  'STORAGE_LIMIT_EXCEEDED',
  /** The commit would exceed the per-stream byte limit. */
  'STREAM_LIMIT_EXCEEDED',

  // --- backend health -------------------------------------------------------------------------------------------
  /** A transient failure (interrupted I/O, timeout, lock contention); retrying later may succeed. */
  'UNAVAILABLE',
  /** The device is full or a quota was hit; nothing of the failed operation was applied. */
  'INSUFFICIENT_STORAGE',
  /** Persisted data failed an integrity check; the affected stream is refused rather than served. */
  'CORRUPTED',
  /** Any other backend failure. */
  'INTERNAL',
  /** The storage was closed with {@link Storage.close}; no further calls are accepted. */
  'STORAGE_CLOSED',
  /** The operation belongs to an optional capability this backend does not declare. */
  'NOT_SUPPORTED',
] as const;

/** The closed set of {@link StorageError} codes. */
export type StorageErrorCode = (typeof STORAGE_ERROR_CODES)[number];

/**
 * Structured data some codes carry, for the server to turn into protocol headers.
 *
 * - `STREAM_CLOSED`: `nextOffset` (the stream's final tail).
 * - `PRODUCER_SEQ_GAP`: `expectedSeq`, `receivedSeq`.
 * - `PRODUCER_EPOCH_FENCED`: `currentEpoch`, `receivedEpoch`.
 * - `SEQ_CONFLICT`: `lastSeq`, `receivedSeq` (strings).
 * - `CONTENT_TYPE_MISMATCH`: `expected`, `actual`.
 * - `ALREADY_CLAIMED`: `currentHolder` (the worker holding the live lease), `generation` (of the held wake).
 * - `FENCED`: `generation` (the subscription's current generation, so a stale worker knows how far behind it is).
 */
export interface StorageErrorDetails {
  readonly nextOffset?: string;
  readonly expectedSeq?: number;
  readonly receivedSeq?: number | string;
  readonly currentEpoch?: number;
  readonly receivedEpoch?: number;
  readonly lastSeq?: string;
  readonly expected?: string;
  readonly actual?: string;
  readonly currentHolder?: string;
  readonly generation?: number;
}

const BRAND: unique symbol = Symbol.for('streamkeep.storage.error') as never;

/**
 * The one error class of the storage layer: a stable {@link StorageErrorCode}, a human message, optional structured
 * {@link StorageErrorDetails} and an optional ES2022 `cause` (for example the underlying `ErrnoException`).
 *
 * @remarks
 * Recognise it with {@link isStorageError}, not `instanceof`: duplicate installs and third-party backends built
 * against another copy of this package produce errors of a different class identity.
 */
export class StorageError extends Error {
  override readonly name = 'StorageError';
  readonly code: StorageErrorCode;
  readonly details: StorageErrorDetails;
  /** @internal the cross-realm brand read by {@link isStorageError}. */
  readonly [BRAND] = true;

  constructor(
    code: StorageErrorCode,
    message: string,
    options?: { details?: StorageErrorDetails; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details ?? {};
  }
}

/**
 * True when `err` is a {@link StorageError} (from any copy of this package), optionally with the given code.
 *
 * @example
 * ```ts
 * try { await storage.head(name) } catch (err) { if (isStorageError(err, 'NOT_FOUND')) return undefined; throw err }
 * ```
 */
export function isStorageError(err: unknown, code?: StorageErrorCode): err is StorageError {
  if (typeof err !== 'object' || err === null || (err as Record<symbol, unknown>)[BRAND] !== true)
    return false;
  return code === undefined || (err as StorageError).code === code;
}
