import { createPublicKey, verify } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStorage } from '@streamkeep/storage-memory';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadSubscriptionSecrets, SECRETS_FILE } from '../src/subscriptions/keys.js';
import type { Resolver } from '../src/webhooks/ssrf.js';
import { json, post, put, startApp, startReceiver, until } from './subscriptions-helpers.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function app(...args: Parameters<typeof startApp>) {
  const running = await startApp(...args);
  cleanups.push(() => running.close());
  return running;
}

async function receiver(...args: Parameters<typeof startReceiver>) {
  const r = await startReceiver(...args);
  cleanups.push(() => r.close());
  return r;
}

/** An independent verifier: `node:crypto` with the key of the JWKS named by the header's `kid`. */
function verifies(rawBody: string, header: string | undefined, keys: { kid: string }[]): boolean {
  const m = /^t=(\d+),kid=([^,]+),ed25519=([A-Za-z0-9_-]+)$/.exec(header ?? '');
  if (m === null) return false;
  const jwk = keys.find((k) => k.kid === m[2]);
  if (jwk === undefined) return false;
  const key = createPublicKey({ key: jwk as never, format: 'jwk' });
  return verify(null, Buffer.from(`${m[1]}.${rawBody}`), key, Buffer.from(m[3]!, 'base64url'));
}

