import { isDeepStrictEqual } from 'node:util';
import {
  formatOffset,
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
  type Storage,
  type SubscriptionInput,
  type SubscriptionStore,
  type SubscriptionTail,
  ZERO_OFFSET,
} from '@streamkeep/storage';
import fc from 'fast-check';
import { ConformanceError } from '../compare.js';
import type { Session } from '../harness.js';
import { type SubOutcome, SubscriptionModel } from './model.js';

// Random operation sequences over a few subscription ids and a small synthetic world of stream tails. Tails are
// inputs the server would read from streams; subscription planners see no streams, so the kit needs none either.

/** The stream names of the synthetic world (each with a tail that only grows). */
export const WORLD_PATHS = ['chat/a', 'chat/a/x', 'chat/b', 'log-1', 'logs', 'x'] as const;
export const SUBSCRIPTION_IDS = ['s1', 's2'] as const;

const URL = 'https://hooks.example.invalid/h';
/** Create requests: valid ones (some equal after normalisation, some conflicting) and invalid ones. */
export const SUBSCRIPTION_INPUTS: readonly SubscriptionInput[] = [
  { type: 'pull-wake', pattern: 'chat/*', streams: ['x'], wakeStream: 'wake', leaseTtlMs: 1000 },
  {
    type: 'pull-wake',
    pattern: 'chat/*',
    streams: ['x'],
    wakeStream: 'wake',
    leaseTtlMs: 1000,
    description: 'b',
  },
  { type: 'webhook', pattern: 'chat/**', webhookUrl: URL, leaseTtlMs: 2000 },
  { type: 'pull-wake', streams: ['logs', 'log-1', 'logs'], wakeStream: 'wake', leaseTtlMs: 1000 },
  { type: 'pull-wake', pattern: '**', wakeStream: 'wake', leaseTtlMs: 5000 },
  { type: 'pull-wake', pattern: 'log-*', wakeStream: 'wake' },
  { type: 'pull-wake', streams: ['x', 'x'], pattern: 'chat/*', wakeStream: 'wake', leaseTtlMs: 1000 },
  { type: 'pull-wake', pattern: 'chat/*', wakeStream: 'wake', leaseTtlMs: 999 },
  { type: 'webhook', pattern: 'chat/*' } as SubscriptionInput,
  { type: 'pull-wake', pattern: 'chat/**x', wakeStream: 'wake' },
  { type: 'webhook', pattern: 'x', webhookUrl: URL, wakeStream: 'wake' },
];

type Id = (typeof SUBSCRIPTION_IDS)[number];
type Path = (typeof WORLD_PATHS)[number];

export type SubOp =
  | { readonly kind: 'create'; readonly id: Id; readonly input: number }
  | { readonly kind: 'get'; readonly id: Id }
  | { readonly kind: 'delete'; readonly id: Id }
  | { readonly kind: 'add'; readonly id: Id; readonly paths: readonly Path[] }
  | { readonly kind: 'remove'; readonly id: Id; readonly path: Path }
  | { readonly kind: 'link'; readonly id: Id; readonly path: Path }
  | { readonly kind: 'unlink'; readonly id: Id; readonly path: Path }
  | { readonly kind: 'grow'; readonly path: Path; readonly by: number }
  | { readonly kind: 'wake'; readonly id: Id }
  | { readonly kind: 'claim'; readonly id: Id; readonly worker: 'A' | 'B' }
  | {
      readonly kind: 'ack';
      readonly id: Id;
      readonly gen: -1 | 0 | 1;
      readonly acks: readonly { readonly path: Path; readonly back: number }[];
      readonly wakeTails: boolean;
      readonly done: boolean;
    }
  | { readonly kind: 'release'; readonly id: Id; readonly gen: -1 | 0 | 1 }
  | { readonly kind: 'status'; readonly id: Id; readonly status: 'active' | 'failed' }
  | { readonly kind: 'advance'; readonly ms: number }
  | {
      readonly kind: 'list';
      readonly member: Path | undefined;
      readonly withPattern: boolean;
      readonly withExpiredLease: boolean;
      readonly after: Id | undefined;
      readonly limit: number | undefined;
    }
  | { readonly kind: 'reopen' };

const id = fc.constantFrom('s1' as const, 's1' as const, 's2' as const);
const path = fc.constantFrom(...WORLD_PATHS);
const gen = fc.constantFrom(-1 as const, 0 as const, 0 as const, 1 as const);

