import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Storage } from '@streamkeep/storage';
import { MemoryStorage } from '@streamkeep/storage-memory';
import { createApp, type StreamkeepApp } from '../src/app.js';
import type { SubscriptionOptions } from '../src/subscriptions/index.js';

/** An app over `storage` on a loopback port, with subscription options (an injected resolver, a data directory). */
export async function startApp(
  options: { storage?: Storage; subscriptions?: SubscriptionOptions } = {},
): Promise<{ url: string; base: string; app: StreamkeepApp; storage: Storage; close(): Promise<void> }> {
  const storage = options.storage ?? new MemoryStorage();
  const app = createApp({ storage, subscriptions: { sweepIntervalMs: 50, ...options.subscriptions } });
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    base: `${url}/v1/stream`,
    app,
    storage,
    async close() {
      await app.shutdown(1000);
      await closeServer(server);
      await storage.close();
    },
  };
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

export interface Delivery {
  readonly body: Record<string, unknown>;
  readonly rawBody: string;
  readonly signature: string | undefined;
}

/**
 * A webhook receiver on loopback. `reply` decides each answer (status and JSON body); `hold: true` keeps requests
 * unanswered until `release()`.
 */
export async function startReceiver(
  reply: (n: number) => { status: number; body: unknown } = () => ({ status: 200, body: {} }),
  hold = false,
) {
  const received: Delivery[] = [];
  const held: (() => void)[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const sig = req.headers['webhook-signature'];
      received.push({
        body: JSON.parse(rawBody),
        rawBody,
        signature: typeof sig === 'string' ? sig : undefined,
      });
      const answer = () => {
        const { status, body } = reply(received.length);
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (hold) held.push(answer);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    release() {
      for (const f of held.splice(0)) f();
    },
    close: () => closeServer(server),
  };
}

/** Polls `predicate` until it holds (no fixed sleeps; a generous deadline for a loaded machine). */
export async function until<T>(
  predicate: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A JSON answer; its body is checked field by field in the tests. */
// biome-ignore lint/suspicious/noExplicitAny: see above
type JsonBody = any;

export async function json(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: JsonBody; headers: Headers }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text), headers: res.headers };
}

/** `PUT {base}/{name}`: creates a JSON stream (with `body` as its first messages, if given). */
export const put = (base: string, name: string, body?: string) =>
  fetch(`${base}/${name}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body }),
  });

/** `POST {base}/{name}`: appends `body` to a JSON stream. */
export const post = (base: string, name: string, body: string) =>
  fetch(`${base}/${name}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
