import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../src/server.js';
import { compileCli, parseConfig } from './helpers.js';
import { freshSchema, startCluster, type TestCluster } from './postgres-cluster.js';

/**
 * Two app instances on different ports over one PostgreSQL database and schema, configured through the CLI's own
 * parser (so `--storage postgres` and its flags are what is exercised): each has its own `PostgresStorage` (pool and
 * LISTEN connection). Every request may go to either instance, as behind a load balancer without stickiness.
 */
const LONG_POLL_MS = 5_000;
const JSON_TYPE = 'application/json';

let cluster: TestCluster | undefined;
const servers: RunningServer[] = [];
let schema = '';
let a = '';
let b = '';
let n = 0;
const fresh = (base: string) => `${base}/v1/stream/multi-${++n}`;
const on = (base: string, url: string) => base + url.slice(url.indexOf('/v1/stream/'));

beforeAll(async () => {
  cluster = await startCluster();
  schema = freshSchema('multi');
  for (let i = 0; i < 2; i++) {
    const config = parseConfig([
      '--storage',
      'postgres',
      '--postgres-url',
      cluster.url,
      '--postgres-schema',
      schema,
      '--postgres-pool-max',
      '4',
      '--port',
      '0',
      '--long-poll-timeout',
      String(LONG_POLL_MS),
      '--shutdown-timeout',
      '2000',
    ]);
    const server = await startServer(config);
    servers.push(server);
    await server.storage;
  }
  [a, b] = servers.map((s) => s.url) as [string, string];
}, 300_000);

afterAll(async () => {
  try {
    await Promise.all(servers.map((s) => s.close()));
  } finally {
    await cluster?.stop();
  }
}, 60_000);

async function create(url: string, contentType = JSON_TYPE): Promise<void> {
  const res = await fetch(url, { method: 'PUT', headers: { 'Content-Type': contentType } });
  expect(res.status).toBe(201);
}

async function post(
  url: string,
  body: string | undefined,
  headers: Record<string, string> = {},
  contentType = JSON_TYPE,
): Promise<Response> {
  const res = await fetch(url, {
    method: 'POST',
    headers: body === undefined ? headers : { 'Content-Type': contentType, ...headers },
    ...(body === undefined ? {} : { body }),
  });
  await res.arrayBuffer();
  return res;
}

/** Catch-up read of the whole stream as its JSON messages. */
async function readAll(url: string): Promise<unknown[]> {
  const res = await fetch(`${url}?offset=-1`);
  expect(res.status).toBe(200);
  return (await res.json()) as unknown[];
}

/** A long-poll reader: polls from `offset` until the stream is closed, collecting JSON messages. */
async function longPollReader(url: string, offset = '-1'): Promise<unknown[]> {
  const seen: unknown[] = [];
  let next = offset;
  for (;;) {
    const res = await fetch(`${url}?offset=${encodeURIComponent(next)}&live=long-poll`);
    if (res.status === 200) seen.push(...((await res.json()) as unknown[]));
    else {
      expect(res.status).toBe(204);
      await res.arrayBuffer();
    }
    next = res.headers.get('Stream-Next-Offset')!;
    if (res.headers.get('Stream-Closed') === 'true' && res.headers.get('Stream-Up-To-Date') === 'true') {
      return seen;
    }
  }
}

interface SseEvent {
  type: string;
  data: string;
}

/** An SSE reader parsing events as they arrive, so a test can wait for one before acting. */
class SseReader {
  readonly events: SseEvent[] = [];
  readonly done: Promise<boolean>;
  #wake: (() => void)[] = [];
  readonly #abort = new AbortController();

  constructor(url: string, offset = '-1') {
    this.done = this.#run(`${url}?offset=${encodeURIComponent(offset)}&live=sse`);
  }