/** One random operation, weighted towards the lease cycle; `reopen` only when the session can reopen. */
export function subOpArb(reopen: boolean): fc.Arbitrary<SubOp> {
  const ops: [number, fc.Arbitrary<SubOp>][] = [
    [1, fc.record({ kind: fc.constant('create'), id, input: fc.nat(SUBSCRIPTION_INPUTS.length - 1) })],
    [1, fc.record({ kind: fc.constant('get'), id })],
    [1, fc.record({ kind: fc.constant('delete'), id })],
    [2, fc.record({ kind: fc.constant('add'), id, paths: fc.uniqueArray(path, { maxLength: 3 }) })],
    [2, fc.record({ kind: fc.constant('remove'), id, path })],
    [2, fc.record({ kind: fc.constant('link'), id, path })],
    [1, fc.record({ kind: fc.constant('unlink'), id, path })],
    [4, fc.record({ kind: fc.constant('grow'), path, by: fc.integer({ min: 1, max: 3 }) })],
    [3, fc.record({ kind: fc.constant('wake'), id })],
    [4, fc.record({ kind: fc.constant('claim'), id, worker: fc.constantFrom('A' as const, 'B' as const) })],
    [
      5,
      fc.record({
        kind: fc.constant('ack'),
        id,
        gen,
        acks: fc.array(fc.record({ path, back: fc.nat(3) }), { maxLength: 3 }),
        wakeTails: fc.boolean(),
        done: fc.boolean(),
      }),
    ],
    [2, fc.record({ kind: fc.constant('release'), id, gen })],
    [
      1,
      fc.record({
        kind: fc.constant('status'),
        id,
        status: fc.constantFrom('active' as const, 'failed' as const),
      }),
    ],
    [
      3,
      fc.record({ kind: fc.constant('advance'), ms: fc.constantFrom(1, 499, 999, 1000, 1001, 2500, 30_000) }),
    ],
    [
      1,
      fc.record({
        kind: fc.constant('list'),
        member: fc.option(path, { nil: undefined }),
        withPattern: fc.boolean(),
        withExpiredLease: fc.boolean(),
        after: fc.option(id, { nil: undefined }),
        limit: fc.option(fc.nat(3), { nil: undefined }),
      }),
    ],
  ];
  if (reopen) ops.push([2, fc.constant({ kind: 'reopen' as const })]);
  return fc.oneof(...ops.map(([weight, arbitrary]) => ({ arbitrary, weight })));
}

/** A sequence of operations that starts by creating one or two subscriptions (valid requests), so most steps act. */
export function subOpsArb(reopen: boolean, maxLength: number): fc.Arbitrary<SubOp[]> {
  const input = fc.constantFrom(0, 0, 2, 3, 4, 5);
  const first = fc.record({ kind: fc.constant('create' as const), id: fc.constant('s1' as const), input });
  const second = fc.option(
    fc.record({ kind: fc.constant('create' as const), id: fc.constant('s2' as const), input }),
    {
      nil: undefined,
    },
  );
  return fc
    .tuple(first, second, fc.array(subOpArb(reopen), { maxLength, size: 'medium' }))
    .map(([a, b, rest]) => (b === undefined ? [a, ...rest] : [a, b, ...rest]));
}

/** The tail at step `n` of a world stream. */
export const tailAt = (n: number): string => formatOffset(n, n * 7);

/** Runs an operation against the storage and turns the answer into an outcome (only `StorageError`s are refusals). */
export async function attempt(call: () => Promise<unknown>): Promise<SubOutcome> {
  try {
    return { ok: true, value: await call() };
  } catch (err) {
    if (!isStorageError(err)) throw err;
    return { ok: false, code: err.code, details: { ...err.details } };
  }
}

