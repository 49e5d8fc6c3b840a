import {
  hasCapability,
  isStorageError,
  planAck,
  planClaim,
  planCreateSubscription,
  planWake,
  type Storage,
  type SubscriptionStore,
  supportsSubscriptions,
} from '@streamkeep/storage';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { ensure, expectCode } from '../compare.js';
import { openSession, probeCapabilities, type StorageHarness, withSession } from '../harness.js';
import { type ConformanceOptions, resolveOptions } from '../options.js';
import { assertOverSessions, type PropertyCheck } from '../properties/common.js';
import { attempt, type SubOp, SubscriptionRun, storeOf, subOpsArb, tailAt } from './ops.js';

const METHODS = ['getSubscription', 'mutateSubscription', 'deleteSubscription', 'listSubscriptions'] as const;

function ensureImplemented(storage: Storage): asserts storage is Storage & SubscriptionStore {
  for (const m of METHODS) {
    ensure(
      typeof (storage as unknown as Record<string, unknown>)[m] === 'function',
      `capabilities.subscriptions is on but ${m} is not a method`,
    );
  }
}

async function runOps(harness: StorageHarness, options: ConformanceOptions | undefined, reopen: boolean) {
  const resolved = resolveOptions(options);
  const arb = subOpsArb(reopen, Math.max(4, resolved.maxCommands >> 1));
  await assertOverSessions(harness, options, arb, async (session, ops: SubOp[]) => {
    ensureImplemented(session.storage);
    const run = new SubscriptionRun(session);
    for (const [i, op] of ops.entries()) await run.step(op, i);
    await run.checkAll('at the end');
  });
}

/**
 * Random sequences of creates, re-confirmations, membership changes, wakes, claims, acks, releases and clock moves
 * (the kit's `ManualClock`, so leases expire without sleeping) agree with the kit's own model of the rules, outcome by
 * outcome and record by record.
 */
export function checkSubscriptionModel(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  return runOps(harness, options, false);
}

/** The same, with `reopen()` between operations: every record survives a restart exactly. */
export function checkSubscriptionDurability(
  harness: StorageHarness,
  options?: ConformanceOptions,
): Promise<void> {
  return runOps(harness, options, true);
}

const PULL = { type: 'pull-wake', streams: ['a', 'b'], wakeStream: 'wake', leaseTtlMs: 1000 } as const;

/**
 * Concurrency: interleaved claims by different workers — exactly one wins, every other is `ALREADY_CLAIMED` naming
 * the winner; interleaved wakes — exactly one raises a wake; interleaved acks of the holder — the acked offset ends
 * at the greatest one (never moved back by a slower, older ack); and the version counts every write.
 */
export function checkSubscriptionRaces(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  const resolved = resolveOptions(options);
  const arb = fc.record({
    workers: fc.integer({ min: 2, max: 4 }),
    acks: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 2, maxLength: 6 }),
  });
  const runs = Math.max(10, Math.ceil(resolved.numRuns / 10));
  return assertOverSessions(harness, { ...options, numRuns: runs }, arb, async (session, v) => {
    ensureImplemented(session.storage);
    const s = storeOf(session);
    const tails = [
      { path: 'a', offset: tailAt(10) },
      { path: 'b', offset: tailAt(10) },
    ];
    await s.mutateSubscription('r', planCreateSubscription('r', PULL, []));

    const wakes = await Promise.all(
      Array.from({ length: v.workers }, (_, i) =>
        s.mutateSubscription('r', planWake({ wakeId: `wake-${i}`, tails })),
      ),
    );
    ensure(
      wakes.filter((w) => w.woken).length === 1,
      `${wakes.filter((w) => w.woken).length} of ${v.workers} concurrent wakes fired`,
    );

    const claims = await Promise.all(
      Array.from({ length: v.workers }, (_, i) =>
        attempt(() => s.mutateSubscription('r', planClaim('r', { worker: `w${i}`, wakeId: `c${i}`, tails }))),
      ),
    );
    const won = claims.flatMap((c, i) => (c.ok ? [`w${i}`] : []));
    ensure(won.length === 1, `${won.length} of ${v.workers} concurrent claims won: ${won.join(', ')}`);
    for (const c of claims) {
      if (c.ok) continue;
      ensure(
        c.code === 'ALREADY_CLAIMED' && c.details?.currentHolder === won[0] && c.details?.generation === 1,
        `a losing claim answered ${c.code} ${JSON.stringify(c.details)}, not ALREADY_CLAIMED by ${won[0]} at 1`,
      );
    }

    const before = (await s.getSubscription('r'))!;
    await Promise.all(
      v.acks.map((n) =>
        s.mutateSubscription('r', planAck('r', { generation: 1, acks: [{ path: 'a', offset: tailAt(n) }] })),
      ),
    );
    const after = (await s.getSubscription('r'))!;
    const best = tailAt(Math.max(...v.acks));
    const acked = after.members.find((m) => m.path === 'a')?.ackedOffset;
    ensure(acked === best, `after concurrent acks the offset is ${acked}, expected the greatest ${best}`);
    ensure(
      after.version === before.version + v.acks.length,
      `${v.acks.length} acks moved the version from ${before.version} to ${after.version}`,
    );
  });
}