describe('webhook subscriptions', () => {
  it('signs deliveries with the key served at jwks.json; callbacks ack once and a replay is FENCED', async () => {
    const { base } = await app();
    const hook = await receiver();
    const created = await json('PUT', `${base}/__ds/subscriptions/w`, {
      type: 'webhook',
      pattern: 'orders/*',
      webhook: { url: hook.url },
      lease_ttl_ms: 60_000,
    });
    expect(created.status).toBe(201);
    expect(created.body.webhook_secret).toBeUndefined();
    const jwksRes = await fetch(created.body.webhook.signing.jwks_url);
    expect(jwksRes.headers.get('content-type')).toBe('application/jwk-set+json');
    expect(jwksRes.headers.get('cache-control')).toBe('public, max-age=300');
    const { keys } = (await jwksRes.json()) as { keys: { kid: string }[] };
    expect(keys.map((k) => k.kid)).toEqual([created.body.webhook.signing.kid]);

    // A later request naming another host does not move the subscription's callbacks there.
    const forged = await new Promise<number>((resolve, reject) => {
      const req = request(`${base}/__ds/subscriptions/w`, { headers: { host: 'evil.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(forged).toBe(200);
    expect((await put(base, 'orders/1', '{"n":1}')).status).toBe(201);
    const delivery = await until(() => hook.received[0]);
    expect(verifies(delivery.rawBody, delivery.signature, keys)).toBe(true);
    expect(verifies(`${delivery.rawBody} `, delivery.signature, keys)).toBe(false);
    const body = delivery.body as {
      subscription_id: string;
      wake_id: string;
      generation: number;
      streams: { path: string; tail_offset: string; has_pending: boolean }[];
      callback_url: string;
      callback_token: string;
    };
    expect(body.subscription_id).toBe('w');
    expect(body.callback_url).toBe(`${base}/__ds/subscriptions/w/callback`);
    const stream = body.streams.find((s) => s.path === 'orders/1')!;
    expect(stream.has_pending).toBe(true);

    const auth = { authorization: `Bearer ${body.callback_token}` };
    const ack = {
      wake_id: body.wake_id,
      generation: body.generation,
      acks: [{ stream: 'orders/1', offset: stream.tail_offset }],
      done: true,
    };
    // A token of another subscription is refused.
    await json('PUT', `${base}/__ds/subscriptions/other`, {
      type: 'webhook',
      streams: ['x'],
      webhook: { url: hook.url },
    });
    expect((await json('POST', `${base}/__ds/subscriptions/other/callback`, ack, auth)).body.error.code).toBe(
      'FENCED',
    );
    const first = await json('POST', body.callback_url, ack, auth);
    expect([first.status, first.body]).toEqual([200, { ok: true, next_wake: false }]);
    const replay = await json('POST', body.callback_url, ack, auth);
    expect(replay.status).toBe(409);
    expect(replay.body.error.code).toBe('FENCED');
    const view = await json('GET', `${base}/__ds/subscriptions/w`);
    expect(view.body.streams).toContainEqual({
      path: 'orders/1',
      link_type: 'glob',
      acked_offset: stream.tail_offset,
    });
  });

  it('a synchronous { done: true } acks the wake; later appends wake again (a new generation)', async () => {
    const { base } = await app();
    const hook = await receiver(() => ({ status: 200, body: { done: true } }));
    await put(base, 'feed', '[]');
    await json('PUT', `${base}/__ds/subscriptions/sync`, {
      type: 'webhook',
      streams: ['feed'],
      webhook: { url: hook.url },
      lease_ttl_ms: 60_000,
    });
    await post(base, 'feed', '1');
    await until(() => hook.received[0]);
    const tail = (await fetch(`${base}/feed`, { method: 'HEAD' })).headers.get('stream-next-offset');
    await until(
      async () =>
        (await json('GET', `${base}/__ds/subscriptions/sync`)).body.streams[0].acked_offset === tail,
    );
    await post(base, 'feed', '2');
    const second = await until(() => hook.received[1]);
    expect((second.body as { generation: number }).generation).toBe(2);
  });

  it('an append never waits for a webhook: appends succeed while the receiver holds the delivery', async () => {
    const { base } = await app();
    const hook = await receiver(undefined, true);
    await put(base, 'busy', '[]');
    await json('PUT', `${base}/__ds/subscriptions/slow`, {
      type: 'webhook',
      streams: ['busy'],
      webhook: { url: hook.url },
    });
    await post(base, 'busy', '1');
    await until(() => hook.received[0]);
    // The delivery is in flight and unanswered; appends still complete.
    for (let i = 0; i < 10; i++) expect((await post(base, 'busy', `${i}`)).status).toBe(204);
    expect(hook.received).toHaveLength(1);
    hook.release();
  });

  it('retries a failing receiver with backoff and marks the subscription failed after the last attempt', async () => {
    const { base } = await app({ subscriptions: { retryBaseMs: 5, retryMaxMs: 20, maxAttempts: 3 } });
    const hook = await receiver(() => ({ status: 500, body: {} }));
    await put(base, 'flaky', '[]');
    await json('PUT', `${base}/__ds/subscriptions/f`, {
      type: 'webhook',
      streams: ['flaky'],
      webhook: { url: hook.url },
    });
    await post(base, 'flaky', '1');
    await until(async () => (await json('GET', `${base}/__ds/subscriptions/f`)).body.status === 'failed');
    expect(hook.received).toHaveLength(3);
  });

  it('refuses unsafe webhook URLs with 400 WEBHOOK_URL_REJECTED, names resolving to private addresses included', async () => {
    const answers: Record<string, string> = {
      'internal.example': '10.1.2.3',
      'metadata.example': '169.254.169.254',
      'public.example': '93.184.216.34',
    };
    const resolver: Resolver = async (host) => {
      const address = answers[host];
      if (address === undefined) throw new Error('no such host');
      return [{ address, family: 4 }];
    };
    const { base } = await app({ subscriptions: { resolver } });
    const refused = [
      'http://10.0.0.1/hook',
      'https://internal.example/hook',
      'https://metadata.example/hook',
      'http://public.example/hook', // plain http off loopback
      'https://[fe80::1]/hook',
      'https://[::ffff:192.168.0.1]/hook',
      'https://nowhere.example/hook',
      'ftp://127.0.0.1/hook',
      'https://user:pw@public.example/hook',
    ];
    for (const url of refused) {
      const res = await json('PUT', `${base}/__ds/subscriptions/ssrf`, {
        type: 'webhook',
        streams: ['a'],
        webhook: { url },
      });
      expect([url, res.status, res.body.error?.code]).toEqual([url, 400, 'WEBHOOK_URL_REJECTED']);
    }
    expect((await json('GET', `${base}/__ds/subscriptions/ssrf`)).status).toBe(404);
    const ok = await json('PUT', `${base}/__ds/subscriptions/ssrf`, {
      type: 'webhook',
      streams: ['a'],
      webhook: { url: 'https://public.example/hook' },
    });
    expect(ok.status).toBe(201);
  });
});

describe('the signing key', () => {
  it('is kept in the data directory (mode 0600) and reused on restart: the kid is stable', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'streamkeep-keys-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const kidOf = async (base: string) =>
      ((await (await fetch(`${base}/__ds/jwks.json`)).json()) as { keys: { kid: string }[] }).keys[0]!.kid;
    const first = await startApp({ subscriptions: { dataDir } });
    const kid = await kidOf(first.base);
    await first.close();
    expect(kid).toMatch(/^ds_/);
    expect((await stat(join(dataDir, SECRETS_FILE))).mode & 0o777).toBe(0o600);
    const second = await app({ subscriptions: { dataDir } });
    expect(await kidOf(second.base)).toBe(kid);
  });

  it('is created once when several instances start together', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'streamkeep-keys-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const logger = pino({ level: 'silent' });
    const storage = new MemoryStorage();
    const loaded = await Promise.all(
      Array.from({ length: 8 }, () => loadSubscriptionSecrets(storage, dataDir, logger)),
    );
    expect(new Set(loaded.map((s) => s.signingKey.kid)).size).toBe(1);
    expect(new Set(loaded.map((s) => s.tokenSecret.toString('hex'))).size).toBe(1);
  });

  it('uses the storage secret keeper when it has one (PostgreSQL), the first value winning', async () => {
    const kept = new Map<string, string>();
    const memory = new MemoryStorage();
    const storage = Object.assign(Object.create(memory) as MemoryStorage, {
      capabilities: memory.capabilities,
      async loadOrCreateSecret(name: string, create: () => string) {
        if (!kept.has(name)) kept.set(name, create());
        return kept.get(name)!;
      },
    });
    const logger = pino({ level: 'silent' });
    const a = await loadSubscriptionSecrets(storage, undefined, logger);
    const b = await loadSubscriptionSecrets(storage, undefined, logger);
    expect(b.signingKey.kid).toBe(a.signingKey.kid);
    expect([...kept.keys()].sort()).toEqual(['callback-token-secret', 'webhook-signing-key']);
  });
});
