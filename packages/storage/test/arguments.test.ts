import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  NOW_OFFSET,
  validateAppend,
  validateCloseStream,
  validateCreateFork,
  validateCreateStream,
  validateListStreams,
  validateName,
  validateProducerAppend,
  validateRead,
  validateSubscribe,
  ZERO_OFFSET,
} from '../src/index.js';
import { ALL_CAPABILITIES, NO_CAPABILITIES, outcomeOf } from './support.js';

const bytes = new Uint8Array([1]);
const offset = '0000000000000001_0000000000000001';
// Values of the wrong JavaScript type for a string argument.
const notAString = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.constant({}), fc.constant([]));

/** True when a string has one UTF-8 encoding (no lone surrogate): the name law. */
function wellFormed(s: string): boolean {
  return new TextDecoder().decode(new TextEncoder().encode(s)) === s;
}

describe('names', () => {
  it('accepts exactly the non-empty well-formed strings, on every method that takes a name', () => {
    const validators: ((name: string) => unknown)[] = [
      (n) => validateName(n),
      (n) => validateRead(n, '-1', undefined),
      (n) => validateAppend(n, { messages: [bytes], contentType: 'text/plain' }),
      (n) => validateCloseStream(n, undefined),
      (n) =>
        validateProducerAppend(ALL_CAPABILITIES, n, {
          messages: [],
          producer: { id: 'p', epoch: 0, seq: 0 },
        }),
      (n) => validateSubscribe(n, () => {}),
      (n) => validateCreateStream(ALL_CAPABILITIES, n, { contentType: 'text/plain' }, 0),
      (n) => validateCreateFork(ALL_CAPABILITIES, n, { source: 'src' }, 0),
      (n) => validateCreateFork(ALL_CAPABILITIES, 'fork', { source: n }, 0),
    ];
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.constantFrom('\uD800', '\uDC00', '\u{1F600}', 'a', 'é', '/', '\uFFFD', '\u0000'),
        }),
        (name) => {
          const expected = name.length > 0 && wellFormed(name) ? undefined : 'INVALID_STREAM_NAME';
          for (const validate of validators) expect(outcomeOf(() => validate(name))).toBe(expected);
        },
      ),
      { numRuns: 200 },
    );
  }, 60_000);

  it('throws TypeError for a name of the wrong type, before any value check', () => {
    fc.assert(
      fc.property(notAString, (name) => {
        expect(outcomeOf(() => validateName(name as never))).toBe('TypeError');
        // A wrong-typed offset next to an invalid name: types come first.
        expect(outcomeOf(() => validateRead('', 5 as never, undefined))).toBe('TypeError');
      }),
    );
  });
});

describe('validateRead', () => {
  it('decides name, then offset, then the byte budget', () => {
    expect(outcomeOf(() => validateRead('', 'bad', { maxBytes: -1 }))).toBe('INVALID_STREAM_NAME');
    expect(outcomeOf(() => validateRead('s', 'bad', { maxBytes: -1 }))).toBe('INVALID_OFFSET');
    expect(outcomeOf(() => validateRead('s', offset, { maxBytes: -1 }))).toBe('RangeError');
    expect(outcomeOf(() => validateRead('s', offset, { maxBytes: '1' as never }))).toBe('TypeError');
    expect(outcomeOf(() => validateRead('s', offset, null as never))).toBe('TypeError');
  });

  it('accepts exactly the non-negative budgets (Infinity means none)', () => {
    fc.assert(
      fc.property(fc.double(), (maxBytes) => {
        const outcome = outcomeOf(() => validateRead('s', '-1', { maxBytes }));
        expect(outcome).toBe(maxBytes >= 0 ? undefined : 'RangeError');
      }),
    );
    expect(validateRead('s', 'now', { maxBytes: Number.POSITIVE_INFINITY })).toEqual({
      from: { kind: 'now' },
      maxBytes: undefined,
    });
    expect(validateRead('s', offset, { maxBytes: 0 }).maxBytes).toBe(0);
  });
});

describe('validateListStreams', () => {
  it('accepts exactly the non-negative safe integer limits', () => {
    fc.assert(
      fc.property(fc.oneof(fc.double(), fc.integer(), fc.constant(2 ** 53)), (limit) => {
        const outcome = outcomeOf(() => validateListStreams(ALL_CAPABILITIES, { limit }));
        expect(outcome).toBe(Number.isSafeInteger(limit) && limit >= 0 ? undefined : 'RangeError');
      }),
    );
  });

  it('gates on the capability before looking at the arguments', () => {
    expect(outcomeOf(() => validateListStreams(NO_CAPABILITIES, { limit: -1 }))).toBe('NOT_SUPPORTED');
    expect(outcomeOf(() => validateListStreams(ALL_CAPABILITIES, { prefix: 1 as never }))).toBe('TypeError');
    expect(validateListStreams(ALL_CAPABILITIES, undefined)).toEqual({});
    expect(validateListStreams(ALL_CAPABILITIES, { prefix: '\uD800', after: '' })).toEqual({
      prefix: '\uD800',
      after: '',
      limit: undefined,
    });
  });
});