/**
 * Arguments before state, and `STORAGE_CLOSED` after `close()`: a malformed id or member filter is
 * `INVALID_SUBSCRIPTION` (whether or not a record exists), a plan that is not a function or options of the wrong
 * type a `TypeError`, a bad `limit` a `RangeError`; a refused call changes nothing; after `close()` every
 * subscription method rejects `STORAGE_CLOSED`.
 */
export async function checkSubscriptionArguments(harness: StorageHarness): Promise<void> {
  await withSession(harness, {}, async (session) => {
    ensureImplemented(session.storage);
    const s = storeOf(session);
    await s.mutateSubscription('r', planCreateSubscription('r', PULL, []));
    const before = await s.getSubscription('r');
    for (const id of ['', '\ud800', 'x'.repeat(1025)]) {
      for (const [label, call] of [
        ['getSubscription', () => s.getSubscription(id)],
        ['deleteSubscription', () => s.deleteSubscription(id)],
        ['mutateSubscription', () => s.mutateSubscription(id, () => ({ result: 0 }))],
      ] as const) {
        await expectCode(`${label}(${JSON.stringify(id.slice(0, 8))})`, 'INVALID_SUBSCRIPTION', call);
      }
    }
    await expectCode('listSubscriptions({ member: "" })', 'INVALID_SUBSCRIPTION', () =>
      s.listSubscriptions({ member: '' }),
    );
    const thrown = async (label: string, kind: typeof TypeError, call: () => Promise<unknown>) => {
      const error = await call().then(
        () => undefined,
        (err: unknown) => err,
      );
      ensure(
        error instanceof kind && !isStorageError(error),
        () => `${label}: expected a plain ${kind.name}, got ${String(error)}`,
      );
    };
    await thrown('mutateSubscription with a plan that is not a function', TypeError, () =>
      s.mutateSubscription('r', 'plan' as never),
    );
    await thrown('listSubscriptions(null)', TypeError, () => s.listSubscriptions(null as never));
    await thrown('listSubscriptions({ limit: -1 })', RangeError, () => s.listSubscriptions({ limit: -1 }));
    await thrown('listSubscriptions({ limit: 1.5 })', RangeError, () => s.listSubscriptions({ limit: 1.5 }));
    const after = await s.getSubscription('r');
    ensure(
      JSON.stringify(after) === JSON.stringify(before),
      'a refused subscription call changed the stored record',
    );
    await s.close();
    for (const [label, call] of [
      ['getSubscription', () => s.getSubscription('r')],
      ['mutateSubscription', () => s.mutateSubscription('r', () => ({ result: 0 }))],
      ['deleteSubscription', () => s.deleteSubscription('r')],
      ['listSubscriptions', () => s.listSubscriptions()],
    ] as const) {
      await expectCode(`${label} after close()`, 'STORAGE_CLOSED', call);
    }
  });
}

