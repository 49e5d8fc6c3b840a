import { StorageError } from '../errors.js';
import type { ForkOptions, StreamConfig, StreamOptions } from '../types.js';
import { normalizeContentType } from './content-type.js';

/** The latest instant a deadline may have: the end of JavaScript's `Date` range. */
export const MAX_DEADLINE_MS = 8.64e15;

function ttlDeadline(ttlSeconds: number, now: number): number {
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 0) {
    throw new StorageError(
      'INVALID_TTL',
      `TTL must be a non-negative whole number of seconds, got ${ttlSeconds}`,
    );
  }
  const deadline = now + ttlSeconds * 1000;
  if (!(deadline <= MAX_DEADLINE_MS)) {
    throw new StorageError(
      'INVALID_TTL',
      `TTL of ${ttlSeconds} s reaches beyond the representable time range`,
    );
  }
  return deadline;
}

function checkDeadline(expiresAt: number): number {
  if (!Number.isFinite(expiresAt) || Math.abs(expiresAt) > MAX_DEADLINE_MS) {
    throw new StorageError('INVALID_TTL', `expiry deadline is not a representable instant: ${expiresAt}`);
  }
  return expiresAt;
}

function checkExpiryExclusive(options: {
  readonly ttlSeconds?: number | undefined;
  readonly expiresAt?: number | undefined;
}): void {
  if (options.ttlSeconds !== undefined && options.expiresAt !== undefined) {
    throw new StorageError('CONFLICTING_EXPIRY', 'a stream cannot have both a TTL and an absolute deadline');
  }
}

/**
 * Resolves creation options into a config at `now`: normalises the content type and turns a TTL into a deadline.
 *
 * @throws StorageError `INVALID_CONTENT_TYPE`, `CONFLICTING_EXPIRY`, `INVALID_TTL`, in that order.
 */
export function resolveStreamOptions(options: StreamOptions, now: number): StreamConfig {
  const contentType = normalizeContentType(options.contentType);
  checkExpiryExclusive(options);
  const createdClosed = options.closed === true;
  if (options.ttlSeconds !== undefined) {
    return {
      contentType,
      ttlSeconds: options.ttlSeconds,
      expiresAt: ttlDeadline(options.ttlSeconds, now),
      createdClosed,
    };
  }
  const expiresAt = options.expiresAt === undefined ? null : checkDeadline(options.expiresAt);
  return { contentType, ttlSeconds: null, expiresAt, createdClosed };
}

/**
 * Resolves a fork's config from its options and its source's config at `now`. The content type is the source's
 * (an explicit type must match it); expiry by priority: fork TTL, fork deadline, source TTL (a fresh deadline),
 * source deadline, none.
 *
 * @throws StorageError `CONTENT_TYPE_MISMATCH`, `INVALID_CONTENT_TYPE`, `INVALID_TTL`, `CONFLICTING_EXPIRY`.
 */
export function resolveForkConfig(options: ForkOptions, source: StreamConfig, now: number): StreamConfig {
  if (options.contentType !== undefined) {
    const requested = normalizeContentType(options.contentType);
    if (requested !== source.contentType) {
      throw new StorageError(
        'CONTENT_TYPE_MISMATCH',
        `fork content type ${requested} differs from the source's ${source.contentType}`,
        { details: { expected: source.contentType, actual: requested } },
      );
    }
  }
  checkExpiryExclusive(options);
  const createdClosed = options.closed === true;
  const contentType = source.contentType;
  const ttlSeconds = options.ttlSeconds ?? (options.expiresAt === undefined ? source.ttlSeconds : null);
  if (ttlSeconds !== null) {
    return { contentType, ttlSeconds, expiresAt: ttlDeadline(ttlSeconds, now), createdClosed };
  }
  const expiresAt = options.expiresAt === undefined ? source.expiresAt : checkDeadline(options.expiresAt);
  return { contentType, ttlSeconds: null, expiresAt, createdClosed };
}

/**
 * Config equality: equal content types and TTLs and — only without a TTL, since a TTL-derived deadline drifts with
 * time — equal deadlines. The created-closed flag is not compared; see {@link createMatchesExisting}.
 */
export function streamConfigsEqual(a: StreamConfig, b: StreamConfig): boolean {
  return (
    a.contentType === b.contentType &&
    a.ttlSeconds === b.ttlSeconds &&
    (a.ttlSeconds !== null || a.expiresAt === b.expiresAt)
  );
}

/**
 * The idempotency rule of `createStream` and `createFork`: a request matches an existing stream when the configs are
 * equal ({@link streamConfigsEqual}) and the request's `closed` flag equals the stream's *current* closure — a stream
 * closed after its creation matches a create with `closed: true`, and no longer matches one without (the protocol's
 * §5.1 table). Forks additionally compare their lineage (see `planNameClaim`).
 */
export function createMatchesExisting(
  existing: { readonly config: StreamConfig; readonly closed: boolean },
  requested: StreamConfig,
): boolean {
  return existing.closed === requested.createdClosed && streamConfigsEqual(existing.config, requested);
}

/** True when the config has a deadline and `now` has reached it (the boundary instant counts as expired). */
export function isExpired(config: StreamConfig, now: number): boolean {
  return config.expiresAt !== null && now >= config.expiresAt;
}

/**
 * The deadline after a use at `now`: `now + ttl` for a sliding TTL, the unchanged deadline otherwise.
 *
 * @throws StorageError `INVALID_TTL` if the renewed deadline overflows.
 */
export function renewedDeadline(config: StreamConfig, now: number): number | null {
  return config.ttlSeconds === null ? config.expiresAt : ttlDeadline(config.ttlSeconds, now);
}
