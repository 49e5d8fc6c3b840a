import { StorageError } from './errors.js';
import { NOW_OFFSET, type Offset, parseOffset, ZERO_OFFSET } from './offsets.js';
import type {
  AppendRequest,
  ForkOptions,
  ProducerIdentity,
  ProducerState,
  StreamConfig,
  StreamOptions,
} from './types.js';

/** Producer state idle for longer than this (7 days) is forgotten. */
export const PRODUCER_STATE_TTL_MS = 7 * 24 * 60 * 60 * 1000;

/** The latest instant a deadline may have: the end of JavaScript's `Date` range. */
export const MAX_DEADLINE_MS = 8.64e15;

// ---------------------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------------------

/**
 * Checks the storage-level name rule: a non-empty string of well-formed UTF-16 (no lone surrogates, so that the
 * name has one UTF-8 encoding). Backends may add their own limits.
 *
 * @throws TypeError when `name` is not a string; StorageError `INVALID_STREAM_NAME` otherwise.
 */
export function assertStreamName(name: string): void {
  if (typeof name !== 'string') throw new TypeError('stream name must be a string');
  if (name.length === 0) throw new StorageError('INVALID_STREAM_NAME', 'stream name must not be empty');
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    const next = name.charCodeAt(i + 1);
    if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      i++;
      continue;
    }
    throw new StorageError('INVALID_STREAM_NAME', 'stream name contains a lone surrogate');
  }
}

/**
 * Compares two strings by their UTF-8 encodings, byte by byte, without encoding them: UTF-8 byte order equals code
 * point order, which differs from JavaScript's UTF-16 code unit order for characters above U+FFFF.
 */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (U+D800–DFFF) stand for code points above U+FFFF, which sort after U+E000–U+FFFF in UTF-8.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

// ---------------------------------------------------------------------------------------------------------------
// Content types
// ---------------------------------------------------------------------------------------------------------------

/**
 * Normalises a content type: the text before the first `;`, trimmed, lower-cased.
 *
 * @throws StorageError `INVALID_CONTENT_TYPE` when the result is empty or holds characters illegal in an HTTP
 *   header value (controls other than tab, or non-Latin-1).
 */
export function normalizeContentType(raw: string): string {
  const semi = raw.indexOf(';');
  const value = (semi === -1 ? raw : raw.slice(0, semi)).trim().toLowerCase();
  if (value.length === 0) throw new StorageError('INVALID_CONTENT_TYPE', 'content type must not be empty');
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) {
      throw new StorageError(
        'INVALID_CONTENT_TYPE',
        `content type contains an illegal character: ${JSON.stringify(raw)}`,
      );
    }
  }
  return value;
}

/** True when the normalised type is exactly `application/json` (the protocol's JSON mode). */
export function isJsonContentType(normalized: string): boolean {
  return normalized === 'application/json';
}

// ---------------------------------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------------------------------

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

/**
 * Resolves creation options into a config at `now`: normalises the content type and turns a TTL into a deadline.
 *
 * @throws StorageError `INVALID_CONTENT_TYPE`, `INVALID_TTL`, `CONFLICTING_EXPIRY`.
 */
export function resolveStreamOptions(options: StreamOptions, now: number): StreamConfig {
  const contentType = normalizeContentType(options.contentType);
  if (options.ttlSeconds !== undefined && options.expiresAt !== undefined) {
    throw new StorageError('CONFLICTING_EXPIRY', 'a stream cannot have both a TTL and an absolute deadline');
  }
  if (options.ttlSeconds !== undefined) {
    return {
      contentType,
      ttlSeconds: options.ttlSeconds,
      expiresAt: ttlDeadline(options.ttlSeconds, now),
      createdClosed: options.closed === true,
    };
  }
  return {
    contentType,
    ttlSeconds: null,
    expiresAt: options.expiresAt === undefined ? null : checkDeadline(options.expiresAt),
    createdClosed: options.closed === true,
  };
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
  if (options.ttlSeconds !== undefined && options.expiresAt !== undefined) {
    throw new StorageError('CONFLICTING_EXPIRY', 'a stream cannot have both a TTL and an absolute deadline');
  }
  const createdClosed = options.closed === true;
  const contentType = source.contentType;
  if (options.ttlSeconds !== undefined) {
    return {
      contentType,
      ttlSeconds: options.ttlSeconds,
      expiresAt: ttlDeadline(options.ttlSeconds, now),
      createdClosed,
    };
  }
  if (options.expiresAt !== undefined) {
    return { contentType, ttlSeconds: null, expiresAt: checkDeadline(options.expiresAt), createdClosed };
  }
  if (source.ttlSeconds !== null) {
    return {
      contentType,
      ttlSeconds: source.ttlSeconds,
      expiresAt: ttlDeadline(source.ttlSeconds, now),
      createdClosed,
    };
  }
  return { contentType, ttlSeconds: null, expiresAt: source.expiresAt, createdClosed };
}

