import { MemoryStorage } from '@streamkeep/storage-memory';
import { afterEach, describe, expect, it } from 'vitest';
import type { Resolver } from '../src/webhooks/ssrf.js';
import { json, post, startApp, startReceiver, until } from './subscriptions-helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A memory store shared by several apps, with the secret keeper PostgreSQL offers (the first value wins). */
function sharedStore(): MemoryStorage {
  const memory = new MemoryStorage();
  const secrets = new Map<string, string>();
  return new Proxy(memory, {
    get: (target, key) => {
      if (key === 'loadOrCreateSecret') {
        return async (name: string, create: () => string) => {
          if (!secrets.has(name)) secrets.set(name, create());
          return secrets.get(name)!;
        };
      }
      if (key === 'close') return async () => {}; // closed once, by the test
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('subscriptions across instances sharing a store', () => {
  it('a claim through A is ALREADY_CLAIMED through B; an ack through B fences the stale token on A', async () => {
    const storage = sharedStore();
    const a = await startApp({ storage });
    const b = await startApp({ storage });
    cleanups.push(async () => {
      await a.close();
      await b.close();
    });
    await fetch(`${a.base}/wakes`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '[]',
    });
    await fetch(`${a.base}/jobs`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '[]',
    });
    const spec = { type: 'pull-wake', streams: ['jobs'], wake_stream: 'wakes', lease_ttl_ms: 60_000 };
    expect((await json('PUT', `${a.base}/__ds/subscriptions/shared`, spec)).status).toBe(201);
    expect((await json('PUT', `${b.base}/__ds/subscriptions/shared`, spec)).status).toBe(200);
    // Both instances publish the same key.
    const kid = async (base: string) =>
      ((await (await fetch(`${base}/__ds/jwks.json`)).json()) as { keys: { kid: string }[] }).keys[0]!.kid;
    expect(await kid(b.base)).toBe(await kid(a.base));

    await post(b.base, 'jobs', '1');
    const claim = await until(async () => {
      const c = await json('POST', `${a.base}/__ds/subscriptions/shared/claim`, { worker: 'on-a' });
      return c.status === 200 ? c : undefined;
    });
    const busy = await json('POST', `${b.base}/__ds/subscriptions/shared/claim`, { worker: 'on-b' });
    expect([busy.status, busy.body.error.code, busy.body.error.current_holder]).toEqual([
      409,
      'ALREADY_CLAIMED',
      'on-a',
    ]);

    const auth = { authorization: `Bearer ${claim.body.token}` };
    const tail = claim.body.streams.find((x: { path: string }) => x.path === 'jobs').tail_offset;
    const ack = { generation: claim.body.generation, acks: [{ stream: 'jobs', offset: tail }], done: true };
    expect((await json('POST', `${b.base}/__ds/subscriptions/shared/ack`, ack, auth)).body).toEqual({
      ok: true,
      next_wake: false,
    });
    const stale = await json('POST', `${a.base}/__ds/subscriptions/shared/ack`, ack, auth);
    expect([stale.status, stale.body.error.code]).toEqual([409, 'FENCED']);
    // At most one wake for the append, whichever instance saw it (none when the claim raised it first).
    const events = (await (await fetch(`${a.base}/wakes?offset=-1`)).json()) as { generation: number }[];
    expect(events.length).toBeLessThanOrEqual(1);
    expect(events.every((e) => e.generation === 1)).toBe(true);
    await storage.close();
  });

  it('an instance that has served no __ds request sends callback URLs at the origin it listens at', async () => {
    const storage = sharedStore();
    const receiver = await startReceiver(() => ({ status: 200, body: { done: true } }));
    const a = await startApp({ storage });
    const b = await startApp({ storage, subscriptions: { refreshIntervalMs: 20 } });
    cleanups.push(async () => {
      await a.close();
      await b.close();
      await receiver.close();
    });
    b.app.listeningAt(b.url);
    await fetch(`${a.base}/hooked`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '[]',
    });
    const spec = { type: 'webhook', streams: ['hooked'], webhook: { url: receiver.url } };
    expect((await json('PUT', `${a.base}/__ds/subscriptions/via-a`, spec)).status).toBe(201);
    // Appended through B only (which learns of the subscription at its next refresh), so B delivers the wake.
    await until(async () => {
      await post(b.base, 'hooked', '1');
      return receiver.received.length > 0 ? true : undefined;
    });
    const callback = receiver.received[0]!.body.callback_url as string;
    expect(callback.startsWith(`${b.url}/v1/stream/__ds/`)).toBe(true);
    await storage.close();
  });

  it('a host that resolves to a private address at delivery time is never connected to (DNS rebinding)', async () => {
    let lookups = 0;
    // Public when the subscription is created, private afterwards.
    const resolver: Resolver = async () => [
      { address: lookups++ === 0 ? '93.184.216.34' : '10.0.0.7', family: 4 },
    ];
    const { base, close } = await startApp({
      subscriptions: { resolver, retryBaseMs: 5, retryMaxMs: 10, maxAttempts: 2 },
    });
    cleanups.push(close);
    await fetch(`${base}/rebind`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '[]',
    });
    const created = await json('PUT', `${base}/__ds/subscriptions/rebind`, {
      type: 'webhook',
      streams: ['rebind'],
      webhook: { url: 'https://hooks.example/in' },
    });
    expect(created.status).toBe(201);
    await post(base, 'rebind', '1');
    await until(
      async () => (await json('GET', `${base}/__ds/subscriptions/rebind`)).body.status === 'failed',
    );
    expect(lookups).toBe(3);
  });
});
