import { type ChildProcess, fork } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startTestServer } from './helpers.js';

/**
 * Crowds of long-poll readers against an in-process server with the default limits (memory backend). The clients run
 * in a child process (test/burst-client.mjs): a loopback connection takes a descriptor at each end, and 10,000 of
 * them twice over do not fit under `ulimit -n` 20,000. `STREAMKEEP_BURST_READERS` changes the crowd of the first test
 * (default 10,000); nothing here asserts speed, only that everyone is answered.
 */
const READERS = Number(process.env.STREAMKEEP_BURST_READERS ?? 10_000);

interface CrowdResult {
  statuses: Record<string, number>;
  bodies: Record<string, number>;
  retryAfter: Record<string, number>;
  errors: Record<string, number>;
  firstAt: number;
  lastAt: number;
}

interface Crowd {
  readonly child: ChildProcess;
  /** Resolves once every request has been written. */
  readonly sent: Promise<void>;
  /** Resolves once every request has been answered (or failed). */
  readonly done: Promise<CrowdResult>;
}

function crowd(urls: readonly string[]): Crowd {
  const child = fork(resolve(import.meta.dirname, 'burst-client.mjs'), [], {
    execArgv: [],
    stdio: 'inherit',
  });
  const sent = new Promise<void>((ok, fail) => {
    child.on('message', (m: { sent?: number }) => m.sent !== undefined && ok());
    child.once('exit', (code) => fail(new Error(`crowd exited with ${code}`)));
  });
  const done = new Promise<CrowdResult>((ok, fail) => {
    child.on('message', (m: CrowdResult & { done?: boolean }) => m.done === true && ok(m));
    child.once('exit', (code) => fail(new Error(`crowd exited with ${code}`)));
  });
  sent.catch(() => {});
  child.send({ urls, window: 256 });
  return { child, sent, done };
}

/** Waits for `cond`, failing with `describe()` after `ms`. */
async function until(cond: () => boolean, ms: number, describe: () => unknown): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${JSON.stringify(describe())}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const text = { 'Content-Type': 'text/plain' };

/** Runs `f` over `items` with at most `n` at a time. */
async function inBatches<T>(items: readonly T[], n: number, f: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += n) await Promise.all(items.slice(i, i + n).map(f));
}

describe('many clients, default limits', () => {
  it(`${READERS} long-poll readers on one stream are all answered by one append`, {
    timeout: 120_000,
  }, async () => {
    const server = await startTestServer('memory', { longPollTimeoutMs: 100_000 });
    const url = `${server.url}/v1/stream/crowd`;
    let c: Crowd | undefined;
    try {
      expect((await fetch(url, { method: 'PUT', headers: text })).status).toBe(201);
      c = crowd(Array.from({ length: READERS }, () => `${url}?offset=now&live=long-poll`));
      await c.sent;
      await until(
        () => server.app.load.liveReads === READERS,
        60_000,
        () => server.app.load,
      );
      // Every reader waits at the tail without a storage slot.
      expect(server.app.load).toMatchObject({ inFlight: 0, queued: 0, shed: 0 });
      const posted = Date.now();
      expect((await fetch(url, { method: 'POST', headers: text, body: 'hello' })).status).toBe(204);
      const r = await c.done;
      expect(r.errors).toEqual({});
      expect(r.statuses).toEqual({ 200: READERS });
      expect(r.bodies).toEqual({ hello: READERS });
      console.log(
        `${READERS} readers answered ${r.firstAt - posted}–${r.lastAt - posted} ms after the append`,
      );
    } finally {
      c?.child.kill();
      await server.stop();
    }
  });

  it('1,000 readers on 1,000 streams each get their own stream’s message', { timeout: 120_000 }, async () => {
    const server = await startTestServer('memory', { longPollTimeoutMs: 100_000 });
    const names = Array.from({ length: 1_000 }, (_, i) => `s/${i}`);
    const streamUrl = (name: string) => `${server.url}/v1/stream/${name}`;
    let c: Crowd | undefined;
    try {
      await inBatches(names, 50, async (n) => {
        expect((await fetch(streamUrl(n), { method: 'PUT', headers: text })).status).toBe(201);
      });
      c = crowd(names.map((n) => `${streamUrl(n)}?offset=now&live=long-poll`));
      await c.sent;
      await until(
        () => server.app.load.liveReads === names.length,
        60_000,
        () => server.app.load,
      );
      await inBatches(names, 50, async (n) => {
        const res = await fetch(streamUrl(n), { method: 'POST', headers: text, body: `message of ${n}` });
        expect(res.status).toBe(204);
      });
      const r = await c.done;
      expect(r.errors).toEqual({});
      expect(r.statuses).toEqual({ 200: names.length });
      expect(r.bodies).toEqual(Object.fromEntries(names.map((n) => [`message of ${n}`, 1])));
    } finally {
      c?.child.kill();
      await server.stop();
    }
  });

  it('a crowd larger than the live-read limit: the excess is refused at once with 503 + Retry-After, the rest served', {
    timeout: 120_000,
  }, async () => {
    const server = await startTestServer('memory', { longPollTimeoutMs: 100_000, maxLiveReads: 1_500 });
    const url = `${server.url}/v1/stream/over`;
    let c: Crowd | undefined;
    try {
      expect((await fetch(url, { method: 'PUT', headers: text })).status).toBe(201);
      c = crowd(Array.from({ length: 2_500 }, () => `${url}?offset=now&live=long-poll`));
      await c.sent;
      await until(
        () => server.app.load.liveReads === 1_500,
        60_000,
        () => server.app.load,
      );
      // The server stays responsive at its limit.
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      expect((await fetch(url, { method: 'POST', headers: text, body: 'hello' })).status).toBe(204);
      const r = await c.done;
      expect(r.errors).toEqual({});
      expect(r.statuses).toEqual({ 200: 1_500, 503: 1_000 });
      expect(r.retryAfter).toEqual({ 1: 1_000 });
      expect(r.bodies).toEqual({ hello: 1_500 });
    } finally {
      c?.child.kill();
      await server.stop();
    }
  });
});
