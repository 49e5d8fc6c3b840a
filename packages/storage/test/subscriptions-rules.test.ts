import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_LEASE_TTL_MS,
  hasCapability,
  matchesPattern,
  parseSubscriptionRecord,
  planCreateSubscription,
  type SubscriptionInput,
  subscriptionConfigsEqual,
  validatePattern,
  validateSubscriptionInput,
} from '../src/index.js';
import { ALL_CAPABILITIES, outcomeOf } from './support.js';

describe('matchesPattern: the glob rule', () => {
  // pattern, name, matches
  const TABLE: [string, string, boolean][] = [
    ['chat/*', 'chat/a', true],
    ['chat/*', 'chat', false],
    ['chat/*', 'chat/a/b', false],
    ['chat/*', 'chat/', true], // `*` is one segment, the empty one too
    ['chat/**', 'chat', true], // `**` is zero or more segments
    ['chat/**', 'chat/a', true],
    ['chat/**', 'chat/a/b/c', true],
    ['chat/**', 'chatter', false],
    ['**', 'a', true],
    ['**', 'a/b/c', true],
    ['**/x', 'x', true],
    ['**/x', 'a/b/x', true],
    ['**/x', 'a/b/y', false],
    ['a/**/z', 'a/z', true],
    ['a/**/z', 'a/b/c/z', true],
    ['a/**/z', 'a/b/c/y', false],
    ['a/**/**/z', 'a/z', true],
    ['*/b', 'a/b', true],
    ['*/b', 'b', false],
    ['*', 'a', true],
    ['*', 'a/b', false],
    ['log-*', 'log-1', true],
    ['log-*', 'log-', true],
    ['log-*', 'log', false],
    ['log-*', 'log-1/2', false],
    ['a*c*e', 'abcde', true],
    ['a*c*e', 'ace', true],
    ['a*c*e', 'acd', false],
    ['a*a', 'a', false],
    ['chat/room-1', 'chat/room-1', true],
    ['chat/room-1', 'Chat/room-1', false],
    ['a?b', 'a?b', true],
    ['a?b', 'axb', false],
    ['[ab]', 'a', false],
  ];
  for (const [pattern, name, expected] of TABLE) {
    it(`${JSON.stringify(pattern)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(name)}`, () => {
      expect(matchesPattern(pattern, name)).toBe(expected);
    });
  }

  it('a pattern without wildcards matches exactly itself', () => {
    const segment = fc.stringMatching(/^[a-z0-9.-]{0,4}$/);
    const name = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
    fc.assert(fc.property(name, name, (a, b) => matchesPattern(a, b) === (a === b)));
  });

  it('`**` matches every name, and `prefix/**` every name below the prefix', () => {
    const name = fc
      .array(fc.stringMatching(/^[a-z*]{0,3}$/), { minLength: 1, maxLength: 4 })
      .map((s) => s.join('/'));
    fc.assert(
      fc.property(name, name, (prefix, rest) => {
        expect(matchesPattern('**', rest)).toBe(true);
        const literal = prefix.replaceAll('*', 'x');
        expect(matchesPattern(`${literal}/**`, `${literal}/${rest}`)).toBe(true);
        expect(matchesPattern(`${literal}/**`, literal)).toBe(true);
      }),
    );
  });

  it('validatePattern refuses empty patterns and `**` inside a segment', () => {
    expect(outcomeOf(() => validatePattern(''))).toBe('INVALID_SUBSCRIPTION');
    expect(outcomeOf(() => validatePattern('a**'))).toBe('INVALID_SUBSCRIPTION');
    expect(outcomeOf(() => validatePattern('a/**b/c'))).toBe('INVALID_SUBSCRIPTION');
    expect(outcomeOf(() => validatePattern('\ud800'))).toBe('INVALID_SUBSCRIPTION');
    for (const ok of ['**', 'a/**', 'a/*/b', 'log-*', '*'])
      expect(outcomeOf(() => validatePattern(ok))).toBe(undefined);
  });
});