describe('validateAppend and validateProducerAppend', () => {
  it('refuses an empty plain append unless it closes', () => {
    expect(outcomeOf(() => validateAppend('s', { messages: [] }))).toBe('EMPTY_APPEND');
    expect(outcomeOf(() => validateAppend('s', { messages: [], close: true }))).toBeUndefined();
    expect(outcomeOf(() => validateAppend('', { messages: [] }))).toBe('INVALID_STREAM_NAME');
  });

  it('checks every field type first', () => {
    expect(outcomeOf(() => validateAppend('s', { messages: 'x' as never }))).toBe('TypeError');
    expect(outcomeOf(() => validateAppend('s', { messages: [[1]] as never }))).toBe('TypeError');
    expect(outcomeOf(() => validateAppend('', { messages: [bytes], seq: null as never }))).toBe('TypeError');
    expect(outcomeOf(() => validateAppend('s', { messages: [bytes], close: 1 as never }))).toBe('TypeError');
    expect(outcomeOf(() => validateAppend('s', null as never))).toBe('TypeError');
  });

  it('gates producer appends, then checks the identity', () => {
    const producer = { id: 'p', epoch: 0, seq: 0 };
    expect(outcomeOf(() => validateProducerAppend(NO_CAPABILITIES, '', { messages: [], producer }))).toBe(
      'NOT_SUPPORTED',
    );
    const check = (p: unknown) =>
      outcomeOf(() => validateProducerAppend(ALL_CAPABILITIES, 's', { messages: [], producer: p as never }));
    expect(check(producer)).toBeUndefined();
    expect(check(undefined)).toBe('TypeError');
    expect(check({ ...producer, id: 1 })).toBe('TypeError');
    expect(check({ ...producer, epoch: '0' })).toBe('TypeError');
    expect(check({ ...producer, id: '' })).toBe('INVALID_PRODUCER');
    expect(check({ ...producer, epoch: -1 })).toBe('INVALID_PRODUCER');
    expect(check({ ...producer, seq: 1.5 })).toBe('INVALID_PRODUCER');
    expect(check({ ...producer, seq: Number.NaN })).toBe('INVALID_PRODUCER');
  });

  it('turns a close into the close-only append it is', () => {
    expect(validateCloseStream('s', { seq: '7' })).toEqual({ messages: [], close: true, seq: '7' });
    expect(validateCloseStream('s', undefined)).toEqual({ messages: [], close: true, seq: undefined });
    expect(outcomeOf(() => validateCloseStream('s', { seq: 7 as never }))).toBe('TypeError');
  });

  it('needs a function to subscribe', () => {
    expect(outcomeOf(() => validateSubscribe('s', 'f' as never))).toBe('TypeError');
    expect(outcomeOf(() => validateSubscribe('', () => {}))).toBe('INVALID_STREAM_NAME');
  });
});

describe('validateCreateStream and validateCreateFork', () => {
  it('resolves a create in the contract order, the expiry capability last', () => {
    const create = (options: object, caps = ALL_CAPABILITIES) =>
      outcomeOf(() => validateCreateStream(caps, 's', options as never, 1000));
    expect(create({ contentType: ' ', ttlSeconds: 1, expiresAt: 1 })).toBe('INVALID_CONTENT_TYPE');
    expect(create({ contentType: 'a/b', ttlSeconds: -1, expiresAt: 1 })).toBe('CONFLICTING_EXPIRY');
    expect(create({ contentType: 'a/b', ttlSeconds: 1.5 })).toBe('INVALID_TTL');
    expect(create({ contentType: 'a/b', ttlSeconds: 1.5 }, NO_CAPABILITIES)).toBe('INVALID_TTL');
    expect(create({ contentType: 'a/b', ttlSeconds: 1 }, NO_CAPABILITIES)).toBe('NOT_SUPPORTED');
    expect(create({ contentType: 'a/b' }, NO_CAPABILITIES)).toBeUndefined();
    expect(create({ contentType: 'a/b', ttlSeconds: '1' })).toBe('TypeError');
    expect(create({ contentType: 'a/b', messages: [bytes, 'x'] })).toBe('TypeError');
    expect(create({ contentType: 'a/b', closed: 'yes' })).toBe('TypeError');
    expect(
      validateCreateStream(ALL_CAPABILITIES, 's', { contentType: 'A/B; x', ttlSeconds: 2 }, 1000),
    ).toEqual({
      contentType: 'a/b',
      ttlSeconds: 2,
      expiresAt: 3000,
      createdClosed: false,
    });
  });

  it('validates a fork request without its source', () => {
    const fork = (options: object, caps = ALL_CAPABILITIES) =>
      outcomeOf(() => validateCreateFork(caps, 'f', { source: 's', ...options } as never, 0));
    expect(fork({ offset: 'x' }, NO_CAPABILITIES)).toBe('NOT_SUPPORTED');
    expect(fork({ offset: 'x', contentType: '' })).toBe('INVALID_OFFSET');
    expect(fork({ contentType: '', ttlSeconds: 1, expiresAt: 2 })).toBe('INVALID_CONTENT_TYPE');
    expect(fork({ ttlSeconds: -1, subOffset: -1 })).toBe('INVALID_TTL');
    expect(fork({ subOffset: -1 })).toBe('RangeError');
    expect(fork({ subOffset: 0.5 })).toBe('RangeError');
    expect(fork({ subOffset: '1' })).toBe('TypeError');
    expect(fork({ source: 1 })).toBe('TypeError');
    const resolved = (o: string) =>
      validateCreateFork(ALL_CAPABILITIES, 'f', { source: 's', offset: o }, 0).offset;
    expect(resolved('-1')).toBe(ZERO_OFFSET);
    expect(resolved('now')).toBe(NOW_OFFSET);
    expect(resolved('0020000000000000_0000000000000000')).toBe(NOW_OFFSET);
    expect(resolved(offset)).toBe(offset);
  });
});
