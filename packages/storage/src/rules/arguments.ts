import type { StorageCapabilities } from '../capabilities.js';
import { StorageError } from '../errors.js';
import { NOW_OFFSET, type Offset, type ParsedOffset, parseOffset, ZERO_OFFSET } from '../offsets.js';
import type {
  AppendRequest,
  CreateStreamOptions,
  ForkOptions,
  ListStreamsOptions,
  ProducerAppendRequest,
  ReadOptions,
  StreamConfig,
  StreamListener,
} from '../types.js';
import { validateAppendRequest } from './commit.js';
import { resolveStreamOptions } from './config.js';
import type { ListingQuery } from './listing.js';
import { assertStreamName, typeName } from './names.js';

// One `validate…` per `Storage` method: steps 2–5 of the contract's "Invalid arguments" order (capability gate,
// types, values, argument-dependent capability). Backends call them after their `STORAGE_CLOSED` check and before
// looking at any stream, so the answer never depends on state.

type Shape = 'string' | 'number' | 'boolean' | 'object' | 'function' | 'messages';

function isShape(value: unknown, shape: Shape): boolean {
  switch (shape) {
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'messages':
      return Array.isArray(value) && value.every((m) => m instanceof Uint8Array);
    default:
      return typeof value === shape;
  }
}

const EXPECTED: Record<Shape, string> = {
  string: 'a string',
  number: 'a number',
  boolean: 'a boolean',
  object: 'an object',
  function: 'a function',
  messages: 'an array of Uint8Array',
};

/** The type check of step 3: `value` must have `shape` (or be `undefined` when `optional`). */
function check(what: string, value: unknown, shape: Shape, optional = false): void {
  if (optional && value === undefined) return;
  if (!isShape(value, shape))
    throw new TypeError(`${what} must be ${EXPECTED[shape]}, got ${typeName(value)}`);
}

/** The optional fields of an options object and their shapes, as pairs (made once: checked on every append). */
type Fields = readonly (readonly [string, Shape])[];
const fields = (shapes: Readonly<Record<string, Shape>>): Fields => Object.entries(shapes);

function checkFields(what: string, value: object, shapes: Fields): void {
  const record = value as Record<string, unknown>;
  for (const [field, shape] of shapes) {
    const v = record[field];
    // The message (and its string) only for a value that fails.
    if (v !== undefined && !isShape(v, shape)) check(`${what}.${field}`, v, shape);
  }
}

function gate(capabilities: StorageCapabilities, capability: keyof StorageCapabilities, what: string): void {
  if (!capabilities[capability]) {
    throw new StorageError('NOT_SUPPORTED', `${what} needs the ${capability} capability`);
  }
}

const STREAM_OPTION_SHAPES = {
  contentType: 'string',
  ttlSeconds: 'number',
  expiresAt: 'number',
  closed: 'boolean',
  messages: 'messages',
} as const satisfies Record<string, Shape>;
const STREAM_OPTION_FIELDS = fields(STREAM_OPTION_SHAPES);
const FORK_OPTION_FIELDS = fields({ ...STREAM_OPTION_SHAPES, offset: 'string', subOffset: 'number' });
const LISTING_FIELDS = fields({ prefix: 'string', after: 'string', limit: 'number' });

function checkExpiryCapability(
  capabilities: StorageCapabilities,
  options: { readonly ttlSeconds?: unknown; readonly expiresAt?: unknown },
): void {
  if (options.ttlSeconds !== undefined || options.expiresAt !== undefined) {
    gate(capabilities, 'expiry', 'a TTL or deadline');
  }
}

/**
 * The arguments of `createStream`, resolved at `now` into the stream's config.
 *
 * @throws TypeError; StorageError `INVALID_STREAM_NAME`, `INVALID_CONTENT_TYPE`, `CONFLICTING_EXPIRY`,
 *   `INVALID_TTL`, then `NOT_SUPPORTED` (an expiry without the `expiry` capability).
 */
export function validateCreateStream(
  capabilities: StorageCapabilities,
  name: string,
  options: CreateStreamOptions,
  now: number,
): StreamConfig {
  check('stream name', name, 'string');
  check('options', options, 'object');
  check('options.contentType', options.contentType, 'string');
  checkFields('options', options, STREAM_OPTION_FIELDS);
  assertStreamName(name);
  const config = resolveStreamOptions(options, now);
  checkExpiryCapability(capabilities, options);
  return config;
}

/** The fork request's own values, before the source is looked up (see `planFork`). */
export interface ValidatedFork {
  /** The requested fork offset, concrete or `now` (beyond every tail); `undefined` for the source's tail. */
  readonly offset: Offset | undefined;
  readonly subOffset: number;
}

/**
 * The arguments of `createFork`, in the contract's order: `name`, `source`, `offset` (`-1` becomes `(0, 0)`; a part
 * above 2^53 − 1 becomes `now`, which lies beyond every tail), content type, expiry, sub-offset.
 *
 * @throws StorageError `NOT_SUPPORTED` without `forks`; TypeError; StorageError `INVALID_STREAM_NAME`,
 *   `INVALID_OFFSET`, `INVALID_CONTENT_TYPE`, `CONFLICTING_EXPIRY`, `INVALID_TTL`; RangeError for a sub-offset that
 *   is not a non-negative safe integer; StorageError `NOT_SUPPORTED` for an expiry without `expiry`.
 */
