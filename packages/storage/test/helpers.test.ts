import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assertStreamName,
  checkByteLimits,
  checkStreamSeq,
  compareUtf8,
  createMatchesExisting,
  decideProducer,
  isExpired,
  isStorageError,
  normalizeContentType,
  PRODUCER_STATE_TTL_MS,
  type ProducerState,
  planCommit,
  resolveForkConfig,
  resolveStreamOptions,
  type StorageErrorCode,
  type StreamConfig,
  type StreamStateView,
  streamConfigsEqual,
  takeWithinBudget,
  ZERO_OFFSET,
} from '../src/index.js';

function codeOf(fn: () => unknown): StorageErrorCode | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (isStorageError(err)) return err.code;
    throw err;
  }
}

const text: StreamConfig = {
  contentType: 'text/plain',
  ttlSeconds: null,
  expiresAt: null,
  createdClosed: false,
};

describe('compareUtf8', () => {
  it('agrees with a byte-wise comparison of the UTF-8 encodings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (a, b) => {
        expect(Math.sign(compareUtf8(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));
      }),
      { numRuns: 2000 },
    );
  });

  it('sorts astral characters after U+E000–U+FFFF, unlike UTF-16 order', () => {
    expect(compareUtf8('\u{1F600}', '\uFFFD')).toBeGreaterThan(0);
    expect('\u{1F600}' < '\uFFFD').toBe(true);
  });

  it('orders Stream-Seq values as the protocol examples say', () => {
    expect(codeOf(() => checkStreamSeq('2', '10'))).toBe('SEQ_CONFLICT');
    expect(codeOf(() => checkStreamSeq('09', '10'))).toBeUndefined();
    expect(codeOf(() => checkStreamSeq('a', 'a'))).toBe('SEQ_CONFLICT');
    expect(codeOf(() => checkStreamSeq(null, ''))).toBeUndefined();
  });
});

describe('names and content types', () => {
  it('accepts well-formed names and refuses empty names and lone surrogates', () => {
    expect(() => assertStreamName('a/b/ü/\u{1F600}')).not.toThrow();
    expect(codeOf(() => assertStreamName(''))).toBe('INVALID_STREAM_NAME');
    expect(codeOf(() => assertStreamName('a\uD800'))).toBe('INVALID_STREAM_NAME');
    expect(codeOf(() => assertStreamName('\uDC00a'))).toBe('INVALID_STREAM_NAME');
    expect(codeOf(() => assertStreamName('\uD800\uD800'))).toBe('INVALID_STREAM_NAME');
  });

  it('normalises content types', () => {
    expect(normalizeContentType(' Application/JSON ; charset=utf-8')).toBe('application/json');
    expect(normalizeContentType('text/plain')).toBe('text/plain');
    expect(codeOf(() => normalizeContentType(' ; x'))).toBe('INVALID_CONTENT_TYPE');
    expect(codeOf(() => normalizeContentType('text/\nplain'))).toBe('INVALID_CONTENT_TYPE');
  });
});

