import type { Storage, StorageCapabilities, StorageErrorCode } from '@streamkeep/storage';

// The contract's answer to every class of invalid argument (storage.ts, "Invalid arguments"), as data: the law in
// arguments.ts runs each case on every stream state, and the model and differential runs mix them into their
// sequences. The calls deliberately break the TypeScript signatures, as JavaScript callers can.

/** What an invalid call must do: reject with a `StorageError` code, or throw a plain `TypeError` / `RangeError`. */
export type ArgumentAnswer = StorageErrorCode | 'TypeError' | 'RangeError';

/** One class of invalid input: a call on a stream name and the answer the contract states for it. */
export interface ArgumentCase {
  readonly method: keyof Omit<
    Storage,
    'capabilities' | 'specificationVersion' | 'close' | 'cleanupExpiredStreams'
  >;
  readonly title: string;
  readonly answer: ArgumentAnswer;
  /** The capability the method needs; off, the answer is `NOT_SUPPORTED` whatever the arguments (step 2). */
  readonly needs?: keyof StorageCapabilities;
  readonly call: (storage: Storage, name: string) => Promise<unknown>;
}

const CT = 'text/plain';
const ONE = [new Uint8Array([1])];
/** Breaks the static types on purpose. */
const any = (v: unknown) => v as never;
const create = (s: Storage, name: string, options: object) =>
  s.createStream(name, any({ contentType: CT, messages: ONE, ...options }));
const fork = (s: Storage, name: string, options: object) =>
  s.createFork(`${name}-fork`, any({ source: name, ...options }));
const produce = (s: Storage, name: string, producer: unknown) =>
  s.appendWithProducer(name, any({ producer, messages: ONE, contentType: CT }));