export function validateCreateFork(
  capabilities: StorageCapabilities,
  name: string,
  options: ForkOptions,
  now: number,
): ValidatedFork {
  gate(capabilities, 'forks', 'createFork');
  check('stream name', name, 'string');
  check('options', options, 'object');
  check('options.source', options.source, 'string');
  checkFields('options', options, FORK_OPTION_FIELDS);
  assertStreamName(name);
  assertStreamName(options.source);
  const validated = validateForkRequest(options, now);
  checkExpiryCapability(capabilities, options);
  return validated;
}

/**
 * The value checks of a fork request after its names: offset, content type, expiry, sub-offset (the part of
 * {@link validateCreateFork} the file backend called before this package had one validator per method).
 *
 * @deprecated Call {@link validateCreateFork}, which checks types, names and capabilities too.
 */
export function validateForkRequest(options: ForkOptions, now: number): ValidatedFork {
  let offset: Offset | undefined;
  if (options.offset !== undefined) offset = forkOffsetOf(parseOffset(options.offset), options.offset);
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

function forkOffsetOf(parsed: ParsedOffset, raw: Offset): Offset {
  if (parsed.kind === 'start') return ZERO_OFFSET;
  if (parsed.kind === 'now') return NOW_OFFSET;
  // A part above 2^53 − 1 lies beyond any reachable tail, even where its string sorts below one.
  if (!(Number.isSafeInteger(parsed.readSeq) && Number.isSafeInteger(parsed.byteOffset))) return NOW_OFFSET;
  return raw;
}

const APPEND_FIELDS = fields({ contentType: 'string', seq: 'string', close: 'boolean' });

/**
 * The arguments of `append`.
 *
 * @throws TypeError; StorageError `INVALID_STREAM_NAME`, `EMPTY_APPEND`.
 */
export function validateAppend(name: string, request: AppendRequest): void {
  checkAppendTypes(name, request);
  assertStreamName(name);
  validateAppendRequest(request);
}

function checkAppendTypes(name: string, request: AppendRequest): void {
  check('stream name', name, 'string');
  check('request', request, 'object');
  check('request.messages', request.messages, 'messages');
  checkFields('request', request, APPEND_FIELDS);
}

/**
 * The arguments of `closeStream`, as the close-only append it is.
 *
 * @throws TypeError; StorageError `INVALID_STREAM_NAME`.
 */
export function validateCloseStream(
  name: string,
  options: { readonly seq?: string | undefined } | undefined,
): AppendRequest {
  check('stream name', name, 'string');
  check('options', options, 'object', true);
  check('options.seq', options?.seq, 'string', true);
  assertStreamName(name);
  return { messages: [], close: true, seq: options?.seq };
}

/**
 * The arguments of `appendWithProducer`.
 *
 * @throws StorageError `NOT_SUPPORTED` without `producers`; TypeError; StorageError `INVALID_STREAM_NAME`,
 *   `INVALID_PRODUCER`.
 */
export function validateProducerAppend(
  capabilities: StorageCapabilities,
  name: string,
  request: ProducerAppendRequest,
): void {
  gate(capabilities, 'producers', 'appendWithProducer');
  checkAppendTypes(name, request);
  check('request.producer', request.producer, 'object');
  check('request.producer.id', request.producer.id, 'string');
  check('request.producer.epoch', request.producer.epoch, 'number');
  check('request.producer.seq', request.producer.seq, 'number');
  assertStreamName(name);
  validateAppendRequest(request);
}

/** A read's validated arguments. */
export interface ValidatedRead {
  readonly from: ParsedOffset;
  /** The byte budget; `undefined` for none (omitted or `Infinity`). */
  readonly maxBytes: number | undefined;
}

/**
 * The arguments of `read`.
 *
 * @throws TypeError; StorageError `INVALID_STREAM_NAME`, `INVALID_OFFSET`; RangeError for a `maxBytes` that is NaN
 *   or negative.
 */
export function validateRead(name: string, from: Offset, options: ReadOptions | undefined): ValidatedRead {
  check('stream name', name, 'string');
  check('offset', from, 'string');
  check('options', options, 'object', true);
  const maxBytes = options?.maxBytes;
  check('options.maxBytes', maxBytes, 'number', true);
  assertStreamName(name);
  const parsed = parseOffset(from);
  if (maxBytes !== undefined && !(maxBytes >= 0)) {
    throw new RangeError(`maxBytes must be a non-negative number, got ${maxBytes}`);
  }
  return { from: parsed, maxBytes: maxBytes === Number.POSITIVE_INFINITY ? undefined : maxBytes };
}

/**
 * The argument of `head`, `exists` and `delete`.
 *
 * @throws TypeError; StorageError `INVALID_STREAM_NAME`.
 */
export function validateName(name: string): void {
  check('stream name', name, 'string');
  assertStreamName(name);
}

/**
 * The arguments of `subscribe`.
 *
 * @throws TypeError; StorageError `INVALID_STREAM_NAME`.
 */
export function validateSubscribe(name: string, listener: StreamListener): void {
  check('stream name', name, 'string');
  check('listener', listener, 'function');
  assertStreamName(name);
}

/**
 * The arguments of `listStreams`.
 *
 * @throws StorageError `NOT_SUPPORTED` without `listStreams`; TypeError; RangeError for a `limit` that is not a
 *   non-negative safe integer.
 */
export function validateListStreams(
  capabilities: StorageCapabilities,
  options: ListStreamsOptions | undefined,
): ListingQuery {
  gate(capabilities, 'listStreams', 'listStreams');
  check('options', options, 'object', true);
  if (options === undefined) return {};
  checkFields('options', options, LISTING_FIELDS);
  const { prefix, after, limit } = options;
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) {
    throw new RangeError(`limit must be a non-negative safe integer, got ${limit}`);
  }
  return { prefix, after, limit };
}
