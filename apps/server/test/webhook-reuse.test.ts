import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { StreamBatch } from '../src/subscriptions/batch.js';
import { AdmissionCache } from '../src/webhooks/admission-cache.js';
import { WebhookAgents } from '../src/webhooks/agents.js';
import { deliverWebhook } from '../src/webhooks/deliver.js';
import { LoadGauge } from '../src/webhooks/load.js';
import {
  type AdmittedWebhookUrl,
  admitWebhookUrl,
  DEFAULT_WEBHOOK_URL_POLICY,
  type ResolvedAddress,
  WebhookUrlRejected,
} from '../src/webhooks/ssrf.js';

// Loopback only: every receiver listens on 127.0.0.1, and the URLs name it (or a name pinned to it).

const servers: ReturnType<typeof createServer>[] = [];
const pools: WebhookAgents[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) p.close();
  await Promise.all(
    servers.splice(0).map((s) => {
      s.closeAllConnections();
      return new Promise((r) => s.close(r));
    }),
  );
});

/** A receiver that answers `{"done":true}` and records the socket each request came on. */
async function receiver(handler?: (req: IncomingMessage, res: ServerResponse) => void) {
  const sockets: Socket[] = [];
  const perRequest: Socket[] = [];
  const s = createServer((req, res) => {
    perRequest.push(req.socket);
    req.resume();
    req.on('end', () => (handler ? handler(req, res) : res.end('{"done":true}')));
  });
  s.on('connection', (socket: Socket) => sockets.push(socket));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { port: (s.address() as AddressInfo).port, sockets, perRequest, server: s };
}
const policy = DEFAULT_WEBHOOK_URL_POLICY;
const never = async (host: string): Promise<never> => {
  throw new Error(`resolver asked for ${host}`);
};
function agents(): WebhookAgents {
  const a = new WebhookAgents({ maxSockets: 4, idleMs: 60_000 });
  pools.push(a);
  return a;
}

describe('kept-alive webhook connections', () => {
  it('several deliveries of several subscriptions to one pinned origin share one connection', async () => {
    const r = await receiver();
    const target = await admitWebhookUrl(`http://127.0.0.1:${r.port}/hook`, policy, never);
    const pool = agents();
    for (let i = 0; i < 6; i++) {
      const answer = await deliverWebhook(
        target,
        Buffer.from(`{"i":${i}}`),
        {},
        undefined,
        pool.acquire(`s${i % 3}`, target),
      );
      expect(answer.body.toString()).toBe('{"done":true}');
    }
    expect(r.perRequest).toHaveLength(6);
    expect(r.sockets).toHaveLength(1);
    expect(pool.size).toBe(1);
  });

  it('without a pool, each delivery opens and closes its own connection', async () => {
    const r = await receiver();
    const target = await admitWebhookUrl(`http://127.0.0.1:${r.port}/hook`, policy, never);
    for (let i = 0; i < 3; i++) await deliverWebhook(target, Buffer.from('{}'), {});
    expect(r.sockets).toHaveLength(3);
  });

  it('a pool is per pinned address set, and is closed when its last subscription leaves', async () => {
    const r = await receiver();
    const url = `http://hooks.localhost:${r.port}/hook`;
    const a: AdmittedWebhookUrl = await admitWebhookUrl(url, policy, never);
    const b: AdmittedWebhookUrl = { url: a.url, addresses: [{ address: '127.0.0.2', family: 4 }] };
    const pool = agents();
    const agentA = pool.acquire('s1', a);
    expect(pool.acquire('s2', a)).toBe(agentA);
    // The same URL admitted to other addresses (a DNS change) never reuses a connection opened to the old ones.
    const agentB = pool.acquire('s1', b);
    expect(agentB).not.toBe(agentA);
    expect(pool.size).toBe(2);
    await deliverWebhook(a, Buffer.from('{}'), {}, undefined, agentA);
    expect(r.sockets).toHaveLength(1);
    pool.release('s2'); // the last user of `a`'s pool: its connection is closed
    expect(pool.size).toBe(1);
    await waitFor(() => r.sockets[0]!.destroyed || r.sockets[0]!.readableEnded);
    pool.release('s1');
    expect(pool.size).toBe(0);
  });

  it('a kept-alive connection the receiver closed meanwhile is replaced, and the delivery goes through', async () => {
    const r = await receiver((_req, res) => {
      res.end('{"done":true}');
    });
    const target = await admitWebhookUrl(`http://127.0.0.1:${r.port}/hook`, policy, never);
    const pool = agents();
    const agent = pool.acquire('s', target);
    await deliverWebhook(target, Buffer.from('{}'), {}, undefined, agent);
    // The receiver drops its idle connection; the next delivery must not fail for it.
    r.server.closeIdleConnections();
    const answer = await deliverWebhook(target, Buffer.from('{}'), {}, undefined, agent);
    expect(answer.status).toBe(200);
    expect(r.perRequest).toHaveLength(2);
  });
});

