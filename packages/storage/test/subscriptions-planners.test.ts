import { describe, expect, it } from 'vitest';
import {
  checkSubscriptionWrite,
  formatOffset,
  hasPendingWork,
  isStorageError,
  planAck,
  planAddStreams,
  planClaim,
  planCreateSubscription,
  planLinkStream,
  planRelease,
  planRemoveStream,
  planSetStatus,
  planUnlinkStream,
  planWake,
  type SubscriptionInput,
  type SubscriptionPlan,
  type SubscriptionRecord,
  subscriptionListingPage,
  validateListSubscriptions,
  validateMutateSubscription,
  ZERO_OFFSET,
} from '../src/index.js';
import { ALL_CAPABILITIES, outcomeOf } from './support.js';

// A tiny in-test store: apply a plan the way a backend does (checked write, the decision's result).
function apply<R>(record: SubscriptionRecord | undefined, plan: SubscriptionPlan<R>, now: number) {
  const decision = plan(record, now);
  const write = checkSubscriptionWrite(record?.id ?? 's', record, decision);
  return { record: write ?? record, result: decision.result, wrote: write !== undefined };
}

function refusal(fn: () => unknown): { code: string; details: unknown } | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (isStorageError(err)) return { code: err.code, details: err.details };
    throw err;
  }
}

const at = (n: number) => formatOffset(n, n * 10);
const PULL: SubscriptionInput = {
  type: 'pull-wake',
  pattern: 'chat/*',
  streams: ['x'],
  wakeStream: 'wake',
  leaseTtlMs: 1000,
};

function created(now = 0): SubscriptionRecord {
  const r = apply(
    undefined,
    planCreateSubscription('s', PULL, [
      { path: 'chat/a', offset: at(2) },
      { path: 'other', offset: at(5) },
    ]),
    now,
  );
  return r.record!;
}

describe('create and re-confirm', () => {
  it('links named streams and existing matches at their tails, nothing else', () => {
    const r = created(77);
    expect(r.version).toBe(1);
    expect(r.createdAt).toBe(77);
    expect(r.members).toEqual([
      { path: 'chat/a', explicit: false, glob: true, ackedOffset: at(2) },
      { path: 'x', explicit: true, glob: false, ackedOffset: ZERO_OFFSET },
    ]);
    expect(r.wake.generation).toBe(0);
  });

  it('an equal request writes nothing; a different one is SUBSCRIPTION_CONFLICT', () => {
    const r = created();
    const again = apply(
      r,
      planCreateSubscription('s', { ...PULL, streams: ['x', 'x'], leaseTtlMs: 1000 }, []),
      5,
    );
    expect(again).toMatchObject({ wrote: false, result: { created: false, record: r } });
    expect(
      refusal(() => apply(r, planCreateSubscription('s', { ...PULL, leaseTtlMs: 2000 }, []), 5))?.code,
    ).toBe('SUBSCRIPTION_CONFLICT');
  });

  it('arguments are refused before any state is read', () => {
    expect(outcomeOf(() => planCreateSubscription('', PULL, []))).toBe('INVALID_SUBSCRIPTION');
    expect(outcomeOf(() => planCreateSubscription('s', PULL, [{ path: 'a', offset: '-1' }]))).toBe(
      'INVALID_OFFSET',
    );
    expect(outcomeOf(() => planAck('s', { generation: -1 }))).toBe('INVALID_SUBSCRIPTION');
    expect(outcomeOf(() => planAck('s', { generation: 1, acks: [{ path: 'a', offset: 'now' }] }))).toBe(
      'INVALID_OFFSET',
    );
    expect(outcomeOf(() => planClaim('s', { worker: '', wakeId: 'w', tails: [] }))).toBe(
      'INVALID_SUBSCRIPTION',
    );
  });
});

describe('membership', () => {
  it('explicit add keeps an existing member’s offset; remove keeps a glob member as glob', () => {
    let r = created();
    r = apply(
      r,
      planAddStreams('s', [
        { path: 'chat/a', offset: at(9) },
        { path: 'y', offset: at(1) },
      ]),
      1,
    ).record!;
    expect(r.members.map((m) => [m.path, m.explicit, m.glob, m.ackedOffset])).toEqual([
      ['chat/a', true, true, at(2)],
      ['x', true, false, ZERO_OFFSET],
      ['y', true, false, at(1)],
    ]);
    r = apply(r, planRemoveStream('s', 'chat/a'), 2).record!;
    r = apply(r, planRemoveStream('s', 'y'), 2).record!;
    expect(r.members.map((m) => [m.path, m.explicit, m.glob])).toEqual([
      ['chat/a', false, true],
      ['x', true, false],
    ]);
    expect(apply(r, planRemoveStream('s', 'chat/a'), 3).wrote).toBe(false);
    expect(r.version).toBe(4);
    expect(refusal(() => apply(undefined, planAddStreams('s', []), 0))?.code).toBe('SUBSCRIPTION_NOT_FOUND');
  });

  it('links a new stream only when the pattern matches, and unlinks a deleted one', () => {
    let r = created();
    expect(apply(r, planLinkStream('s', { path: 'nope/a', offset: ZERO_OFFSET }), 1)).toMatchObject({
      wrote: false,
      result: false,
    });
    expect(apply(undefined, planLinkStream('s', { path: 'chat/b', offset: ZERO_OFFSET }), 1).result).toBe(
      false,
    );
    r = apply(r, planLinkStream('s', { path: 'chat/b', offset: ZERO_OFFSET }), 1).record!;
    expect(r.members.find((m) => m.path === 'chat/b')).toEqual({
      path: 'chat/b',
      explicit: false,
      glob: true,
      ackedOffset: ZERO_OFFSET,
    });
    r = apply(r, planUnlinkStream('s', 'chat/b'), 2).record!;
    expect(r.members.some((m) => m.path === 'chat/b')).toBe(false);
    expect(apply(r, planSetStatus('s', 'failed'), 3).record!.status).toBe('failed');
  });
});