/**
 * With the capability off, the backend is not a subscription store: `supportsSubscriptions` is false, and any
 * subscription method it has anyway rejects `NOT_SUPPORTED` (and so changes nothing).
 */
export async function checkSubscriptionsRefused(storage: Storage): Promise<void> {
  ensure(!supportsSubscriptions(storage), 'subscriptions is off, yet supportsSubscriptions() is true');
  const s = storage as Partial<SubscriptionStore>;
  const calls: [string, (() => Promise<unknown>) | undefined][] = [
    ['getSubscription', s.getSubscription && (() => s.getSubscription!('s'))],
    [
      'mutateSubscription',
      s.mutateSubscription && (() => s.mutateSubscription!('s', planCreateSubscription('s', PULL, []))),
    ],
    ['deleteSubscription', s.deleteSubscription && (() => s.deleteSubscription!('s'))],
    ['listSubscriptions', s.listSubscriptions && (() => s.listSubscriptions!())],
  ];
  for (const [label, call] of calls) {
    if (call === undefined) continue;
    const outcome = await attempt(call);
    ensure(
      !outcome.ok && outcome.code === 'NOT_SUPPORTED',
      () =>
        `${label} without the subscriptions capability: expected NOT_SUPPORTED, got ${JSON.stringify(outcome)}`,
    );
  }
}

/** The subscription checks, each gated on the capability (and durability on `durable` + `reopen`). */
export const SUBSCRIPTIONS: readonly PropertyCheck[] = [
  {
    title:
      'agrees with the subscription model (create, re-confirm, conflict, members, wakes, claims, acks, leases)',
    skip: (caps) => (hasCapability(caps, 'subscriptions') ? undefined : 'no subscriptions'),
    run: checkSubscriptionModel,
  },
  {
    title:
      'interleaved claims: exactly one wins; interleaved wakes fire once; concurrent acks never move back',
    skip: (caps) => (hasCapability(caps, 'subscriptions') ? undefined : 'no subscriptions'),
    run: checkSubscriptionRaces,
  },
  {
    title: 'arguments are checked before state; every method rejects STORAGE_CLOSED after close()',
    skip: (caps) => (hasCapability(caps, 'subscriptions') ? undefined : 'no subscriptions'),
    run: checkSubscriptionArguments,
  },
  {
    title: 'every subscription record survives reopen()',
    skip: (caps, { canReopen }) =>
      !hasCapability(caps, 'subscriptions')
        ? 'no subscriptions'
        : !caps.durable
          ? 'not durable'
          : canReopen
            ? undefined
            : 'the harness provides no reopen()',
    run: checkSubscriptionDurability,
  },
];

async function canReopen(harness: StorageHarness): Promise<boolean> {
  const session = await openSession(harness);
  const can = session.canReopen;
  if (session.instance.teardown !== undefined) await session.instance.teardown();
  else await session.storage.close();
  return can;
}

/** Runs the subscription checks that apply; resolves at once when the capability is off. */
export async function checkSubscriptions(
  harness: StorageHarness,
  options?: ConformanceOptions,
): Promise<void> {
  const caps = await probeCapabilities(harness);
  const reopen = await canReopen(harness);
  for (const check of SUBSCRIPTIONS) {
    if (check.skip?.(caps, { canReopen: reopen }) === undefined) await check.run(harness, options);
  }
}

/** Registers the subscription checks; each is skipped, with its reason, where it does not apply. */
export function describeSubscriptions(
  name: string,
  harness: StorageHarness,
  options: ConformanceOptions = {},
): void {
  const { timeout } = resolveOptions(options);
  describe(`${name}: subscriptions`, async () => {
    const caps = await probeCapabilities(harness);
    const reopen = await canReopen(harness);
    for (const check of SUBSCRIPTIONS) {
      const reason = check.skip?.(caps, { canReopen: reopen });
      it.skipIf(reason !== undefined)(
        reason === undefined ? check.title : `${check.title} (${reason})`,
        () => check.run(harness, options),
        timeout,
      );
    }
  });
}