/**
 * The argument checks of a fork, made before the source is looked up, in the contract's order: the offset
 * (`INVALID_OFFSET`; `-1` becomes `(0, 0)`), the content type (`INVALID_CONTENT_TYPE`), the expiry
 * (`CONFLICTING_EXPIRY`, `INVALID_TTL`). Returns the requested fork offset (`undefined`: the source's tail; `now`
 * for an offset with a part above 2^53 − 1, which lies beyond every tail) and the sub-offset.
 *
 * @throws RangeError for a sub-offset that is not a non-negative safe integer.
 */
export function validateForkRequest(
  options: ForkOptions,
  now: number,
): { readonly offset: Offset | undefined; readonly subOffset: number } {
  let offset: Offset | undefined;
  if (options.offset !== undefined) {
    const parsed = parseOffset(options.offset);
    if (parsed.kind === 'start') offset = ZERO_OFFSET;
    else if (
      parsed.kind === 'position' &&
      !(Number.isSafeInteger(parsed.readSeq) && Number.isSafeInteger(parsed.byteOffset))
    ) {
      // A part above 2^53 − 1 lies beyond any reachable tail, even where its string sorts below one.
      offset = NOW_OFFSET;
    } else offset = options.offset;
  }
  resolveStreamOptions(
    {
      contentType: options.contentType ?? 'application/octet-stream',
      ttlSeconds: options.ttlSeconds,
      expiresAt: options.expiresAt,
    },
    now,
  );
  const subOffset = options.subOffset ?? 0;
  if (!Number.isSafeInteger(subOffset) || subOffset < 0) {
    throw new RangeError(`subOffset must be a non-negative safe integer, got ${subOffset}`);
  }
  return { offset, subOffset };
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
 * §5.1 table). Forks additionally compare their lineage.
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

// ---------------------------------------------------------------------------------------------------------------
// Commits: the shared check order of append, close and producer append
// ---------------------------------------------------------------------------------------------------------------

/** The part of a stream's state the commit rules read. Backends pass a view of their own entry. */
export interface StreamStateView {
  readonly name: string;
  readonly config: StreamConfig;
  readonly closed: boolean;
  readonly tombstone: boolean;
  readonly lastSeq: string | null;
  /** Current tail, for `STREAM_CLOSED` details. */
  readonly nextOffset: string;
  readonly producers?: ReadonlyMap<string, ProducerState> | undefined;
}

/**
 * Applies the access rule to an existing entry: tombstone → `GONE`, expired → `EXPIRED`.
 * (A missing entry is `NOT_FOUND`, which the backend decides before it has a view.)
 */
export function checkAccess(view: Pick<StreamStateView, 'name' | 'config' | 'tombstone'>, now: number): void {
  if (view.tombstone) throw new StorageError('GONE', `stream ${JSON.stringify(view.name)} was deleted`);
  if (isExpired(view.config, now))
    throw new StorageError('EXPIRED', `stream ${JSON.stringify(view.name)} has expired`);
}

/** Throws the `NOT_FOUND` error for `name`. */
export function notFound(name: string): never {
  throw new StorageError('NOT_FOUND', `stream ${JSON.stringify(name)} does not exist`);
}

/**
 * The `Stream-Seq` rule: a supplied value must sort strictly after the last accepted one, by UTF-8 bytes.
 *
 * @throws StorageError `SEQ_CONFLICT`.
 */
export function checkStreamSeq(lastSeq: string | null, seq: string | undefined): void {
  if (seq === undefined || lastSeq === null) return;
  if (compareUtf8(seq, lastSeq) <= 0) {
    throw new StorageError(
      'SEQ_CONFLICT',
      `Stream-Seq ${JSON.stringify(seq)} is not after ${JSON.stringify(lastSeq)}`,
      {
        details: { lastSeq, receivedSeq: seq },
      },
    );
  }
}

/**
 * Validates producer identity values.
 *
 * @throws StorageError `INVALID_PRODUCER` for an empty id or an epoch / seq that is not a non-negative safe integer.
 */
