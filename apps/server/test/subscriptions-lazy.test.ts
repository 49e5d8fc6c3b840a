import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SECRETS_FILE } from '../src/subscriptions/keys.js';
import { json, post, put, startApp, startReceiver, until } from './subscriptions-helpers.js';

// The subscription service starts when first needed (src/subscriptions/index.ts): a server whose store holds no
// subscription neither loads its code nor makes a signing key until a `__ds` request.
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

describe('the subscription service, started when first needed', () => {
  it('makes no signing key while no subscription exists, then serves the first __ds request and delivers', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'streamkeep-lazy-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    const running = await startApp({ subscriptions: { dataDir } });
    cleanups.push(() => running.close());
    expect((await put(running.base, 'early', '[1]')).status).toBe(201);
    expect((await post(running.base, 'early', '[2]')).status).toBe(204);
    expect(await exists(join(dataDir, SECRETS_FILE))).toBe(false);

    const spec = { type: 'webhook', streams: ['early'], webhook: { url: receiver.url } };
    expect((await json('PUT', `${running.base}/__ds/subscriptions/late`, spec)).status).toBe(201);
    expect(await exists(join(dataDir, SECRETS_FILE))).toBe(true);
    expect((await post(running.base, 'early', '[3]')).status).toBe(204);
    await until(() => receiver.received.length > 0);
    expect(receiver.received[0]!.body.subscription_id).toBe('late');
  });

  it('answers 404 for an unknown __ds route without a subscription', async () => {
    const running = await startApp();
    cleanups.push(() => running.close());
    expect((await json('GET', `${running.base}/__ds/nothing-here`)).status).toBe(404);
  });
});
