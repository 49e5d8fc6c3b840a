import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DeliveryFailed, deliverWebhook } from '../src/webhooks/deliver.js';
import { admitWebhookUrl, DEFAULT_WEBHOOK_URL_POLICY } from '../src/webhooks/ssrf.js';

// Loopback only: every receiver listens on 127.0.0.1, and the URLs name it (or a name pinned to it).

const servers: ReturnType<typeof createServer>[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((s) => {
      s.closeAllConnections();
      return new Promise((r) => s.close(r));
    }),
  );
});
async function receiver(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  const s = createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}
const policy = DEFAULT_WEBHOOK_URL_POLICY;
const never = async (host: string): Promise<never> => {
  throw new Error(`resolver asked for ${host}`);
};

describe('webhook delivery', () => {
  it('posts the body with its headers to the pinned address and returns the answer', async () => {
    let seen: { method?: string; host?: string; sig?: string; body: string } = { body: '' };
    const port = await receiver((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen = {
          method: req.method,
          host: req.headers.host,
          sig: req.headers['webhook-signature'] as string,
          body,
        };
        res.setHeader('content-type', 'application/json');
        res.end('{"done":true}');
      });
    });
    // A name that only the pinned address makes reachable: the resolver answers loopback once, at the check.
    const target = await admitWebhookUrl(`http://hooks.localhost:${port}/in?x=1`, policy, never);
    const answer = await deliverWebhook(target, Buffer.from('{"a":1}'), {
      'webhook-signature': 't=1,kid=k,ed25519=x',
    });
    expect(answer.status).toBe(200);
    expect(answer.contentType).toBe('application/json');
    expect(answer.body.toString()).toBe('{"done":true}');
    expect(seen).toEqual({
      method: 'POST',
      host: `hooks.localhost:${port}`,
      sig: 't=1,kid=k,ed25519=x',
      body: '{"a":1}',
    });
  });

  it('never follows a redirect', async () => {
    let hits = 0;
    const port = await receiver((req, res) => {
      hits++;
      if (req.url === '/elsewhere') return res.end('followed');
      res.writeHead(307, { location: '/elsewhere' }).end();
    });
    const answer = await deliverWebhook(
      await admitWebhookUrl(`http://127.0.0.1:${port}/`, policy, never),
      Buffer.from('x'),
      {},
    );
    expect(answer.status).toBe(307);
    expect(hits).toBe(1);
  });

  it('fails an answer over the cap', async () => {
    const port = await receiver((_req, res) => res.end(Buffer.alloc(100_000, 0x61)));
    const target = await admitWebhookUrl(`http://127.0.0.1:${port}/`, policy, never);
    const err = await deliverWebhook(
      target,
      Buffer.from('x'),
      {},
      { timeoutMs: 60_000, maxAnswerBytes: 1024 },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(DeliveryFailed);
    expect((err as DeliveryFailed).reason).toBe('answer-too-large');
  });

  it('fails a receiver that never answers, after the timeout', async () => {
    const port = await receiver(() => undefined);
    const target = await admitWebhookUrl(`http://127.0.0.1:${port}/`, policy, never);
    const err = await deliverWebhook(
      target,
      Buffer.from('x'),
      {},
      { timeoutMs: 200, maxAnswerBytes: 1024 },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(DeliveryFailed);
    expect((err as DeliveryFailed).reason).toBe('timeout');
  });

  it('fails a refused connection', async () => {
    const port = await receiver(() => undefined);
    await new Promise((r) => servers.pop()?.close(r));
    const target = await admitWebhookUrl(`http://127.0.0.1:${port}/`, policy, never);
    const err = await deliverWebhook(target, Buffer.from('x'), {}).catch((e) => e);
    expect(err).toBeInstanceOf(DeliveryFailed);
    expect((err as DeliveryFailed).reason).toBe('connection');
  });
});