export function validateProducerIdentity(producer: ProducerIdentity): void {
  if (typeof producer.id !== 'string' || producer.id.length === 0) {
    throw new StorageError('INVALID_PRODUCER', 'producer id must be a non-empty string');
  }
  for (const [field, value] of [
    ['epoch', producer.epoch],
    ['seq', producer.seq],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new StorageError(
        'INVALID_PRODUCER',
        `producer ${field} must be a non-negative safe integer, got ${value}`,
      );
    }
  }
}

/** The outcome of the producer rules. */
export type ProducerDecision =
  | { readonly kind: 'accept' }
  | { readonly kind: 'duplicate'; readonly epoch: number; readonly seq: number };

/**
 * The idempotent-producer state machine. `state` is the stored entry for this producer id, or `undefined`; an entry
 * idle for longer than {@link PRODUCER_STATE_TTL_MS} counts as absent.
 *
 * @throws StorageError `PRODUCER_EPOCH_FENCED`, `STREAM_CLOSED`, `PRODUCER_INVALID_EPOCH_SEQ`, `PRODUCER_SEQ_GAP`.
 */
export function decideProducer(
  state: ProducerState | undefined,
  producer: ProducerIdentity,
  closed: boolean,
  nextOffset: string,
  now: number,
): ProducerDecision {
  const known = state !== undefined && now - state.updatedAt <= PRODUCER_STATE_TTL_MS ? state : undefined;
  if (known !== undefined) {
    if (producer.epoch < known.epoch) {
      throw new StorageError(
        'PRODUCER_EPOCH_FENCED',
        `producer ${JSON.stringify(producer.id)} epoch ${producer.epoch} is fenced by epoch ${known.epoch}`,
        { details: { currentEpoch: known.epoch, receivedEpoch: producer.epoch } },
      );
    }
    if (producer.epoch === known.epoch && producer.seq <= known.lastSeq) {
      return { kind: 'duplicate', epoch: known.epoch, seq: known.lastSeq };
    }
  }
  if (closed) throw streamClosed(nextOffset);
  if (known === undefined) {
    if (producer.seq !== 0) throw seqGap(0, producer.seq);
    return { kind: 'accept' };
  }
  if (producer.epoch > known.epoch) {
    if (producer.seq !== 0) {
      throw new StorageError(
        'PRODUCER_INVALID_EPOCH_SEQ',
        `a new producer epoch must start at seq 0, got ${producer.seq}`,
      );
    }
    return { kind: 'accept' };
  }
  if (producer.seq > known.lastSeq + 1) throw seqGap(known.lastSeq + 1, producer.seq);
  return { kind: 'accept' };
}

function seqGap(expected: number, received: number): StorageError {
  return new StorageError(
    'PRODUCER_SEQ_GAP',
    `producer sequence gap: expected ${expected}, got ${received}`,
    {
      details: { expectedSeq: expected, receivedSeq: received },
    },
  );
}

function streamClosed(nextOffset: string): StorageError {
  return new StorageError('STREAM_CLOSED', 'stream is closed', { details: { nextOffset } });
}

/**
 * The argument checks of an append, made before the stream is looked up: a non-producer append needs messages or
 * `close` (`EMPTY_APPEND`); producer identities must be well-formed (`INVALID_PRODUCER`).
 */
export function validateAppendRequest(
  request: AppendRequest & { readonly producer?: ProducerIdentity | undefined },
): void {
  if (request.producer !== undefined) validateProducerIdentity(request.producer);
  else if (request.messages.length === 0 && request.close !== true) {
    throw new StorageError(
      'EMPTY_APPEND',
      'an append needs at least one message unless it closes the stream',
    );
  }
}

/** What a commit changes besides the messages, computed before anything is written. */
export interface CommitPlan {
  readonly kind: 'commit';
  /** The closed flag after the commit. */
  readonly closed: boolean;
  readonly lastSeq: string | null;
  readonly expiresAt: number | null;
  readonly updatedAt: number;
  /** The producer entry to store, for producer appends. */
  readonly producer?: { readonly id: string; readonly state: ProducerState } | undefined;
}

/** A producer duplicate: nothing to write. */
export interface DuplicatePlan {
  readonly kind: 'duplicate';
  readonly epoch: number;
  readonly seq: number;
}

/**
 * Runs every rule of an append, close or producer append against a stream's current state, in the contract's order,
 * and returns what the commit must change — without changing anything, so a commit that later fails (limits, I/O)
 * leaves `Stream-Seq`, TTL, `updatedAt` and producer state untouched. The caller has already run
 * {@link validateAppendRequest} and found the entry (else `NOT_FOUND`), and still checks the byte limits
 * ({@link checkByteLimits}) while committing.
 *
 * @throws StorageError every rule code of `Storage.append` / `Storage.appendWithProducer` except the limits.
 */