  async #run(url: string): Promise<boolean> {
    const res = await fetch(url, { signal: this.#abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return true;
        buffer += decoder.decode(value, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end !== -1) {
          this.#parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
        }
      }
    } catch (err) {
      if ((err as Error).name === 'AbortError') return false;
      throw err;
    } finally {
      this.#notify();
    }
  }

  #parse(block: string): void {
    let type = '';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) type = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
    }
    if (type === '') return;
    this.events.push({ type, data: data.join('\n') });
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = [];
    for (const w of wake) w();
  }

  /** The JSON messages of all data events so far. */
  messages(): unknown[] {
    return this.events.filter((e) => e.type === 'data').flatMap((e) => JSON.parse(e.data) as unknown[]);
  }

  controls(): Record<string, unknown>[] {
    return this.events
      .filter((e) => e.type === 'control')
      .map((e) => JSON.parse(e.data) as Record<string, unknown>);
  }

  /** Waits until `ok()` holds; throws after `ms`. */
  async until(ok: () => boolean, ms = 5_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!ok()) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`SSE condition not met within ${ms} ms; events: ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  stop(): void {
    this.#abort.abort();
  }
}

/** Resolves `p`, or rejects after `ms` (so a missing wake-up fails with a message, not a test timeout). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('two instances over one PostgreSQL schema', () => {
  it('both report themselves ready with durable, multiInstance storage', async () => {
    for (const base of [a, b]) {
      const res = await fetch(`${base}/readyz`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { capabilities: Record<string, boolean> };
      expect(body.capabilities).toMatchObject({ durable: true, multiInstance: true });
    }
  });

  it('a stream created on one instance is served by the other', async () => {
    const url = fresh(a);
    await create(url);
    const head = await fetch(on(b, url), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('Content-Type')).toBe(JSON_TYPE);
    expect((await post(on(b, url), '{"from":"b"}')).status).toBe(204);
    expect(await readAll(url)).toEqual([{ from: 'b' }]);
    const again = await fetch(on(b, url), { method: 'PUT', headers: { 'Content-Type': 'text/plain' } });
    expect(again.status).toBe(409);
  });

  it('alternating appends reach long-poll and SSE readers on both instances exactly once, in order', {
    timeout: 60_000,
  }, async () => {
    const url = fresh(a);
    await create(url);
    const sse = [new SseReader(url), new SseReader(on(b, url))];
    // Both SSE readers are live at the (empty) tail before the first append.
    await Promise.all(sse.map((r) => r.until(() => r.controls().some((c) => c.upToDate === true))));
    const polls = [longPollReader(url), longPollReader(on(b, url))];
    const total = 40;
    const expected: unknown[] = [];
    let last = '';
    for (let i = 0; i < total; i++) {
      const base = i % 2 === 0 ? a : b;
      // Every third append waits, so that readers are parked at the tail when an append on the other instance lands.
      if (i % 3 === 0) await sleep(40);
      const message = { i, via: base === a ? 'a' : 'b' };
      const res = await post(on(base, url), JSON.stringify(message));
      expect(res.status).toBe(204);
      const offset = res.headers.get('Stream-Next-Offset')!;
      expect(offset > last).toBe(true);
      last = offset;
      expected.push(message);
    }
    const closed = await post(on(b, url), undefined, { 'Stream-Closed': 'true' });
    expect(closed.status).toBe(204);
    expect(closed.headers.get('Stream-Next-Offset')).toBe(last);

    const [pollA, pollB] = await within(Promise.all(polls), 10_000, 'long-poll readers');
    expect(pollA).toEqual(expected);
    expect(pollB).toEqual(expected);
    const ended = await within(Promise.all(sse.map((r) => r.done)), 10_000, 'SSE readers');
    expect(ended).toEqual([true, true]);
    for (const r of sse) {
      expect(r.messages()).toEqual(expected);
      const final = r.controls().at(-1)!;
      expect(final).toMatchObject({ streamNextOffset: last, streamClosed: true });
    }
    expect(await readAll(url)).toEqual(expected);
    expect(await readAll(on(b, url))).toEqual(expected);
  });

  it('a long-poll parked on one instance is answered by an append on the other, not by its timeout', async () => {
    const url = fresh(a);
    await create(url);
    for (const [reader, writer] of [
      [b, a],
      [a, b],
    ] as const) {
      const offset = (await fetch(`${on(reader, url)}?offset=now`)).headers.get('Stream-Next-Offset')!;
      const waiting = fetch(`${on(reader, url)}?offset=${offset}&live=long-poll`);
      await sleep(300);
      const appended = Date.now();
      expect((await post(on(writer, url), `{"by":"${writer === a ? 'a' : 'b'}"}`)).status).toBe(204);
      const res = await waiting;
      const latency = Date.now() - appended;
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual([{ by: writer === a ? 'a' : 'b' }]);
      // Well inside the 5 s long-poll timeout: the wake-up came through LISTEN/NOTIFY.
      expect(latency).toBeLessThan(2_000);
    }
  });

  it('concurrent appends through both instances get distinct offsets and one order seen by both', async () => {
    const url = fresh(a);
    await create(url, 'text/plain');
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) => post(on(i % 2 === 0 ? a : b, url), `<${i}>`, {}, 'text/plain')),
    );
    expect(results.map((r) => r.status)).toEqual(Array(24).fill(204));
    const offsets = results.map((r) => r.headers.get('Stream-Next-Offset')!);
    expect(new Set(offsets).size).toBe(24);
    const textA = await (await fetch(`${url}?offset=-1`)).text();
    const textB = await (await fetch(`${on(b, url)}?offset=-1`)).text();
    expect(textB).toBe(textA);
    // Each message exactly once, and in the order of the offsets their appends were acknowledged with.
    const byOffset = results
      .map((r, i) => ({ i, offset: r.headers.get('Stream-Next-Offset')! }))
      .sort((x, y) => (x.offset < y.offset ? -1 : 1));
    expect(textA).toBe(byOffset.map(({ i }) => `<${i}>`).join(''));
  });

  it('fences producers across instances: a stale epoch sent to the other instance is 403', async () => {
    const url = fresh(a);
    await create(url);
    const producer = (epoch: number, seq: number) => ({
      'Producer-Id': 'writer',
      'Producer-Epoch': String(epoch),
      'Producer-Seq': String(seq),
    });
    expect((await post(url, '{"e":1,"s":0}', producer(1, 0))).status).toBe(200);
    expect((await post(on(b, url), '{"e":1,"s":1}', producer(1, 1))).status).toBe(200);
    // A retry of seq 1 through the other instance is recognised as a duplicate.
    const dup = await post(url, '{"e":1,"s":1}', producer(1, 1));
    expect([dup.status, dup.headers.get('Producer-Seq')]).toEqual([204, '1']);
    // A new writer takes over on B; the zombie still on epoch 1 is fenced on A and on B.
    expect((await post(on(b, url), '{"e":2,"s":0}', producer(2, 0))).status).toBe(200);
    for (const base of [a, b]) {
      const stale = await post(on(base, url), '{"zombie":true}', producer(1, 2));
      expect([stale.status, stale.headers.get('Producer-Epoch')]).toEqual([403, '2']);
    }
    const gap = await post(url, '{"e":2,"s":5}', producer(2, 5));
    expect([gap.status, gap.headers.get('Producer-Expected-Seq')]).toEqual([409, '1']);
    expect((await post(url, '{"e":2,"s":1}', producer(2, 1))).status).toBe(200);
    const expected = [
      { e: 1, s: 0 },
      { e: 1, s: 1 },
      { e: 2, s: 0 },
      { e: 2, s: 1 },
    ];
    expect(await readAll(url)).toEqual(expected);
    expect(await readAll(on(b, url))).toEqual(expected);
  });

  it('keeps Stream-Seq ordering across instances', async () => {
    const url = fresh(a);
    await create(url);
    const seq = (base: string, value: string, body: string) =>
      post(on(base, url), body, { 'Stream-Seq': value });
    expect((await seq(a, '0001', '1')).status).toBe(204);
    expect((await seq(b, '0001', '"replay on b"')).status).toBe(409);
    expect((await seq(b, '0002', '2')).status).toBe(204);
    expect((await seq(a, '0002', '"replay on a"')).status).toBe(409);
    expect((await seq(a, '0001', '"older on a"')).status).toBe(409);
    expect((await seq(a, '0010', '3')).status).toBe(204);
    expect((await seq(b, '0009', '"older on b"')).status).toBe(409);
    expect(await readAll(on(b, url))).toEqual([1, 2, 3]);
  });

  it('a close on one instance ends SSE readers and answers long-polls on the other', async () => {
    const url = fresh(a);
    await create(url);
    expect((await post(url, '{"before":true}')).status).toBe(204);
    const sseOnB = new SseReader(on(b, url));
    await sseOnB.until(() => sseOnB.controls().some((c) => c.upToDate === true));
    const tail = sseOnB.controls().at(-1)!.streamNextOffset as string;
    const pollOnB = fetch(`${on(b, url)}?offset=${tail}&live=long-poll`);
    await sleep(300);
    const closing = Date.now();
    const close = await post(url, '{"last":true}', { 'Stream-Closed': 'true' });
    expect(close.status).toBe(204);
    const finalOffset = close.headers.get('Stream-Next-Offset');

    expect(await within(sseOnB.done, 3_000, 'SSE reader on the other instance')).toBe(true);
    expect(Date.now() - closing).toBeLessThan(3_000);
    expect(sseOnB.messages()).toEqual([{ before: true }, { last: true }]);
    expect(sseOnB.controls().at(-1)).toMatchObject({ streamNextOffset: finalOffset, streamClosed: true });

    const poll = await within(pollOnB, 3_000, 'long-poll on the other instance');
    expect(poll.status).toBe(200);
    expect(await poll.json()).toEqual([{ last: true }]);
    const after = await fetch(`${on(b, url)}?offset=${finalOffset}&live=long-poll`);
    expect([after.status, after.headers.get('Stream-Closed')]).toEqual([204, 'true']);
    expect((await post(on(b, url), '{"late":true}')).status).toBe(409);
  });

  it('a delete on one instance is seen by the other', async () => {
    const url = fresh(a);
    await create(url);
    expect((await fetch(on(b, url), { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(url, { method: 'HEAD' })).status).toBe(404);
  });

  it('a third instance in its own process (the built binary, configured from DATABASE_URL) joins in', {
    timeout: 60_000,
  }, async () => {
    const buildDir = join(resolve(import.meta.dirname, '..'), '.multi-instance-build');
    const bin = compileCli(buildDir);
    // Trust authentication ignores the password: it is there to show that it never reaches the logs.
    const withPassword = cluster!.url.replace('postgresql://postgres@', 'postgresql://postgres:hunter2@');
    const child = spawn(process.execPath, [bin], {
      env: {
        PATH: process.env.PATH,
        STREAMKEEP_STORAGE: 'postgres',
        DATABASE_URL: withPassword,
        STREAMKEEP_POSTGRES_SCHEMA: schema,
        STREAMKEEP_PORT: '0',
        STREAMKEEP_LONG_POLL_TIMEOUT: String(LONG_POLL_MS),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    let listening = '';
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const c = await within(
        new Promise<string>((resolveUrl) => {
          createInterface({ input: child.stdout! }).on('line', (line) => {
            lines.push(line);
            const entry = JSON.parse(line) as { msg: string; url?: string };
            if (entry.msg === 'listening') listening = entry.url ?? '';
            if (entry.msg === 'storage open') resolveUrl(listening);
          });
          void exited.then((code) => resolveUrl(`exited with ${code}: ${stderr}`));
        }),
        20_000,
        'the binary opening its storage',
      );
      expect(c).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(JSON.parse(lines[0]!)).toMatchObject({ msg: 'listening', storage: 'postgres', schema });

      const url = fresh(a);
      await create(url);
      expect((await post(on(b, url), '{"n":0}')).status).toBe(204);
      const tail = (await fetch(`${on(c, url)}?offset=now`)).headers.get('Stream-Next-Offset')!;
      const waiting = fetch(`${on(c, url)}?offset=${tail}&live=long-poll`);
      const sse = new SseReader(on(c, url));
      await sse.until(() => sse.controls().some((x) => x.upToDate === true));
      await sleep(300);
      const appended = Date.now();
      expect((await post(on(b, url), '{"n":1}')).status).toBe(204);
      const poll = await waiting;
      expect(poll.status).toBe(200);
      expect(await poll.json()).toEqual([{ n: 1 }]);
      expect(Date.now() - appended).toBeLessThan(2_000);
      expect((await post(on(c, url), '{"n":2}', { 'Stream-Closed': 'true' })).status).toBe(204);
      expect(await within(sse.done, 3_000, 'SSE reader on the third instance')).toBe(true);
      expect(sse.messages()).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
      expect(await readAll(on(a, url))).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(lines.join('\n')).not.toContain('hunter2');
      expect(stderr).not.toContain('hunter2');
    } finally {
      child.kill('SIGKILL');
      await rm(buildDir, { recursive: true, force: true });
    }
  });
});