/** Every invalid input class the contract decides, in the kit's words. */
export const ARGUMENT_CASES: readonly ArgumentCase[] = [
  // --- createStream: name, content type, expiry conflict, TTL — in that order; types before values --------------
  {
    method: 'createStream',
    title: 'empty name',
    answer: 'INVALID_STREAM_NAME',
    call: (s) => create(s, '', {}),
  },
  {
    method: 'createStream',
    title: 'name with a lone surrogate',
    answer: 'INVALID_STREAM_NAME',
    call: (s) => create(s, 'a\uDC00b', {}),
  },
  {
    method: 'createStream',
    title: 'empty content type',
    answer: 'INVALID_CONTENT_TYPE',
    call: (s, n) => create(s, n, { contentType: '' }),
  },
  {
    method: 'createStream',
    title: 'content type empty before ";"',
    answer: 'INVALID_CONTENT_TYPE',
    call: (s, n) => create(s, n, { contentType: ' ; charset=utf-8' }),
  },
  {
    method: 'createStream',
    title: 'content type with a control character',
    answer: 'INVALID_CONTENT_TYPE',
    call: (s, n) => create(s, n, { contentType: 'text/\u0001' }),
  },
  {
    method: 'createStream',
    title: 'content type beyond Latin-1',
    answer: 'INVALID_CONTENT_TYPE',
    call: (s, n) => create(s, n, { contentType: 'text/\u0100' }),
  },
  {
    method: 'createStream',
    title: 'TTL and deadline together',
    answer: 'CONFLICTING_EXPIRY',
    call: (s, n) => create(s, n, { ttlSeconds: 5, expiresAt: Date.UTC(2030, 0, 1) }),
  },
  {
    method: 'createStream',
    title: 'negative TTL',
    answer: 'INVALID_TTL',
    call: (s, n) => create(s, n, { ttlSeconds: -1 }),
  },
  {
    method: 'createStream',
    title: 'fractional TTL',
    answer: 'INVALID_TTL',
    call: (s, n) => create(s, n, { ttlSeconds: 1.5 }),
  },
  {
    method: 'createStream',
    title: 'NaN TTL',
    answer: 'INVALID_TTL',
    call: (s, n) => create(s, n, { ttlSeconds: Number.NaN }),
  },
  {
    method: 'createStream',
    title: 'infinite TTL',
    answer: 'INVALID_TTL',
    call: (s, n) => create(s, n, { ttlSeconds: Number.POSITIVE_INFINITY }),
  },
  {
    method: 'createStream',
    title: 'TTL above 2^53',
    answer: 'INVALID_TTL',
    call: (s, n) => create(s, n, { ttlSeconds: 2 ** 53 }),
  },
  {
    method: 'createStream',
    title: 'TTL past the last representable instant',
    answer: 'INVALID_TTL',
    call: (s, n) => create(s, n, { ttlSeconds: 9e12 }),
  },
  {
    method: 'createStream',
    title: 'NaN deadline',
    answer: 'INVALID_TTL',
    call: (s, n) => create(s, n, { expiresAt: Number.NaN }),
  },
  {
    method: 'createStream',
    title: 'deadline past the last representable instant',
    answer: 'INVALID_TTL',
    call: (s, n) => create(s, n, { expiresAt: 8.64e15 + 1 }),
  },
  {
    method: 'createStream',
    title: 'empty name before empty content type',
    answer: 'INVALID_STREAM_NAME',
    call: (s) => create(s, '', { contentType: '' }),
  },
  {
    method: 'createStream',
    title: 'empty content type before conflicting expiry',
    answer: 'INVALID_CONTENT_TYPE',
    call: (s, n) => create(s, n, { contentType: '', ttlSeconds: 1, expiresAt: 1 }),
  },
  {
    method: 'createStream',
    title: 'conflicting expiry before invalid TTL',
    answer: 'CONFLICTING_EXPIRY',
    call: (s, n) => create(s, n, { ttlSeconds: -1, expiresAt: Number.NaN }),
  },
  {
    method: 'createStream',
    title: 'name not a string',
    answer: 'TypeError',
    call: (s) => create(s, any(42), {}),
  },
  {
    method: 'createStream',
    title: 'options null',
    answer: 'TypeError',
    call: (s, n) => s.createStream(n, any(null)),
  },
  {
    method: 'createStream',
    title: 'content type not a string',
    answer: 'TypeError',
    call: (s, n) => create(s, n, { contentType: 5 }),
  },
  {
    method: 'createStream',
    title: 'a message that is not a Uint8Array',
    answer: 'TypeError',
    call: (s, n) => create(s, n, { messages: ['x'] }),
  },
  {
    method: 'createStream',
    title: 'closed not a boolean',
    answer: 'TypeError',
    call: (s, n) => create(s, n, { closed: 'yes' }),
  },
  {
    method: 'createStream',
    title: 'TTL null',
    answer: 'TypeError',
    call: (s, n) => create(s, n, { ttlSeconds: null }),
  },
  {
    method: 'createStream',
    title: 'a wrong type before an invalid name',
    answer: 'TypeError',
    call: (s) => create(s, '', { messages: 'x' }),
  },

  // --- createFork: name, source, offset, content type, expiry, sub-offset -------------------------------------------
  {
    method: 'createFork',
    needs: 'forks',
    title: 'empty fork name',
    answer: 'INVALID_STREAM_NAME',
    call: (s, n) => s.createFork('', { source: n }),
  },
  {
    method: 'createFork',
    needs: 'forks',
    title: 'empty source name',
    answer: 'INVALID_STREAM_NAME',
    call: (s, n) => s.createFork(`${n}-fork`, { source: '' }),
  },
  {
    method: 'createFork',
    needs: 'forks',
    title: 'malformed fork offset',
    answer: 'INVALID_OFFSET',
    call: (s, n) => fork(s, n, { offset: 'abc' }),
  },
  {
    method: 'createFork',
    needs: 'forks',
    title: 'upper-case fork offset',
    answer: 'INVALID_OFFSET',
    call: (s, n) => fork(s, n, { offset: '0000000000000000_000000000000000A' }),
  },
  {
    method: 'createFork',
    needs: 'forks',
    title: 'empty fork content type',
    answer: 'INVALID_CONTENT_TYPE',
    call: (s, n) => fork(s, n, { contentType: '' }),
  },
  {
    method: 'createFork',
    needs: 'forks',
    title: 'fork TTL and deadline together',
    answer: 'CONFLICTING_EXPIRY',
    call: (s, n) => fork(s, n, { ttlSeconds: 5, expiresAt: Date.UTC(2030, 0, 1) }),
  },
  {
    method: 'createFork',
    needs: 'forks',
    title: 'negative fork TTL',
    answer: 'INVALID_TTL',
    call: (s, n) => fork(s, n, { ttlSeconds: -1 }),
  },
  {
    method: 'createFork',
    needs: 'forks',
    title: 'negative sub-offset',
    answer: 'RangeError',
    call: (s, n) => fork(s, n, { subOffset: -1 }),
  },
  {
    method: 'createFork',
    needs: 'forks',
    title: 'fractional sub-offset',
    answer: 'RangeError',
    call: (s, n) => fork(s, n, { subOffset: 1.5 }),
  },
  {
    method: 'createFork',
    needs: 'forks',
    title: 'empty name before empty source',
    answer: 'INVALID_STREAM_NAME',
    call: (s) => s.createFork('', { source: '' }),
  },
  {
    method: 'createFork',
    needs: 'forks',
    title: 'malformed offset before empty content type',
    answer: 'INVALID_OFFSET',
    call: (s, n) => fork(s, n, { offset: 'x', contentType: '' }),
  },
  {
    method: 'createFork',
    needs: 'forks',
    title: 'source not a string',
    answer: 'TypeError',
    call: (s, n) => s.createFork(n, any({ source: 7 })),
  },

  // --- append and closeStream ---------------------------------------------------------------------------------------
  {
    method: 'append',
    title: 'empty name',
    answer: 'INVALID_STREAM_NAME',
    call: (s) => s.append('', { messages: ONE, contentType: CT }),
  },
  {
    method: 'append',
    title: 'no messages and no close',
    answer: 'EMPTY_APPEND',
    call: (s, n) => s.append(n, { messages: [], contentType: CT }),
  },
  {
    method: 'append',
    title: 'empty name before an empty append',
    answer: 'INVALID_STREAM_NAME',
    call: (s) => s.append('', { messages: [] }),
  },
  { method: 'append', title: 'request null', answer: 'TypeError', call: (s, n) => s.append(n, any(null)) },
  {
    method: 'append',
    title: 'messages not an array',
    answer: 'TypeError',
    call: (s, n) => s.append(n, any({ messages: 'x', contentType: CT })),
  },
  {
    method: 'append',
    title: 'Stream-Seq not a string',
    answer: 'TypeError',
    call: (s, n) => s.append(n, any({ messages: ONE, contentType: CT, seq: 5 })),
  },
  {
    method: 'append',
    title: 'close not a boolean',
    answer: 'TypeError',
    call: (s, n) => s.append(n, any({ messages: ONE, contentType: CT, close: 1 })),
  },
  {
    method: 'closeStream',
    title: 'empty name',
    answer: 'INVALID_STREAM_NAME',
    call: (s) => s.closeStream(''),
  },
  {
    method: 'closeStream',
    title: 'Stream-Seq not a string',
    answer: 'TypeError',
    call: (s, n) => s.closeStream(n, any({ seq: 5 })),
  },

  // --- appendWithProducer ---------------------------------------------------------------------------------------------
  {
    method: 'appendWithProducer',
    needs: 'producers',
    title: 'empty name',
    answer: 'INVALID_STREAM_NAME',
    call: (s) => produce(s, '', { id: 'p', epoch: 0, seq: 0 }),
  },
  {
    method: 'appendWithProducer',
    needs: 'producers',
    title: 'empty producer id',
    answer: 'INVALID_PRODUCER',
    call: (s, n) => produce(s, n, { id: '', epoch: 0, seq: 0 }),
  },
  {
    method: 'appendWithProducer',
    needs: 'producers',
    title: 'negative epoch',
    answer: 'INVALID_PRODUCER',
    call: (s, n) => produce(s, n, { id: 'p', epoch: -1, seq: 0 }),
  },
  {
    method: 'appendWithProducer',
    needs: 'producers',
    title: 'epoch above 2^53',
    answer: 'INVALID_PRODUCER',
    call: (s, n) => produce(s, n, { id: 'p', epoch: 2 ** 53, seq: 0 }),
  },
  {
    method: 'appendWithProducer',
    needs: 'producers',
    title: 'fractional seq',
    answer: 'INVALID_PRODUCER',
    call: (s, n) => produce(s, n, { id: 'p', epoch: 0, seq: 1.5 }),
  },
  {
    method: 'appendWithProducer',
    needs: 'producers',
    title: 'NaN seq',
    answer: 'INVALID_PRODUCER',
    call: (s, n) => produce(s, n, { id: 'p', epoch: 0, seq: Number.NaN }),
  },
  {
    method: 'appendWithProducer',
    needs: 'producers',
    title: 'empty name before an empty producer id',
    answer: 'INVALID_STREAM_NAME',
    call: (s) => produce(s, '', { id: '', epoch: 0, seq: 0 }),
  },
  {
    method: 'appendWithProducer',
    needs: 'producers',
    title: 'producer null',
    answer: 'TypeError',
    call: (s, n) => produce(s, n, null),
  },
  {
    method: 'appendWithProducer',
    needs: 'producers',
    title: 'producer id not a string',
    answer: 'TypeError',
    call: (s, n) => produce(s, n, { id: 5, epoch: 0, seq: 0 }),
  },

  // --- read, head, exists, delete, subscribe, listStreams -----------------------------------------------------------
  { method: 'read', title: 'empty name', answer: 'INVALID_STREAM_NAME', call: (s) => s.read('', '-1') },
  ...[
    '',
    'abc',
    '-2',
    'NOW',
    '0000000000000000_000000000000000A',
    '0000000000000000-0000000000000000',
    '0000000000000000_000000000000000',
  ].map(
    (from): ArgumentCase => ({
      method: 'read',
      title: `malformed offset ${JSON.stringify(from)}`,
      answer: 'INVALID_OFFSET',
      call: (s, n) => s.read(n, from),
    }),
  ),
  {
    method: 'read',
    title: 'negative budget',
    answer: 'RangeError',
    call: (s, n) => s.read(n, '-1', { maxBytes: -1 }),
  },
  {
    method: 'read',
    title: 'NaN budget',
    answer: 'RangeError',
    call: (s, n) => s.read(n, '-1', { maxBytes: Number.NaN }),
  },
  {
    method: 'read',
    title: 'empty name before a malformed offset',
    answer: 'INVALID_STREAM_NAME',
    call: (s) => s.read('', 'abc'),
  },
  {
    method: 'read',
    title: 'malformed offset before a negative budget',
    answer: 'INVALID_OFFSET',
    call: (s, n) => s.read(n, 'abc', { maxBytes: -1 }),
  },
  { method: 'read', title: 'offset not a string', answer: 'TypeError', call: (s, n) => s.read(n, any(5)) },
  { method: 'head', title: 'empty name', answer: 'INVALID_STREAM_NAME', call: (s) => s.head('') },
  {
    method: 'head',
    title: 'name with a lone surrogate',
    answer: 'INVALID_STREAM_NAME',
    call: (s) => s.head('\uD800'),
  },
  { method: 'head', title: 'name null', answer: 'TypeError', call: (s) => s.head(any(null)) },
  {
    method: 'exists',
    title: 'empty name (rejects, not false)',
    answer: 'INVALID_STREAM_NAME',
    call: (s) => s.exists(''),
  },
  { method: 'delete', title: 'empty name', answer: 'INVALID_STREAM_NAME', call: (s) => s.delete('') },
  {
    method: 'subscribe',
    title: 'empty name',
    answer: 'INVALID_STREAM_NAME',
    call: (s) => s.subscribe('', () => {}),
  },
  {
    method: 'subscribe',
    title: 'listener not a function',
    answer: 'TypeError',
    call: (s, n) => s.subscribe(n, any('x')),
  },
  {
    method: 'listStreams',
    needs: 'listStreams',
    title: 'negative limit',
    answer: 'RangeError',
    call: (s) => s.listStreams({ limit: -1 }),
  },
  {
    method: 'listStreams',
    needs: 'listStreams',
    title: 'fractional limit',
    answer: 'RangeError',
    call: (s) => s.listStreams({ limit: 1.5 }),
  },
  {
    method: 'listStreams',
    needs: 'listStreams',
    title: 'prefix not a string',
    answer: 'TypeError',
    call: (s) => s.listStreams(any({ prefix: 5 })),
  },
  {
    method: 'listStreams',
    needs: 'listStreams',
    title: 'options null',
    answer: 'TypeError',
    call: (s) => s.listStreams(any(null)),
  },
];
