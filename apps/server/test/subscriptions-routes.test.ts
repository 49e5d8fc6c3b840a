import { MemoryStorage } from '@streamkeep/storage-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { json, post, put, startApp, until } from './subscriptions-helpers.js';

type Running = Awaited<ReturnType<typeof startApp>>;
let running: Running | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

async function start(...args: Parameters<typeof startApp>): Promise<Running> {
  running = await startApp(...args);
  return running;
}

describe('__ds subscription routes', () => {
  it('creates (201), re-confirms (200) and refuses a different config (409 SUBSCRIPTION_CONFLICT)', async () => {
    const { base } = await start();
    const spec = { type: 'pull-wake', streams: ['a/1'], wake_stream: 'wakes', description: 'd' };
    const created = await json('PUT', `${base}/__ds/subscriptions/s1`, spec);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      id: 's1',
      subscription_id: 's1',
      type: 'pull-wake',
      pattern: null,
      streams: [{ path: 'a/1', link_type: 'explicit' }],
      wake_stream: 'wakes',
      lease_ttl_ms: 30_000,
      status: 'active',
      description: 'd',
      webhook: null,
    });
    expect((await json('PUT', `${base}/__ds/subscriptions/s1`, spec)).status).toBe(200);
    const conflict = await json('PUT', `${base}/__ds/subscriptions/s1`, { ...spec, description: 'other' });
    expect(conflict.status).toBe(409);
    expect(conflict.headers.get('content-type')).toBe('application/problem+json');
    expect(conflict.body.code).toBe('SUBSCRIPTION_CONFLICT');
    expect(conflict.body.error.code).toBe('SUBSCRIPTION_CONFLICT');
  });

  it('answers client mistakes with 4xx problems, never 500', async () => {
    const { base } = await start();
    const cases: [string, string, unknown, number, string][] = [
      ['PUT', 's', { type: 'carrier-pigeon', streams: ['a'] }, 400, 'INVALID_SUBSCRIPTION'],
      ['PUT', 's', { type: 'pull-wake', wake_stream: 'w' }, 400, 'INVALID_SUBSCRIPTION'],
      ['PUT', 's', { type: 'webhook', streams: ['a'] }, 400, 'INVALID_SUBSCRIPTION'],
      ['PUT', 's', { type: 'webhook', streams: ['a'], webhook: 'x' }, 400, 'INVALID_SUBSCRIPTION'],
      [
        'PUT',
        's',
        { type: 'pull-wake', streams: ['a'], wake_stream: 'w', lease_ttl_ms: 5 },
        400,
        'INVALID_SUBSCRIPTION',
      ],
      ['PUT', 's', '{not json', 400, 'INVALID_JSON'],
      ['PUT', 's', '[1]', 400, 'INVALID_JSON'],
      ['GET', 'missing', undefined, 404, 'SUBSCRIPTION_NOT_FOUND'],
      ['DELETE', 'missing', undefined, 404, 'SUBSCRIPTION_NOT_FOUND'],
      ['POST', 'missing/streams', { streams: ['a'] }, 404, 'SUBSCRIPTION_NOT_FOUND'],
      ['POST', 'missing/claim', { worker: 'w' }, 404, 'SUBSCRIPTION_NOT_FOUND'],
      ['POST', 'missing/ack', { generation: 1 }, 409, 'FENCED'],
      ['PATCH', 'missing', undefined, 405, 'METHOD_NOT_ALLOWED'],
      ['GET', 'x/nothing', undefined, 404, 'ROUTE_NOT_FOUND'],
      ['GET', '%E0%A4%A', undefined, 400, 'INVALID_SUBSCRIPTION'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const res = await json(method, `${base}/__ds/subscriptions/${path}`, body);
      expect([method, path, res.status, res.body?.code]).toEqual([method, path, status, code]);
    }
    const claimWebhook = await json('PUT', `${base}/__ds/subscriptions/wh`, {
      type: 'webhook',
      streams: ['a'],
      webhook: { url: 'http://127.0.0.1:9/hook' },
    });
    expect(claimWebhook.status).toBe(201);
    const claim = await json('POST', `${base}/__ds/subscriptions/wh/claim`, { worker: 'w' });
    expect([claim.status, claim.body.code]).toEqual([400, 'INVALID_SUBSCRIPTION']);
  });

  it('answers every __ds route with 501 when the storage does not declare subscriptions', async () => {
    const memory = new MemoryStorage();
    const capabilities = { ...memory.capabilities, subscriptions: false };
    const storage = new Proxy(memory, {
      get: (target, key) => {
        if (key === 'capabilities') return capabilities;
        const value = Reflect.get(target, key, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const { base } = await start({ storage });
    for (const [method, path] of [
      ['GET', 'jwks.json'],
      ['PUT', 'subscriptions/s'],
      ['GET', 'subscriptions/s'],
      ['POST', 'subscriptions/s/claim'],
    ] as const) {
      const res = await json(method, `${base}/__ds/${path}`, method === 'GET' ? undefined : {});
      expect([path, res.status, res.body.code]).toEqual([path, 501, 'NOT_SUPPORTED']);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
    }
    // Streams are unaffected.
    expect((await put(base, 'plain', '[1]')).status).toBe(201);
  });

  it('adds and removes explicit members, links pattern members, and unlinks deleted streams', async () => {
    const { base } = await start();
    expect((await put(base, 'events/old', '[1]')).status).toBe(201);
    const created = await json('PUT', `${base}/__ds/subscriptions/m`, {
      type: 'pull-wake',
      pattern: 'events/*',
      streams: ['manual/a'],
      wake_stream: 'wakes',
    });
    expect(created.status).toBe(201);
    const old = created.body.streams.find((s: { path: string }) => s.path === 'events/old');
    // An existing matching stream links at its tail: no history replay.
    const head = await fetch(`${base}/events/old`, { method: 'HEAD' });
    expect(old).toEqual({
      path: 'events/old',
      link_type: 'glob',
      acked_offset: head.headers.get('stream-next-offset'),
    });

    expect(
      (await json('POST', `${base}/__ds/subscriptions/m/streams`, { streams: ['manual/b', 'events/old'] }))
        .status,
    ).toBe(204);
    expect((await put(base, 'events/new')).status).toBe(201);
    const paths = async () =>
      (await json('GET', `${base}/__ds/subscriptions/m`)).body.streams.map(
        (s: { path: string; link_type: string }) => `${s.path}:${s.link_type}`,
      );
    await until(async () => (await paths()).includes('events/new:glob'));
    expect(await paths()).toEqual([
      'events/new:glob',
      'events/old:explicit',
      'manual/a:explicit',
      'manual/b:explicit',
    ]);

    const enc = encodeURIComponent;
    expect((await json('DELETE', `${base}/__ds/subscriptions/m/streams/${enc('manual/b')}`)).status).toBe(
      204,
    );
    // Removing the explicit link of a pattern member leaves it a glob member.
    expect((await json('DELETE', `${base}/__ds/subscriptions/m/streams/${enc('events/old')}`)).status).toBe(
      204,
    );
    expect((await fetch(`${base}/events/new`, { method: 'DELETE' })).status).toBe(204);
    await until(async () => !(await paths()).includes('events/new:glob'));
    expect(await paths()).toEqual(['events/old:glob', 'manual/a:explicit']);

    expect((await json('DELETE', `${base}/__ds/subscriptions/m`)).status).toBe(204);
    expect((await json('GET', `${base}/__ds/subscriptions/m`)).status).toBe(404);
  });

  it('pull-wake: wake event, claim, ALREADY_CLAIMED, heartbeat, ack, NO_PENDING_WORK, release, fencing', async () => {
    const { base } = await start();
    expect((await put(base, 'wakes', '[]')).status).toBe(201);
    expect((await put(base, 'jobs/1', '[]')).status).toBe(201);
    const sub = `${base}/__ds/subscriptions/p`;
    expect(
      (
        await json('PUT', sub, {
          type: 'pull-wake',
          streams: ['jobs/1'],
          wake_stream: 'wakes',
          lease_ttl_ms: 60_000,
        })
      ).status,
    ).toBe(201);
    expect((await json('POST', `${sub}/claim`, { worker: 'w1' })).body.code).toBe('NO_PENDING_WORK');

    expect((await post(base, 'jobs/1', '{"n":1}')).status).toBe(204);
    const events = await until(async () => {
      const all = (await (await fetch(`${base}/wakes?offset=-1`)).json()) as Record<string, unknown>[];
      return all.length > 0 ? all : undefined;
    });
    expect(events[0]).toMatchObject({ type: 'wake', subscription_id: 'p', stream: 'jobs/1', generation: 1 });

    const claim = await json('POST', `${sub}/claim`, { worker: 'w1' });
    expect(claim.status).toBe(200);
    expect(claim.body).toMatchObject({ generation: 1, lease_ttl_ms: 60_000 });
    const tail = claim.body.streams.find((s: { path: string }) => s.path === 'jobs/1');
    expect(tail.has_pending).toBe(true);
    const busy = await json('POST', `${sub}/claim`, { worker: 'w2' });
    expect(busy.status).toBe(409);
    expect(busy.body.error).toMatchObject({ code: 'ALREADY_CLAIMED', current_holder: 'w1', generation: 1 });

    const auth = { authorization: `Bearer ${claim.body.token}` };
    const ackBody = { wake_id: claim.body.wake_id, generation: 1 };
    // No token, a forged token, a token for another wake: fenced.
    expect((await json('POST', `${sub}/ack`, ackBody)).body.error.code).toBe('FENCED');
    expect((await json('POST', `${sub}/ack`, ackBody, { authorization: 'Bearer x.y' })).body.error.code).toBe(
      'FENCED',
    );
    expect((await json('POST', `${sub}/ack`, { ...ackBody, wake_id: 'other' }, auth)).body.error.code).toBe(
      'FENCED',
    );
    // A heartbeat (no done) keeps the wake.
    expect((await json('POST', `${sub}/ack`, ackBody, auth)).body).toEqual({ ok: true, next_wake: false });
    const done = await json(
      'POST',
      `${sub}/ack`,
      { ...ackBody, acks: [{ stream: 'jobs/1', offset: tail.tail_offset }], done: true },
      auth,
    );
    expect(done.body).toEqual({ ok: true, next_wake: false });
    const acked = (await json('GET', sub)).body.streams[0];
    expect(acked.acked_offset).toBe(tail.tail_offset);
    // The wake ended: its token is fenced now.
    expect((await json('POST', `${sub}/ack`, ackBody, auth)).status).toBe(409);

    expect((await post(base, 'jobs/1', '{"n":2}')).status).toBe(204);
    const claim2 = await until(async () => {
      const c = await json('POST', `${sub}/claim`, { worker: 'w1' });
      return c.status === 200 ? c : undefined;
    });
    expect(claim2.body.generation).toBe(2);
    const auth2 = { authorization: `Bearer ${claim2.body.token}` };
    const release = await json(
      'POST',
      `${sub}/release`,
      { wake_id: claim2.body.wake_id, generation: 2 },
      auth2,
    );
    expect(release.status).toBe(204);
    // The released work is still pending: another worker gets the next wake.
    const claim3 = await until(async () => {
      const c = await json('POST', `${sub}/claim`, { worker: 'w2' });
      return c.status === 200 ? c : undefined;
    });
    expect(claim3.body.generation).toBeGreaterThan(2);
    // The stale token of the released wake is fenced.
    expect((await json('POST', `${sub}/release`, { generation: 2 }, auth2)).body.error.code).toBe('FENCED');
  });

  it('a lease that expires with work left is swept: a new wake event, and the stale holder is fenced', async () => {
    const { base } = await start();
    await put(base, 'wakes', '[]');
    await put(base, 'jobs/l', '[]');
    const sub = `${base}/__ds/subscriptions/lease`;
    await json('PUT', sub, {
      type: 'pull-wake',
      streams: ['jobs/l'],
      wake_stream: 'wakes',
      lease_ttl_ms: 1000,
    });
    await post(base, 'jobs/l', '1');
    const claim = await until(async () => {
      const c = await json('POST', `${sub}/claim`, { worker: 'gone' });
      return c.status === 200 ? c : undefined;
    });
    // The worker disappears; once its lease has run out the sweep raises the next wake for the pending work.
    const events = await until(async () => {
      const all = (await (await fetch(`${base}/wakes?offset=-1`)).json()) as { generation: number }[];
      return all.some((e) => e.generation > claim.body.generation) ? all : undefined;
    });
    expect(events.at(-1)).toMatchObject({ subscription_id: 'lease', stream: 'jobs/l' });
    const stale = await json(
      'POST',
      `${sub}/ack`,
      { generation: claim.body.generation, done: true },
      { authorization: `Bearer ${claim.body.token}` },
    );
    expect([stale.status, stale.body.error.code]).toEqual([409, 'FENCED']);
  });

  it('a token does not survive its subscription being deleted and re-created under the same id', async () => {
    const { base } = await start();
    await put(base, 'jobs/x', '[]');
    const sub = `${base}/__ds/subscriptions/again`;
    const spec = { type: 'pull-wake', streams: ['jobs/x'], wake_stream: 'w', lease_ttl_ms: 60_000 };
    await json('PUT', sub, spec);
    await post(base, 'jobs/x', '1');
    const first = await until(async () => {
      const c = await json('POST', `${sub}/claim`, { worker: 'w' });
      return c.status === 200 ? c : undefined;
    });
    expect((await json('DELETE', sub)).status).toBe(204);
    await json('PUT', sub, { ...spec, streams: ['jobs/x'] });
    // The new incarnation has no wake of generation 1 at all; even once it has one, the old token stays fenced.
    await post(base, 'jobs/x', '2');
    const second = await until(async () => {
      const c = await json('POST', `${sub}/claim`, { worker: 'w' });
      return c.status === 200 ? c : undefined;
    });
    expect(second.body.generation).toBe(first.body.generation);
    const replay = await json(
      'POST',
      `${sub}/ack`,
      { generation: first.body.generation, done: true },
      { authorization: `Bearer ${first.body.token}` },
    );
    expect(replay.body.error.code).toBe('FENCED');
  });

  it('an app whose store has no subscription never looks subscriptions up on the append path', async () => {
    const memory = new MemoryStorage();
    let memberLookups = 0;
    const storage = new Proxy(memory, {
      get: (target, key) => {
        const value = Reflect.get(target, key, target);
        if (key === 'listSubscriptions') {
          return (options?: { member?: string }) => {
            if (options?.member !== undefined) memberLookups++;
            return memory.listSubscriptions(options);
          };
        }
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const { base, app } = await start({ storage });
    await until(() => app.ready);
    await put(base, 'quiet', '[]');
    for (let i = 0; i < 20; i++) expect((await post(base, 'quiet', `${i}`)).status).toBe(204);
    expect(memberLookups).toBe(0);
  });
});
