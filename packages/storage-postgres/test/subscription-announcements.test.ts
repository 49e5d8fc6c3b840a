import {
  formatOffset,
  planAck,
  planAddStreams,
  planClaim,
  planCreateSubscription,
  type SubscriptionInput,
  type SubscriptionTail,
} from '@streamkeep/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresStorage } from '../src/index.js';
import { adminQuery, dropSchema, freshSchema, pgUrl } from './support.js';

// `onSubscriptionsChanged`: a NOTIFY on the schema's subscription channel, sent from the transaction of a creation,
// a new config or a deletion, heard by every other instance. PostgreSQL delivers notifications in commit order, so
// "the next announcement B hears is the deletion" proves that the changes committed in between were not announced.

const at = (n: number) => formatOffset(n, n * 3);
const PULL: SubscriptionInput = { type: 'pull-wake', streams: ['a'], wakeStream: 'wake', leaseTtlMs: 60_000 };
const tails = (n: number): SubscriptionTail[] => [{ path: 'a', offset: at(n) }];

const opened: PostgresStorage[] = [];
const schemas: string[] = [];

async function pair(applicationNameOfB?: string): Promise<[PostgresStorage, PostgresStorage]> {
  const schema = freshSchema('ann');
  schemas.push(schema);
  const options = { connectionString: pgUrl(), schema, pool: { max: 4 } };
  const a = await PostgresStorage.open(options);
  opened.push(a);
  const b = await PostgresStorage.open({
    ...options,
    pool: { max: 4, application_name: applicationNameOfB },
  });
  opened.push(b);
  return [a, b];
}

/** Polls `predicate` (never a fixed sleep); a generous deadline for a loaded machine. */
async function until(predicate: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  for (const schema of schemas.splice(0)) await dropSchema(schema);
});

describe('onSubscriptionsChanged across two PostgresStorage instances', () => {
  it('announces creations and deletions to the other instance only, once visible there', async () => {
    const [a, b] = await pair();
    const heardByA: (string | undefined)[] = [];
    const heardByB: (string | undefined)[] = [];
    const visibleOnB: boolean[] = [];
    a.onSubscriptionsChanged((id) => heardByA.push(id));
    b.onSubscriptionsChanged((id) => {
      heardByB.push(id);
      // The change is committed before its announcement arrives: a read through B sees it.
      if (id !== undefined) void b.getSubscription(id).then((r) => visibleOnB.push(r !== undefined));
    });

    const id = 'jobs/ünïcode id';
    await a.mutateSubscription(id, planCreateSubscription(id, PULL, tails(1)));
    await until(() => heardByB.length >= 1 && visibleOnB.length >= 1);
    expect(heardByB).toEqual([id]);
    expect(visibleOnB).toEqual([true]);

    // Re-confirming, claiming, acking and adding members leave the config as it is: not announced.
    await a.mutateSubscription(id, planCreateSubscription(id, PULL, tails(1)));
    const claimed = await a.mutateSubscription(
      id,
      planClaim(id, { worker: 'w', wakeId: 'k', tails: tails(2) }),
    );
    await a.mutateSubscription(id, planAck(id, { generation: claimed.wake.generation, done: true }));
    await a.mutateSubscription(id, planAddStreams(id, [{ path: 'b', offset: at(0) }]));
    expect(await a.deleteSubscription(id)).toBe(true);
    expect(await a.deleteSubscription(id)).toBe(false); // nothing removed: nothing announced
    await until(() => heardByB.length >= 2);
    expect(heardByB).toEqual([id, id]);
    expect(await b.getSubscription(id)).toBeUndefined();

    // A change through B reaches A; A never heard its own changes, which were committed (and queued) before.
    await b.mutateSubscription('from-b', planCreateSubscription('from-b', PULL, tails(1)));
    await until(() => heardByA.length >= 1);
    expect(heardByA).toEqual(['from-b']);
    expect(heardByB).toEqual([id, id]);
  });

  it('a removed listener hears nothing more; a listener that throws does not stop the others', async () => {
    const [a, b] = await pair();
    const removed: (string | undefined)[] = [];
    const kept: (string | undefined)[] = [];
    const stop = b.onSubscriptionsChanged((id) => removed.push(id));
    b.onSubscriptionsChanged(() => {
      throw new Error('listener failure (expected by the test)');
    });
    b.onSubscriptionsChanged((id) => kept.push(id));
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      await a.mutateSubscription('one', planCreateSubscription('one', PULL, tails(1)));
      await until(() => kept.length >= 1);
      stop();
      stop(); // idempotent
      await a.mutateSubscription('two', planCreateSubscription('two', PULL, tails(1)));
      await until(() => kept.length >= 2);
      expect(kept).toEqual(['one', 'two']);
      expect(removed).toEqual(['one']);
      await until(() => warnings.some((m) => m.includes('listener failure')));
    } finally {
      process.off('warning', onWarning);
    }
    expect(() => b.onSubscriptionsChanged('nope' as never)).toThrow(TypeError);
  });

  it('after its LISTEN connection is lost and back, an instance is told that anything may have changed', async () => {
    const app = `sk_ann_${Math.random().toString(36).slice(2)}`;
    const [a, b] = await pair(app);
    const heard: (string | undefined)[] = [];
    b.onSubscriptionsChanged((id) => heard.push(id));
    await adminQuery('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [
      app,
    ]);
    await until(() => heard.includes(undefined));
    // Announcements reach it again once it listens again.
    await a.mutateSubscription('after', planCreateSubscription('after', PULL, tails(1)));
    await until(() => heard.includes('after'));
  });
});