describe('wakes, claims, acks, leases', () => {
  const tails = [{ path: 'chat/a', offset: at(4) }];

  it('a wake needs pending work and fires once while its lease is live', () => {
    const r = created();
    expect(
      apply(r, planWake({ wakeId: 'w1', tails: [{ path: 'chat/a', offset: at(2) }] }), 10).result,
    ).toMatchObject({
      woken: false,
      reason: 'idle',
    });
    const woken = apply(r, planWake({ wakeId: 'w1', tails }), 10);
    expect(woken.record!.wake).toEqual({
      generation: 1,
      wakeId: 'w1',
      holder: null,
      leaseExpiresAt: 1010,
      tails,
    });
    expect(apply(woken.record, planWake({ wakeId: 'w2', tails }), 1009).result).toMatchObject({
      woken: false,
      reason: 'live',
    });
    // the lease ended and nothing is pending any more: a wake ends the stale one instead of raising another
    const idleAgain = apply(
      woken.record,
      planWake({ wakeId: 'w3', tails: [{ path: 'chat/a', offset: at(2) }] }),
      2000,
    );
    expect(idleAgain.result).toMatchObject({ woken: false, reason: 'idle' });
    expect(idleAgain.record!.wake).toEqual({
      generation: 1,
      wakeId: null,
      holder: null,
      leaseExpiresAt: null,
      tails: [],
    });
    // the lease ended unanswered: the next wake replaces it
    expect(apply(woken.record, planWake({ wakeId: 'w2', tails }), 1010).record!.wake.generation).toBe(2);
  });

  it('claim: one holder per live lease; an expired lease is claimable at generation + 1', () => {
    const r = created();
    const a = apply(r, planClaim('s', { worker: 'A', wakeId: 'w1', tails }), 0).record!;
    expect(a.wake).toMatchObject({ generation: 1, holder: 'A', leaseExpiresAt: 1000 });
    const b = refusal(() => apply(a, planClaim('s', { worker: 'B', wakeId: 'w2', tails }), 999));
    expect(b).toEqual({ code: 'ALREADY_CLAIMED', details: { currentHolder: 'A', generation: 1 } });
    const later = apply(a, planClaim('s', { worker: 'B', wakeId: 'w2', tails }), 1000).record!;
    expect(later.wake).toMatchObject({ generation: 2, holder: 'B', wakeId: 'w2' });
    // A's ack is now fenced with the current generation
    expect(refusal(() => apply(later, planAck('s', { generation: 1, done: true }), 1001))).toEqual({
      code: 'FENCED',
      details: { generation: 2 },
    });
  });

  it('claiming a raised but unclaimed wake keeps its generation; no work is NO_PENDING_WORK', () => {
    const woken = apply(created(), planWake({ wakeId: 'w1', tails }), 0).record!;
    const claimed = apply(woken, planClaim('s', { worker: 'A', wakeId: 'ignored', tails: [] }), 500).record!;
    expect(claimed.wake).toMatchObject({ generation: 1, wakeId: 'w1', holder: 'A', leaseExpiresAt: 1500 });
    expect(
      refusal(() => apply(created(), planClaim('s', { worker: 'A', wakeId: 'w', tails: [] }), 0))?.code,
    ).toBe('NO_PENDING_WORK');
    const webhook = apply(
      undefined,
      planCreateSubscription('s', { type: 'webhook', pattern: '**', webhookUrl: 'https://h' }, []),
      0,
    ).record;
    expect(refusal(() => apply(webhook, planClaim('s', { worker: 'A', wakeId: 'w', tails }), 0))?.code).toBe(
      'INVALID_SUBSCRIPTION',
    );
  });

  it('acks move forward only, extend the lease, and done ends the wake', () => {
    let r = apply(created(), planClaim('s', { worker: 'A', wakeId: 'w1', tails }), 0).record!;
    r = apply(r, planAck('s', { generation: 1, acks: [{ path: 'chat/a', offset: at(3) }] }), 900).record!;
    expect(r.members[0]!.ackedOffset).toBe(at(3));
    expect(r.wake.leaseExpiresAt).toBe(1900);
    r = apply(
      r,
      planAck('s', {
        generation: 1,
        acks: [
          { path: 'chat/a', offset: at(1) },
          { path: 'gone', offset: at(1) },
        ],
      }),
      901,
    ).record!;
    expect(r.members[0]!.ackedOffset).toBe(at(3));
    expect(hasPendingWork(r, tails)).toBe(true);
    r = apply(r, planAck('s', { generation: 1, acks: [{ path: 'chat/a', offset: at(4) }], done: true }), 902)
      .record!;
    expect(r.wake).toEqual({ generation: 1, wakeId: null, holder: null, leaseExpiresAt: null, tails: [] });
    expect(hasPendingWork(r, tails)).toBe(false);
    expect(refusal(() => apply(r, planAck('s', { generation: 1 }), 903))?.code).toBe('FENCED');
    expect(refusal(() => apply(r, planRelease('s', { generation: 1 }), 903))?.code).toBe('FENCED');
  });

  it('ackWakeTails acks exactly the tails the wake was raised for, in the same step', () => {
    const woken = apply(created(), planWake({ wakeId: 'w1', tails }), 0).record!;
    const acked = apply(woken, planAck('s', { generation: 1, ackWakeTails: true, done: true }), 1).record!;
    expect(acked.members.find((m) => m.path === 'chat/a')!.ackedOffset).toBe(at(4));
    expect(acked.members.find((m) => m.path === 'x')!.ackedOffset).toBe(ZERO_OFFSET);
    expect(outcomeOf(() => planAck('s', { generation: 1, ackWakeTails: 1 as never }))).toBe(
      'INVALID_SUBSCRIPTION',
    );
  });

  it('an expired lease fences its holder even before anyone else claims', () => {
    const r = apply(created(), planClaim('s', { worker: 'A', wakeId: 'w1', tails }), 0).record!;
    expect(refusal(() => apply(r, planAck('s', { generation: 1 }), 1000))).toEqual({
      code: 'FENCED',
      details: { generation: 1 },
    });
    const released = apply(r, planRelease('s', { generation: 1 }), 999).record!;
    expect(released.wake.wakeId).toBe(null);
    expect(released.members).toEqual(r.members);
  });
});