describe('SSRF admission cache', () => {
  const at = (address: string): ResolvedAddress[] => [{ address, family: 4 }];

  it('keeps an IP literal for good, and a host name for its TTL, then asks the resolver again', async () => {
    let clock = 0;
    const asked: string[] = [];
    let answer = at('93.184.216.34');
    const cache = new AdmissionCache(
      policy,
      async (host) => {
        asked.push(host);
        return answer;
      },
      { ttlMs: 1000, now: () => clock },
    );
    const literal = await cache.admit('https://93.184.216.34/hook');
    clock += 1e9;
    expect(await cache.admit('https://93.184.216.34/hook')).toBe(literal);
    expect(asked).toEqual([]);

    clock = 0;
    const first = await cache.admit('https://hooks.example.com/hook');
    clock = 999;
    expect(await cache.admit('https://hooks.example.com/hook')).toBe(first);
    expect(asked).toEqual(['hooks.example.com']);
    // Past the TTL the name is resolved again, and a rebinding to a refused address is refused.
    clock = 1000;
    answer = at('169.254.169.254');
    await expect(cache.admit('https://hooks.example.com/hook')).rejects.toBeInstanceOf(WebhookUrlRejected);
    expect(asked).toHaveLength(2);
    // A refusal is not kept: the next attempt asks again.
    answer = at('93.184.216.35');
    expect((await cache.admit('https://hooks.example.com/hook')).addresses).toEqual(at('93.184.216.35'));
    expect(asked).toHaveLength(3);
  });

  it('remembers at most maxEntries URLs, forgetting the oldest first', async () => {
    let resolved = 0;
    const cache = new AdmissionCache(
      policy,
      async () => {
        resolved++;
        return at('93.184.216.34');
      },
      { maxEntries: 2, now: () => 0 },
    );
    for (const h of ['a', 'b', 'c']) await cache.admit(`https://${h}.example.com/`);
    await cache.admit('https://c.example.com/');
    expect(resolved).toBe(3);
    await cache.admit('https://a.example.com/');
    expect(resolved).toBe(4);
  });
});

describe('load gauge', () => {
  it('counts the instance busy while appends come fast and outnumber deliveries', () => {
    let clock = 0;
    const gauge = new LoadGauge({ windowMs: 100, busyAppendsPerSecond: 400, now: () => clock });
    expect(gauge.busy()).toBe(false);
    // 40 appends in 100 ms (400/s): busy from the end of the window on.
    for (let i = 0; i < 39; i++) gauge.noteAppend();
    gauge.noteDelivery();
    expect(gauge.busy()).toBe(false);
    // The window's bar reached before it ends: busy at once.
    gauge.noteAppend();
    expect(gauge.busy()).toBe(true);
    clock = 100;
    expect(gauge.busy()).toBe(true);
    // A fan-out (one append, many deliveries): not paced.
    for (let i = 0; i < 50; i++) gauge.noteDelivery();
    gauge.noteAppend();
    clock = 200;
    expect(gauge.busy()).toBe(false);
    // A trickle of appends: not paced.
    for (let i = 0; i < 39; i++) gauge.noteAppend();
    expect(gauge.busy()).toBe(false);
    clock = 300;
    expect(gauge.busy()).toBe(false);
    // 30 appends, then a long quiet spell before anyone asks: judged over the whole spell, not busy.
    for (let i = 0; i < 30; i++) gauge.noteAppend();
    clock = 10_000;
    expect(gauge.busy()).toBe(false);
  });

  it('stays busy through a window at half the rate, and leaves below it (hysteresis)', () => {
    let clock = 0;
    const gauge = new LoadGauge({ windowMs: 100, busyAppendsPerSecond: 400, now: () => clock });
    for (let i = 0; i < 40; i++) gauge.noteAppend();
    expect(gauge.busy()).toBe(true);
    // A starved window: 20 appends (200/s, half the bar) keep it busy; 30 would not have made it busy.
    clock = 100;
    for (let i = 0; i < 20; i++) gauge.noteAppend();
    clock = 200;
    expect(gauge.busy()).toBe(true);
    for (let i = 0; i < 30; i++) gauge.noteAppend();
    clock = 300;
    expect(gauge.busy()).toBe(true);
    // Below half the bar: no longer busy, and the full bar is needed again.
    for (let i = 0; i < 19; i++) gauge.noteAppend();
    clock = 400;
    expect(gauge.busy()).toBe(false);
    for (let i = 0; i < 30; i++) gauge.noteAppend();
    clock = 500;
    expect(gauge.busy()).toBe(false);
  });

  it('refuses nonsensical settings', () => {
    expect(() => new LoadGauge({ windowMs: 0 })).toThrow(RangeError);
    expect(() => new LoadGauge({ busyAppendsPerSecond: -1 })).toThrow(RangeError);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('stream batch', () => {
  it('hands each stream gathered within the delay to run once, and settles after', async () => {
    vi.useFakeTimers();
    try {
      const ran: string[] = [];
      const batch = new StreamBatch(100, (name) => ran.push(name));
      for (const n of ['a', 'b', 'a', 'c', 'a']) batch.add(n);
      let settled = false;
      void batch.settled().then(() => {
        settled = true;
      });
      await vi.advanceTimersByTimeAsync(99);
      expect(ran).toEqual([]);
      expect(settled).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(ran).toEqual(['a', 'b', 'c']);
      expect(settled).toBe(true);
      batch.add('a');
      await vi.advanceTimersByTimeAsync(100);
      expect(ran).toEqual(['a', 'b', 'c', 'a']);
      // Closed: gathered names are dropped and `settled` does not hang.
      batch.add('d');
      batch.close();
      await batch.settled();
      batch.add('e');
      await vi.advanceTimersByTimeAsync(1000);
      expect(ran).toEqual(['a', 'b', 'c', 'a']);
    } finally {
      vi.useRealTimers();
    }
  });
});