describe('expiry', () => {
  it('resolves a TTL into a deadline and checks its range', () => {
    const c = resolveStreamOptions({ contentType: 'text/plain', ttlSeconds: 60 }, 1_000);
    expect(c).toEqual({ contentType: 'text/plain', ttlSeconds: 60, expiresAt: 61_000, createdClosed: false });
    expect(isExpired(c, 60_999)).toBe(false);
    expect(isExpired(c, 61_000)).toBe(true);
    expect(codeOf(() => resolveStreamOptions({ contentType: 'a/b', ttlSeconds: -1 }, 0))).toBe('INVALID_TTL');
    expect(codeOf(() => resolveStreamOptions({ contentType: 'a/b', ttlSeconds: 1.5 }, 0))).toBe(
      'INVALID_TTL',
    );
    expect(
      codeOf(() => resolveStreamOptions({ contentType: 'a/b', ttlSeconds: Number.MAX_SAFE_INTEGER }, 0)),
    ).toBe('INVALID_TTL');
    expect(codeOf(() => resolveStreamOptions({ contentType: 'a/b', ttlSeconds: 1, expiresAt: 5 }, 0))).toBe(
      'CONFLICTING_EXPIRY',
    );
  });

  it('ignores TTL-derived deadlines in config equality, but not absolute ones', () => {
    const a = resolveStreamOptions({ contentType: 'text/plain', ttlSeconds: 60 }, 0);
    const b = resolveStreamOptions({ contentType: 'TEXT/plain', ttlSeconds: 60 }, 5_000);
    expect(streamConfigsEqual(a, b)).toBe(true);
    const c = resolveStreamOptions({ contentType: 'text/plain', expiresAt: 10 }, 0);
    const d = resolveStreamOptions({ contentType: 'text/plain', expiresAt: 11 }, 0);
    expect(streamConfigsEqual(c, d)).toBe(false);
    expect(streamConfigsEqual(text, { ...text, createdClosed: true })).toBe(true);
    expect(createMatchesExisting({ config: text, closed: true }, { ...text, createdClosed: true })).toBe(
      true,
    );
    expect(createMatchesExisting({ config: text, closed: true }, text)).toBe(false);
    expect(createMatchesExisting({ config: { ...text, createdClosed: true }, closed: true }, text)).toBe(
      false,
    );
  });

  it('gives forks expiry by priority: own TTL, own deadline, source TTL, source deadline', () => {
    const ttlSource: StreamConfig = { ...text, ttlSeconds: 10, expiresAt: 10_000 };
    const atSource: StreamConfig = { ...text, expiresAt: 99 };
    const now = 1_000;
    expect(resolveForkConfig({ source: 's', ttlSeconds: 5 }, atSource, now)).toMatchObject({
      ttlSeconds: 5,
      expiresAt: 6_000,
    });
    expect(resolveForkConfig({ source: 's', expiresAt: 7 }, ttlSource, now)).toMatchObject({
      ttlSeconds: null,
      expiresAt: 7,
    });
    expect(resolveForkConfig({ source: 's' }, ttlSource, now)).toMatchObject({
      ttlSeconds: 10,
      expiresAt: 11_000,
    });
    expect(resolveForkConfig({ source: 's' }, atSource, now)).toMatchObject({
      ttlSeconds: null,
      expiresAt: 99,
    });
    expect(codeOf(() => resolveForkConfig({ source: 's', contentType: 'a/b' }, text, now))).toBe(
      'CONTENT_TYPE_MISMATCH',
    );
  });
});

describe('the producer state machine', () => {
  it('follows the worked sequence of the seed crate', () => {
    let state: ProducerState | undefined;
    const step = (epoch: number, seq: number) => {
      const d = decideProducer(state, { id: 'p1', epoch, seq }, false, ZERO_OFFSET, 0);
      if (d.kind === 'accept') state = { epoch, lastSeq: seq, updatedAt: 0 };
      return d.kind;
    };
    expect(step(0, 0)).toBe('accept');
    expect(step(0, 0)).toBe('duplicate');
    expect(codeOf(() => step(0, 3))).toBe('PRODUCER_SEQ_GAP');
    expect(step(2, 0)).toBe('accept');
    expect(codeOf(() => step(1, 0))).toBe('PRODUCER_EPOCH_FENCED');
    expect(codeOf(() => step(3, 2))).toBe('PRODUCER_INVALID_EPOCH_SEQ');
  });

  it('answers duplicates with the stored values, even on a closed stream', () => {
    const state = { epoch: 1, lastSeq: 4, updatedAt: 0 };
    expect(decideProducer(state, { id: 'p', epoch: 1, seq: 2 }, true, ZERO_OFFSET, 0)).toEqual({
      kind: 'duplicate',
      epoch: 1,
      seq: 4,
    });
    expect(codeOf(() => decideProducer(state, { id: 'p', epoch: 1, seq: 5 }, true, ZERO_OFFSET, 0))).toBe(
      'STREAM_CLOSED',
    );
    expect(
      codeOf(() => decideProducer(undefined, { id: 'p', epoch: 7, seq: 1 }, false, ZERO_OFFSET, 0)),
    ).toBe('PRODUCER_SEQ_GAP');
  });

  it('forgets producers idle for longer than seven days', () => {
    const state = { epoch: 3, lastSeq: 9, updatedAt: 0 };
    const later = PRODUCER_STATE_TTL_MS + 1;
    expect(decideProducer(state, { id: 'p', epoch: 0, seq: 0 }, false, ZERO_OFFSET, later).kind).toBe(
      'accept',
    );
    expect(
      codeOf(() => decideProducer(state, { id: 'p', epoch: 0, seq: 0 }, false, ZERO_OFFSET, later - 1)),
    ).toBe('PRODUCER_EPOCH_FENCED');
  });
});