describe('store helpers', () => {
  it('checkSubscriptionWrite refuses a write that skips a version or changes the id', () => {
    const r = created();
    expect(outcomeOf(() => checkSubscriptionWrite('s', r, { write: { ...r, version: 3 }, result: 0 }))).toBe(
      'INTERNAL',
    );
    expect(outcomeOf(() => checkSubscriptionWrite('t', r, { write: { ...r, version: 2 }, result: 0 }))).toBe(
      'INTERNAL',
    );
    expect(checkSubscriptionWrite('s', r, { result: 0 })).toBe(undefined);
  });

  it('listing pages by id and filters by member and pattern', () => {
    const a = created();
    const b = { ...created(), id: 'b', config: { ...a.config, pattern: null } };
    const c = {
      ...created(),
      id: 'c',
      members: [],
      wake: { generation: 1, wakeId: 'w', holder: null, leaseExpiresAt: 100, tails: [] },
    };
    const all = [c, b, a];
    const q = (o: Parameters<typeof validateListSubscriptions>[1], now = 0) =>
      subscriptionListingPage(
        all,
        validateListSubscriptions({ ...ALL_CAPABILITIES, subscriptions: true }, o),
        now,
      ).map((r) => r.id);
    expect(q(undefined)).toEqual(['b', 'c', 's']);
    expect(q({ after: 'b', limit: 1 })).toEqual(['c']);
    expect(q({ member: 'x' })).toEqual(['b', 's']);
    expect(q({ withPattern: true, member: 'x' })).toEqual(['s']);
    expect(q({ withExpiredLease: true }, 99)).toEqual([]);
    expect(q({ withExpiredLease: true }, 100)).toEqual(['c']);
    expect(outcomeOf(() => q({ limit: -1 }))).toBe('RangeError');
    expect(outcomeOf(() => q({ member: '' }))).toBe('INVALID_SUBSCRIPTION');
    expect(outcomeOf(() => validateListSubscriptions(ALL_CAPABILITIES, undefined))).toBe('NOT_SUPPORTED');
    expect(outcomeOf(() => validateMutateSubscription(ALL_CAPABILITIES, '', undefined as never))).toBe(
      'NOT_SUPPORTED',
    );
    expect(
      outcomeOf(() =>
        validateMutateSubscription({ ...ALL_CAPABILITIES, subscriptions: true }, 's', 1 as never),
      ),
    ).toBe('TypeError');
  });
});
