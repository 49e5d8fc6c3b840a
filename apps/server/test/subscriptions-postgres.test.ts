import { planCreateSubscription, ZERO_OFFSET } from '@streamkeep/storage';
import { PostgresStorage } from '@streamkeep/storage-postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freshSchema, startCluster, type TestCluster } from './postgres-cluster.js';
import { json, startApp, startReceiver, until } from './subscriptions-helpers.js';

/**
 * Two server instances over one real PostgreSQL schema (issue #13): each app has its own `PostgresStorage` (pool and
 * LISTEN connection), as two processes behind a load balancer would. The periodic refresh of each instance's cache is
 * set to ten minutes, so that only the store's announcements (`onSubscriptionsChanged`: a NOTIFY from the change's
 * transaction) can tell an instance of a subscription created through the other one within a test. Waiting for an
 * announcement polls a condition, never sleeps a fixed time; receivers listen on loopback.
 */

let cluster: TestCluster | undefined;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  cluster = await startCluster();
}, 300_000);

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

type Instance = Awaited<ReturnType<typeof startApp>> & {
  /** Ids of subscriptions this instance's store announced (changes made through the other instance). */
  readonly heard: (string | undefined)[];
  readonly schema: string;
};

/** Instances A and B over one fresh schema, both started (their subscription services listening). */
async function twoInstances(): Promise<[Instance, Instance]> {
  const schema = freshSchema('subs');
  const start = async (): Promise<Instance> => {
    const storage = await PostgresStorage.open({ connectionString: cluster!.url, schema, pool: { max: 4 } });
    const app = await startApp({
      storage,
      subscriptions: { refreshIntervalMs: 600_000, retryBaseMs: 20, retryMaxMs: 200 },
    });
    cleanups.push(app.close);
    // A `__ds` request waits for the service to start, so its listener is registered before the test's below (the
    // store calls listeners in registration order: when the test hears an id, the service has heard it).
    expect((await fetch(`${app.base}/__ds/jwks.json`)).status).toBe(200);
    const heard: (string | undefined)[] = [];
    storage.onSubscriptionsChanged((id) => heard.push(id));
    return { ...app, heard, schema };
  };
  const a = await start();
  return [a, await start()];
}

async function put(url: string, body?: string, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body }),
  });
  await res.arrayBuffer();
  return res;
}

async function post(url: string, body: string): Promise<Response> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  await res.arrayBuffer();
  expect(res.status).toBeLessThan(300);
  return res;
}

/** The wake events of a pull-wake subscription's wake stream. */
async function wakeEvents(
  base: string,
  stream = 'wakes',
): Promise<{ subscription_id: string; stream: string; generation: number }[]> {
  return (await (await fetch(`${base}/${stream}?offset=-1`)).json()) as never;
}

/** The tail of a stream, as `Stream-Next-Offset`. */
async function tailOf(base: string, name: string): Promise<string> {
  return (await fetch(`${base}/${name}`, { method: 'HEAD' })).headers.get('stream-next-offset')!;
}