describe('validateSubscriptionInput', () => {
  const webhook: SubscriptionInput = {
    type: 'webhook',
    pattern: 'chat/*',
    webhookUrl: 'https://example.com/h',
  };
  const pull: SubscriptionInput = { type: 'pull-wake', streams: ['b', 'a', 'b'], wakeStream: 'wake/pool' };

  it('normalises: streams deduplicated and sorted, lease defaulted, absent fields null', () => {
    expect(validateSubscriptionInput(pull)).toEqual({
      type: 'pull-wake',
      pattern: null,
      streams: ['a', 'b'],
      webhookUrl: null,
      wakeStream: 'wake/pool',
      leaseTtlMs: DEFAULT_LEASE_TTL_MS,
      description: null,
    });
  });

  it('answers INVALID_SUBSCRIPTION (never a TypeError) for every malformed request', () => {
    const bad: unknown[] = [
      null,
      'webhook',
      [],
      { ...webhook, type: 'push' },
      { ...webhook, type: undefined },
      { ...webhook, pattern: 3 },
      { ...webhook, pattern: '' },
      { ...webhook, pattern: 'a**' },
      { type: 'webhook', webhookUrl: 'https://x' }, // neither pattern nor streams
      { type: 'webhook', streams: [], webhookUrl: 'https://x' },
      { ...webhook, streams: 'a' },
      { ...webhook, streams: [''] },
      { ...webhook, streams: [1] },
      { ...webhook, leaseTtlMs: 999 },
      { ...webhook, leaseTtlMs: 600_001 },
      { ...webhook, leaseTtlMs: 1500.5 },
      { ...webhook, leaseTtlMs: '30000' },
      { ...webhook, leaseTtlMs: Number.NaN },
      { type: 'webhook', pattern: 'a' }, // webhook without url
      { ...webhook, webhookUrl: '' },
      { ...webhook, wakeStream: 'w' }, // a field of the other type
      { type: 'pull-wake', pattern: 'a' }, // pull-wake without wake stream
      { ...pull, wakeStream: '' },
      { ...pull, webhookUrl: 'https://x' },
      { ...webhook, description: 7 },
      { ...webhook, description: 'x'.repeat(1025) },
    ];
    for (const input of bad) {
      expect(
        outcomeOf(() => validateSubscriptionInput(input as SubscriptionInput)),
        JSON.stringify(input),
      ).toBe('INVALID_SUBSCRIPTION');
    }
  });

  it('accepts the lease bounds exactly', () => {
    expect(validateSubscriptionInput({ ...webhook, leaseTtlMs: 1000 }).leaseTtlMs).toBe(1000);
    expect(validateSubscriptionInput({ ...webhook, leaseTtlMs: 600_000 }).leaseTtlMs).toBe(600_000);
  });

  it('equal configs are the same request; any field differing is another', () => {
    const a = validateSubscriptionInput(pull);
    expect(
      subscriptionConfigsEqual(
        a,
        validateSubscriptionInput({ ...pull, streams: ['a', 'b'], leaseTtlMs: 30_000 }),
      ),
    ).toBe(true);
    for (const change of [
      { streams: ['a'] },
      { pattern: 'x/*' },
      { wakeStream: 'other' },
      { leaseTtlMs: 30_001 },
      { description: '' },
    ]) {
      expect(
        subscriptionConfigsEqual(a, validateSubscriptionInput({ ...pull, ...change })),
        JSON.stringify(change),
      ).toBe(false);
    }
  });
});

describe('capability and codec', () => {
  it('an absent subscriptions flag reads as false', () => {
    expect(hasCapability(ALL_CAPABILITIES, 'subscriptions')).toBe(false);
    expect(hasCapability({ ...ALL_CAPABILITIES, subscriptions: true }, 'subscriptions')).toBe(true);
  });

  it('parseSubscriptionRecord round-trips a record through JSON and refuses damaged ones with CORRUPTED', () => {
    const { write } = planCreateSubscription(
      's',
      { type: 'pull-wake', pattern: 'a/*', streams: ['x'], wakeStream: 'w', description: 'd' },
      [{ path: 'a/1', offset: '0000000000000001_0000000000000002' }],
    )(undefined, 123);
    const json = JSON.parse(JSON.stringify(write));
    expect(parseSubscriptionRecord(json)).toEqual(write);
    const damaged = [
      { ...json, version: 0 },
      { ...json, status: 'paused' },
      { ...json, members: [...json.members].reverse() },
      { ...json, members: [{ ...json.members[0], ackedOffset: 'zz' }] },
      { ...json, members: [{ ...json.members[0], explicit: false, glob: false }] },
      { ...json, wake: { ...json.wake, wakeId: 'w1' } }, // a wake id without a lease end
      { ...json, config: { ...json.config, type: 'x' } },
      'nope',
    ];
    for (const d of damaged)
      expect(
        outcomeOf(() => parseSubscriptionRecord(d)),
        JSON.stringify(d),
      ).toBe('CORRUPTED');
  });
});
