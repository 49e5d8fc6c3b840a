import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MemoryStorage } from '@streamkeep/storage-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { json, startApp, until } from './subscriptions-helpers.js';

// Through the whole app: subscriptions, appends and a loopback receiver that counts the connections it accepts.

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function countingReceiver() {
  let connections = 0;
  const bodies: { subscription_id: string; streams: { path: string; tail_offset: string }[] }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"done":true}');
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    bodies,
    connections: () => connections,
  };
}

const append = (base: string, name: string, n: number) =>
  fetch(`${base}/${name}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ n }),
  });

describe('webhook deliveries through the app', () => {
  it('reuse one kept-alive connection for many deliveries, across subscriptions to one receiver', async () => {
    const running = await startApp();
    cleanups.push(() => running.close());
    const { base } = running;
    const hook = await countingReceiver();
    for (const s of ['a', 'b']) {
      expect(
        (await fetch(`${base}/${s}`, { method: 'PUT', headers: { 'content-type': 'application/json' } }))
          .status,
      ).toBe(201);
      const created = await json('PUT', `${base}/__ds/subscriptions/${s}`, {
        type: 'webhook',
        streams: [s],
        webhook: { url: hook.url },
      });
      expect(created.status).toBe(201);
    }
    // One append at a time, each waiting for its delivery (an idle subscription's wake goes out at once: nothing
    // here is paced), alternating between the two subscriptions.
    for (let i = 1; i <= 6; i++) {
      const stream = i % 2 === 0 ? 'a' : 'b';
      const res = await append(base, stream, i);
      expect(res.status).toBe(204);
      const tail = res.headers.get('stream-next-offset');
      await until(() =>
        hook.bodies.some((b) => b.streams.some((m) => m.path === stream && m.tail_offset === tail)),
      );
    }
    expect(hook.bodies.length).toBeGreaterThanOrEqual(6);
    expect(hook.connections()).toBe(1);

    // Deleting both subscriptions closes the pool; a new subscription opens a new connection.
    for (const s of ['a', 'b'])
      expect((await json('DELETE', `${base}/__ds/subscriptions/${s}`)).status).toBe(204);
    const again = await json('PUT', `${base}/__ds/subscriptions/c`, {
      type: 'webhook',
      streams: ['a'],
      webhook: { url: hook.url },
    });
    expect(again.status).toBe(201);
    const res = await append(base, 'a', 7);
    const tail = res.headers.get('stream-next-offset');
    await until(() =>
      hook.bodies.some((b) => b.subscription_id === 'c' && b.streams[0]?.tail_offset === tail),
    );
    expect(hook.connections()).toBe(2);
  });

  it('under pacing, the last tail is still delivered: wakes are coalesced, never lost', async () => {
    // Every append counts as load (`busyAppendsPerSecond: 0`), so lookups are batched and deliveries spaced.
    const running = await startApp({
      subscriptions: { busyAppendsPerSecond: 0, minIntervalMs: 200, ratePerSecond: 5 },
    });
    cleanups.push(() => running.close());
    const { base } = running;
    const hook = await countingReceiver();
    expect(
      (await fetch(`${base}/p`, { method: 'PUT', headers: { 'content-type': 'application/json' } })).status,
    ).toBe(201);
    const created = await json('PUT', `${base}/__ds/subscriptions/p`, {
      type: 'webhook',
      streams: ['p'],
      webhook: { url: hook.url },
    });
    expect(created.status).toBe(201);
    let tail: string | null = null;
    for (let i = 1; i <= 20; i++) {
      const res = await append(base, 'p', i);
      expect(res.status).toBe(204);
      tail = res.headers.get('stream-next-offset');
    }
    await until(() => hook.bodies.some((b) => b.streams[0]?.tail_offset === tail));
    // Each delivery carries a tail at least as new as the one before.
    const tails = hook.bodies.map((b) => b.streams[0]!.tail_offset);
    expect([...tails].sort()).toEqual(tails);
    expect(hook.bodies.length).toBeLessThanOrEqual(20);
  });

  it('a restarted server raises the wakes of work left pending by the previous one', async () => {
    const storage = new MemoryStorage();
    cleanups.push(() => storage.close());
    const hook = await countingReceiver();
    /** An app over the shared storage on a loopback port; stopping it leaves the storage open. */
    const serve = async () => {
      const app = createApp({ storage });
      const server = createServer(app);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/stream`;
      const stop = async () => {
        await app.shutdown(1000);
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      };
      cleanups.push(stop);
      return { base, stop };
    };
    const first = await serve();
    expect(
      (await fetch(`${first.base}/left`, { method: 'PUT', headers: { 'content-type': 'application/json' } }))
        .status,
    ).toBe(201);
    const created = await json('PUT', `${first.base}/__ds/subscriptions/left`, {
      type: 'webhook',
      streams: ['left'],
      webhook: { url: hook.url },
    });
    expect(created.status).toBe(201);
    await first.stop();
    // Data arrives while no server runs a wake for it (as if the process died with the wake still queued).
    const { nextOffset } = await storage.append('left', {
      messages: [Buffer.from('{"n":1}')],
      contentType: 'application/json',
    });
    expect(hook.bodies).toHaveLength(0);
    await serve();
    await until(() => hook.bodies.some((b) => b.streams[0]?.tail_offset === nextOffset));
  });
});