describe('subscriptions over two server instances sharing one PostgreSQL', () => {
  it('work that arrived before an instance heard of a subscription is woken when it hears: once across instances', async () => {
    const [a, b] = await twoInstances();
    expect((await put(`${a.base}/wakes`, '[]')).status).toBe(201);
    expect((await put(`${a.base}/jobs`, '[1]')).status).toBe(201);
    // A third process writes a subscription whose member already has data past its acked offset — what an append
    // through an instance that had not heard of the subscription yet leaves behind. No append follows: only the
    // instances' catching up on the announcement can raise the wake, and both hear it at once.
    const third = await PostgresStorage.open({
      connectionString: cluster!.url,
      schema: a.schema,
      pool: { max: 2 },
    });
    cleanups.push(() => third.close());
    const input = { type: 'pull-wake', streams: ['jobs'], wakeStream: 'wakes', leaseTtlMs: 60_000 } as const;
    await third.mutateSubscription(
      'late',
      planCreateSubscription('late', input, [{ path: 'jobs', offset: ZERO_OFFSET }]),
    );
    await until(() => a.heard.includes('late') && b.heard.includes('late'));
    await until(async () => (await wakeEvents(a.base)).length >= 1);
    const claim = await json('POST', `${b.base}/__ds/subscriptions/late/claim`, { worker: 'w' });
    expect([claim.status, claim.body.generation]).toEqual([200, 1]);
    const auth = { authorization: `Bearer ${claim.body.token}` };
    const tail = claim.body.streams[0].tail_offset;
    const done = { generation: 1, acks: [{ stream: 'jobs', offset: tail }], done: true };
    expect((await json('POST', `${a.base}/__ds/subscriptions/late/ack`, done, auth)).status).toBe(200);
    // Both instances caught up; the wake was raised once.
    expect((await wakeEvents(b.base)).map((e) => [e.subscription_id, e.generation])).toEqual([['late', 1]]);
  }, 120_000);

  it('webhook: an append through either instance wakes the receiver once, right after a create through the other', async () => {
    const [a, b] = await twoInstances();
    const receiver = await startReceiver(() => ({ status: 200, body: { done: true } }));
    cleanups.push(receiver.close);
    expect((await put(`${a.base}/orders`, '[]')).status).toBe(201);

    const spec = { type: 'webhook', streams: ['orders'], webhook: { url: receiver.url } };
    expect((await json('PUT', `${a.base}/__ds/subscriptions/hook`, spec)).status).toBe(201);
    // B learns of it from the store's announcement (its own refresh is ten minutes away).
    await until(() => b.heard.includes('hook'));
    await post(`${b.base}/orders`, '[1]');
    await until(() => receiver.received.length >= 1);
    // The synchronous `{ done: true }` acked the tail: the wake is over before the next append.
    const acked = async () =>
      (await json('GET', `${a.base}/__ds/subscriptions/hook`)).body.streams[0].acked_offset;
    await until(async () => (await acked()) === (await tailOf(a.base, 'orders')));
    await post(`${a.base}/orders`, '[2]');
    await until(() => receiver.received.length >= 2);
    await until(async () => (await acked()) === (await tailOf(a.base, 'orders')));

    // Appends through both instances at once: wakes coalesce, and no generation is ever delivered twice.
    await Promise.all([
      ...[3, 4, 5].map((n) => post(`${a.base}/orders`, `[${n}]`)),
      ...[6, 7, 8].map((n) => post(`${b.base}/orders`, `[${n}]`)),
    ]);
    await until(async () => (await acked()) === (await tailOf(b.base, 'orders')));
    const generations = receiver.received.map((d) => d.body.generation as number);
    expect(generations.slice(0, 2)).toEqual([1, 2]);
    expect(new Set(generations).size).toBe(generations.length);
    expect([...generations].sort((x, y) => x - y)).toEqual(generations);
    expect(receiver.received.every((d) => d.body.subscription_id === 'hook')).toBe(true);
  }, 120_000);

  it('pull-wake: one wake event per generation; a claim through A is ALREADY_CLAIMED through B; an ack through B fences the stale worker on A', async () => {
    const [a, b] = await twoInstances();
    expect((await put(`${a.base}/wakes`, '[]')).status).toBe(201);
    expect((await put(`${a.base}/jobs`, '[]')).status).toBe(201);
    const spec = { type: 'pull-wake', streams: ['jobs'], wake_stream: 'wakes', lease_ttl_ms: 60_000 };
    expect((await json('PUT', `${a.base}/__ds/subscriptions/work`, spec)).status).toBe(201);
    await until(() => b.heard.includes('work'));

    // The append through B wakes the subscription created through A a moment before.
    await post(`${b.base}/jobs`, '[1]');
    await until(async () => (await wakeEvents(a.base)).length >= 1);
    const first = await json('POST', `${a.base}/__ds/subscriptions/work/claim`, { worker: 'w1' });
    expect([first.status, first.body.generation]).toEqual([200, 1]);
    const busy = await json('POST', `${b.base}/__ds/subscriptions/work/claim`, { worker: 'w2' });
    expect([busy.status, busy.body.error.code, busy.body.error.current_holder]).toEqual([
      409,
      'ALREADY_CLAIMED',
      'w1',
    ]);

    // w1's ack goes through B; its token stays valid only for generation 1.
    const w1 = { authorization: `Bearer ${first.body.token}` };
    const tail1 = first.body.streams.find((s: { path: string }) => s.path === 'jobs').tail_offset;
    const done1 = { generation: 1, acks: [{ stream: 'jobs', offset: tail1 }], done: true };
    expect((await json('POST', `${b.base}/__ds/subscriptions/work/ack`, done1, w1)).body).toEqual({
      ok: true,
      next_wake: false,
    });

    // The next append (through A) raises generation 2, which w2 claims through B; w1, now stale, is fenced on A.
    await post(`${a.base}/jobs`, '[2]');
    await until(async () => (await wakeEvents(b.base)).length >= 2);
    const second = await json('POST', `${b.base}/__ds/subscriptions/work/claim`, { worker: 'w2' });
    expect([second.status, second.body.generation]).toEqual([200, 2]);
    const stale = await json(
      'POST',
      `${a.base}/__ds/subscriptions/work/ack`,
      { generation: 1, acks: [{ stream: 'jobs', offset: tail1 }] },
      w1,
    );
    expect([stale.status, stale.body.error.code]).toEqual([409, 'FENCED']);
    const w2 = { authorization: `Bearer ${second.body.token}` };
    const tail2 = second.body.streams.find((s: { path: string }) => s.path === 'jobs').tail_offset;
    const done2 = { generation: 2, acks: [{ stream: 'jobs', offset: tail2 }], done: true };
    expect((await json('POST', `${a.base}/__ds/subscriptions/work/ack`, done2, w2)).status).toBe(200);

    // Exactly one wake event per generation, whichever instance saw the appends.
    const events = await wakeEvents(a.base);
    expect(events.map((e) => [e.subscription_id, e.stream, e.generation])).toEqual([
      ['work', 'jobs', 1],
      ['work', 'jobs', 2],
    ]);
  }, 120_000);

  it('a glob subscription created through A links a stream created through B, and wakes for its data', async () => {
    const [a, b] = await twoInstances();
    expect((await put(`${a.base}/wakes`, '[]')).status).toBe(201);
    const spec = { type: 'pull-wake', pattern: 'tenants/*', wake_stream: 'wakes', lease_ttl_ms: 60_000 };
    expect((await json('PUT', `${a.base}/__ds/subscriptions/glob`, spec)).status).toBe(201);
    await until(() => b.heard.includes('glob'));

    // Created with data through B: linked from its first position, so that data is work.
    expect((await put(`${b.base}/tenants/t1`, '[1]')).status).toBe(201);
    await until(async () => (await wakeEvents(a.base)).length >= 1);
    const view = await json('GET', `${a.base}/__ds/subscriptions/glob`);
    expect(view.body.streams).toEqual([
      { path: 'tenants/t1', link_type: 'glob', acked_offset: '0000000000000000_0000000000000000' },
    ]);
    expect((await wakeEvents(b.base)).map((e) => [e.stream, e.generation])).toEqual([['tenants/t1', 1]]);
  }, 120_000);

  it('a fork created through B links at its fork offset: what it inherited is not work, its own appends are', async () => {
    const [a, b] = await twoInstances();
    expect((await put(`${a.base}/wakes`, '[]')).status).toBe(201);
    expect((await put(`${a.base}/source`, '[1,2,3]')).status).toBe(201);
    const forkPoint = await tailOf(a.base, 'source');
    const spec = { type: 'pull-wake', pattern: 'forks/*', wake_stream: 'wakes', lease_ttl_ms: 60_000 };
    expect((await json('PUT', `${a.base}/__ds/subscriptions/forks`, spec)).status).toBe(201);
    await until(() => b.heard.includes('forks'));

    const fork = await put(`${b.base}/forks/f1`, undefined, { 'Stream-Forked-From': '/v1/stream/source' });
    expect(fork.status).toBe(201);
    const member = async () =>
      (await json('GET', `${a.base}/__ds/subscriptions/forks`)).body.streams.find(
        (s: { path: string }) => s.path === 'forks/f1',
      );
    await until(async () => (await member()) !== undefined);
    expect(await member()).toEqual({ path: 'forks/f1', link_type: 'glob', acked_offset: forkPoint });
    const idle = await json('POST', `${b.base}/__ds/subscriptions/forks/claim`, { worker: 'w' });
    expect([idle.status, idle.body.error.code]).toEqual([409, 'NO_PENDING_WORK']);

    // The fork's own append is new data: one wake.
    await post(`${a.base}/forks/f1`, '[4]');
    await until(async () => (await wakeEvents(b.base)).length >= 1);
    expect((await wakeEvents(a.base)).map((e) => [e.stream, e.generation])).toEqual([['forks/f1', 1]]);
  }, 120_000);
});