describe('planCommit', () => {
  const view = (over: Partial<StreamStateView> = {}): StreamStateView => ({
    name: 's',
    config: text,
    closed: false,
    tombstone: false,
    lastSeq: null,
    nextOffset: ZERO_OFFSET,
    ...over,
  });
  const data = [new Uint8Array([1])];

  it('checks in the contract order: gone, expired, closed, content type, Stream-Seq', () => {
    const all = { tombstone: true, config: { ...text, expiresAt: 0 }, closed: true, lastSeq: 'z' };
    const req = { messages: data, contentType: 'a/b', seq: 'a' };
    expect(codeOf(() => planCommit(view(all), req, 1))).toBe('GONE');
    expect(codeOf(() => planCommit(view({ ...all, tombstone: false }), req, 1))).toBe('EXPIRED');
    expect(codeOf(() => planCommit(view({ closed: true, lastSeq: 'z' }), req, 1))).toBe('STREAM_CLOSED');
    expect(codeOf(() => planCommit(view({ lastSeq: 'z' }), req, 1))).toBe('CONTENT_TYPE_MISMATCH');
    expect(codeOf(() => planCommit(view({ lastSeq: 'z' }), { ...req, contentType: 'Text/Plain' }, 1))).toBe(
      'SEQ_CONFLICT',
    );
  });

  it('lets close-only commits through a closed stream and a foreign content type, but not a seq regression', () => {
    const closed = view({ closed: true, lastSeq: 'b' });
    expect(planCommit(closed, { messages: [], close: true }, 5)).toMatchObject({
      kind: 'commit',
      closed: true,
      updatedAt: 5,
    });
    expect(codeOf(() => planCommit(closed, { messages: [], close: true, seq: 'a' }, 5))).toBe('SEQ_CONFLICT');
    expect(codeOf(() => planCommit(view(), { messages: [] }, 5))).toBe('EMPTY_APPEND');
  });

  it('renews a sliding TTL and records the producer', () => {
    const v = view({ config: { ...text, ttlSeconds: 10, expiresAt: 10_000 } });
    const plan = planCommit(
      v,
      { messages: data, contentType: 'text/plain', producer: { id: 'p', epoch: 0, seq: 0 } },
      2_000,
    );
    expect(plan).toEqual({
      kind: 'commit',
      closed: false,
      lastSeq: null,
      expiresAt: 12_000,
      updatedAt: 2_000,
      producer: { id: 'p', state: { epoch: 0, lastSeq: 0, updatedAt: 2_000 } },
    });
  });

  it('checks the content type before the producer rules, and producers before Stream-Seq', () => {
    const producers = new Map([['p', { epoch: 0, lastSeq: 0, updatedAt: 0 }]]);
    const v = view({ closed: true, lastSeq: 'z', producers });
    const dup = {
      messages: data,
      contentType: 'text/plain',
      seq: 'a',
      producer: { id: 'p', epoch: 0, seq: 0 },
    };
    expect(planCommit(v, dup, 1)).toEqual({ kind: 'duplicate', epoch: 0, seq: 0 });
    expect(codeOf(() => planCommit(v, { ...dup, contentType: 'a/b' }, 1))).toBe('CONTENT_TYPE_MISMATCH');
    expect(codeOf(() => planCommit(v, { ...dup, producer: { id: 'p', epoch: 0, seq: -1 } }, 1))).toBe(
      'INVALID_PRODUCER',
    );
  });
});

describe('byte limits and budgets', () => {
  it('checks the storage-wide limit before the per-stream one', () => {
    const limits = { maxTotalBytes: 100, maxStreamBytes: 50 };
    expect(codeOf(() => checkByteLimits(limits, 50, 50, 10))).toBe('STREAM_LIMIT_EXCEEDED');
    expect(codeOf(() => checkByteLimits(limits, 90, 50, 20))).toBe('STORAGE_LIMIT_EXCEEDED');
    expect(codeOf(() => checkByteLimits(limits, 90, 40, 10))).toBeUndefined();
  });

  it('takes at least one message and never exceeds the budget otherwise', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(100), { maxLength: 30 }), fc.nat(300), (sizes, budget) => {
        const n = takeWithinBudget(sizes, 0, sizes.length, budget);
        if (sizes.length > 0) expect(n).toBeGreaterThanOrEqual(1);
        const taken = sizes.slice(0, n).reduce((a, b) => a + b, 0);
        if (n > 1) expect(taken).toBeLessThanOrEqual(budget);
        if (n < sizes.length) expect(taken + sizes[n]!).toBeGreaterThan(budget);
      }),
    );
  });
});