/** JSON-normalised, so that frozen objects, class instances and parsed rows compare by value alone. */
function plain(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

const DETAILS: Readonly<Record<string, readonly string[]>> = {
  ALREADY_CLAIMED: ['currentHolder', 'generation'],
  FENCED: ['generation'],
};

function describeOutcome(o: SubOutcome): string {
  if (o.ok) return JSON.stringify(o.value);
  const keys = DETAILS[o.code] ?? [];
  const details = Object.fromEntries(keys.map((k) => [k, o.details?.[k]]));
  return keys.length === 0 ? `rejects ${o.code}` : `rejects ${o.code} ${JSON.stringify(details)}`;
}

/** Same value (by JSON), or the same code with the same documented details. */
export function assertSameSubOutcome(label: string, expected: SubOutcome, actual: SubOutcome): void {
  const same = expected.ok
    ? actual.ok && isDeepStrictEqual(plain(actual.value), plain(expected.value))
    : !actual.ok && describeOutcome(actual) === describeOutcome(expected);
  if (!same) {
    throw new ConformanceError(
      `${label}\n  expected: ${describeOutcome(expected)}\n  actual:   ${describeOutcome(actual)}`,
    );
  }
}

/** A session's storage as a subscription store (the caller has checked the capability). */
export function storeOf(session: Session): Storage & SubscriptionStore {
  return session.storage as Storage & SubscriptionStore;
}

/** Drives one operation sequence against a session and the model, comparing every outcome. */
export class SubscriptionRun {
  readonly model = new SubscriptionModel();
  readonly tails = new Map<string, number>(WORLD_PATHS.map((p) => [p, 1]));
  #wakes = 0;

  constructor(private readonly session: Session) {}

  worldTails(paths: readonly string[] = WORLD_PATHS): SubscriptionTail[] {
    return paths.map((p) => ({ path: p, offset: tailAt(this.tails.get(p)!) }));
  }

  private generation(id: Id, relative: -1 | 0 | 1): number {
    return Math.max(0, (this.model.records.get(id)?.wake.generation ?? 0) + relative);
  }

  async step(op: SubOp, index: number): Promise<void> {
    const s = storeOf(this.session);
    const now = this.session.clock.now();
    const m = this.model;
    let expected: SubOutcome;
    let actual: SubOutcome;
    switch (op.kind) {
      case 'create': {
        const input = SUBSCRIPTION_INPUTS[op.input]!;
        const tails = this.worldTails();
        expected = m.create(op.id, input, tails, now);
        actual = await attempt(() =>
          s.mutateSubscription(op.id, planCreateSubscription(op.id, input, tails)),
        );
        break;
      }
      case 'get':
        expected = m.get(op.id);
        actual = await attempt(() => s.getSubscription(op.id));
        break;
      case 'delete':
        expected = m.delete(op.id);
        actual = await attempt(() => s.deleteSubscription(op.id));
        break;
      case 'add': {
        const tails = this.worldTails(op.paths);
        expected = m.addStreams(op.id, tails);
        actual = await attempt(() => s.mutateSubscription(op.id, planAddStreams(op.id, tails)));
        break;
      }
      case 'remove':
        expected = m.removeStream(op.id, op.path);
        actual = await attempt(() => s.mutateSubscription(op.id, planRemoveStream(op.id, op.path)));
        break;
      case 'link': {
        const tail = { path: op.path, offset: ZERO_OFFSET };
        expected = m.link(op.id, tail);
        actual = await attempt(() => s.mutateSubscription(op.id, planLinkStream(op.id, tail)));
        break;
      }
      case 'unlink':
        expected = m.unlink(op.id, op.path);
        actual = await attempt(() => s.mutateSubscription(op.id, planUnlinkStream(op.id, op.path)));
        break;
      case 'grow':
        this.tails.set(op.path, this.tails.get(op.path)! + op.by);
        return;
      case 'wake': {
        const wakeId = `w${++this.#wakes}`;
        const tails = this.worldTails();
        expected = m.wake(op.id, wakeId, tails, now);
        actual = await attempt(() => s.mutateSubscription(op.id, planWake({ wakeId, tails })));
        break;
      }
      case 'claim': {
        const wakeId = `w${++this.#wakes}`;
        const tails = this.worldTails();
        expected = m.claim(op.id, op.worker, wakeId, tails, now);
        actual = await attempt(() =>
          s.mutateSubscription(op.id, planClaim(op.id, { worker: op.worker, wakeId, tails })),
        );
        break;
      }
      case 'ack': {
        const generation = this.generation(op.id, op.gen);
        const acks = op.acks.map((a) => ({
          path: a.path,
          offset: tailAt(Math.max(0, this.tails.get(a.path)! - a.back)),
        }));
        expected = m.ack(op.id, generation, acks, op.wakeTails, op.done, now);
        const request = { generation, acks, ackWakeTails: op.wakeTails, done: op.done };
        actual = await attempt(() => s.mutateSubscription(op.id, planAck(op.id, request)));
        break;
      }
      case 'release': {
        const generation = this.generation(op.id, op.gen);
        expected = m.release(op.id, generation, now);
        actual = await attempt(() => s.mutateSubscription(op.id, planRelease(op.id, { generation })));
        break;
      }
      case 'status':
        expected = m.setStatus(op.id, op.status);
        actual = await attempt(() => s.mutateSubscription(op.id, planSetStatus(op.id, op.status)));
        break;
      case 'advance':
        this.session.clock.advance(op.ms);
        return;
      case 'list': {
        const options = {
          member: op.member,
          withPattern: op.withPattern,
          withExpiredLease: op.withExpiredLease,
          after: op.after,
          limit: op.limit,
        };
        expected = m.list(options, now);
        actual = await attempt(() => s.listSubscriptions(options));
        break;
      }
      case 'reopen':
        await this.session.reopen();
        return this.checkAll(`after reopen (step ${index})`);
    }
    assertSameSubOutcome(`step ${index}: ${JSON.stringify(op)} at t=${now}`, expected, actual);
    if (op.kind === 'delete' || op.kind === 'remove' || op.kind === 'unlink') {
      await this.checkAll(`after step ${index}`);
    }
  }

  /** Every record the model holds, and no other, is what the storage lists, in full and by member stream. */
  async checkAll(label: string): Promise<void> {
    const s = storeOf(this.session);
    assertSameSubOutcome(
      `${label}: listSubscriptions()`,
      this.model.list({}, this.session.clock.now()),
      await attempt(() => s.listSubscriptions()),
    );
    for (const member of WORLD_PATHS) {
      assertSameSubOutcome(
        `${label}: listSubscriptions({ member: ${JSON.stringify(member)} })`,
        this.model.list({ member }, this.session.clock.now()),
        await attempt(() => s.listSubscriptions({ member })),
      );
    }
  }
}