export function planCommit(
  view: StreamStateView,
  request: AppendRequest & { readonly producer?: ProducerIdentity | undefined },
  now: number,
): CommitPlan | DuplicatePlan {
  const { messages, producer } = request;
  const close = request.close === true;
  validateAppendRequest(request);
  checkAccess(view, now);

  let producerEntry: CommitPlan['producer'];
  if (producer !== undefined) {
    if (messages.length > 0) checkContentType(view, request.contentType);
    const decision = decideProducer(
      view.producers?.get(producer.id),
      producer,
      view.closed,
      view.nextOffset,
      now,
    );
    if (decision.kind === 'duplicate') return decision;
    producerEntry = {
      id: producer.id,
      state: { epoch: producer.epoch, lastSeq: producer.seq, updatedAt: now },
    };
  } else if (messages.length > 0) {
    if (view.closed) throw streamClosed(view.nextOffset);
    checkContentType(view, request.contentType);
  }
  checkStreamSeq(view.lastSeq, request.seq);
  return {
    kind: 'commit',
    closed: view.closed || close,
    lastSeq: request.seq ?? view.lastSeq,
    expiresAt: renewedDeadline(view.config, now),
    updatedAt: now,
    producer: producerEntry,
  };
}

function checkContentType(view: StreamStateView, contentType: string | undefined): void {
  if (contentType === undefined) {
    throw new StorageError('INVALID_CONTENT_TYPE', 'an append with messages needs a content type');
  }
  const actual = normalizeContentType(contentType);
  if (actual !== view.config.contentType) {
    throw new StorageError(
      'CONTENT_TYPE_MISMATCH',
      `content type ${actual} does not match the stream's ${view.config.contentType}`,
      { details: { expected: view.config.contentType, actual } },
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Byte limits
// ---------------------------------------------------------------------------------------------------------------

/** Configured byte limits; `Infinity` (the default) means unlimited. */
export interface ByteLimits {
  /** Payload bytes across all streams. */
  readonly maxTotalBytes: number;
  /** Payload bytes stored locally by one stream. */
  readonly maxStreamBytes: number;
}

/** The payload size of a batch. */
export function batchBytes(messages: readonly Uint8Array[]): number {
  let n = 0;
  for (const m of messages) n += m.byteLength;
  return n;
}

/**
 * Checks a commit of `bytes` against the limits, the storage-wide one first.
 *
 * @throws StorageError `STORAGE_LIMIT_EXCEEDED`, then `STREAM_LIMIT_EXCEEDED`.
 */
export function checkByteLimits(
  limits: ByteLimits,
  totalBytes: number,
  streamBytes: number,
  bytes: number,
): void {
  if (bytes === 0) return;
  if (totalBytes + bytes > limits.maxTotalBytes) {
    throw new StorageError(
      'STORAGE_LIMIT_EXCEEDED',
      `storage limit of ${limits.maxTotalBytes} bytes exceeded`,
    );
  }
  if (streamBytes + bytes > limits.maxStreamBytes) {
    throw new StorageError(
      'STREAM_LIMIT_EXCEEDED',
      `stream limit of ${limits.maxStreamBytes} bytes exceeded`,
    );
  }
}

/**
 * Validates and defaults byte limits given as options.
 *
 * @throws RangeError for a limit that is not a non-negative number.
 */
export function resolveByteLimits(options: {
  maxTotalBytes?: number | undefined;
  maxStreamBytes?: number | undefined;
}): ByteLimits {
  const check = (name: string, v: number | undefined): number => {
    if (v === undefined) return Number.POSITIVE_INFINITY;
    if (typeof v !== 'number' || Number.isNaN(v) || v < 0)
      throw new RangeError(`${name} must be a non-negative number`);
    return v;
  };
  return {
    maxTotalBytes: check('maxTotalBytes', options.maxTotalBytes),
    maxStreamBytes: check('maxStreamBytes', options.maxStreamBytes),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Reads and forks
// ---------------------------------------------------------------------------------------------------------------

/**
 * The number of leading messages (from `start`) a read may return under a byte budget: it stops before the message
 * that would take the total past `maxBytes`, but takes at least one.
 */
export function takeWithinBudget(
  sizes: ArrayLike<number>,
  start: number,
  end: number,
  maxBytes: number | undefined,
): number {
  if (maxBytes === undefined || start >= end) return end - start;
  let total = 0;
  let i = start;
  for (; i < end; i++) {
    const size = sizes[i]!;
    if (i > start && total + size > maxBytes) break;
    total += size;
  }
  return i - start;
}
