import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import type { ReadOptions, ReadResult, Storage } from '@streamkeep/storage';
import { MemoryStorage } from '@streamkeep/storage-memory';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBody } from '../src/http/body.js';
import { SharedReads, tick } from '../src/http/shared-read.js';
import { type Backend, startTestServer } from './helpers.js';

interface Call {
  name: string;
  offset: string;
  maxBytes: number | undefined;
  settle(result: ReadResult): void;
  fail(err: Error): void;
}

/** A storage whose reads stay pending until the test settles them. */
function pendingStorage(): { storage: Storage; calls: Call[] } {
  const calls: Call[] = [];
  const storage = {
    read(name: string, offset: string, options?: ReadOptions): Promise<ReadResult> {
      return new Promise<ReadResult>((settle, fail) => {
        calls.push({ name, offset, maxBytes: options?.maxBytes, settle, fail });
      });
    },
  } as unknown as Storage;
  return { storage, calls };
}

const RESULT: ReadResult = { messages: [Buffer.from('x')], nextOffset: 'n', upToDate: true, closed: false };

describe('SharedReads', () => {
  it('shares a read in flight with callers that need data from before it started', async () => {
    const { storage, calls } = pendingStorage();
    const reads = new SharedReads(storage);
    const woken = tick();
    const a = reads.read('s', 'o1', 100, woken);
    const b = reads.read('s', 'o1', 100, woken);
    const c = reads.read('s', 'o1', 100, woken);
    expect(calls).toHaveLength(1);
    expect(reads.size).toBe(1);
    calls[0]!.settle(RESULT);
    const results = await Promise.all([a, b, c]);
    for (const r of results) expect(r).toBe(RESULT);
    expect(reads.size).toBe(0);
  });

  it('never hands a caller a read that started before the moment it needs', async () => {
    const { storage, calls } = pendingStorage();
    const reads = new SharedReads(storage);
    const early = reads.read('s', 'o1', 100, tick());
    // A wake-up after that read started: the read may predate the commit that caused it.
    const late = reads.read('s', 'o1', 100, tick());
    expect(calls).toHaveLength(2);
    // A third caller woken before the second read started joins the second.
    const third = reads.read('s', 'o1', 100, tick() - 2);
    expect(calls).toHaveLength(2);
    const older: ReadResult = { ...RESULT, nextOffset: 'old' };
    calls[1]!.settle(RESULT);
    // The newer read settled first; the older one must not evict anything when it settles.
    expect(await late).toBe(RESULT);
    expect(await third).toBe(RESULT);
    calls[0]!.settle(older);
    expect(await early).toBe(older);
    expect(reads.size).toBe(0);
  });

  it('keeps streams, offsets and size limits apart', () => {
    const { storage, calls } = pendingStorage();
    const reads = new SharedReads(storage);
    const t = tick();
    void reads.read('s', 'o1', 100, t);
    void reads.read('s', 'o2', 100, t);
    void reads.read('t', 'o1', 100, t);
    void reads.read('s', 'o1', 200, t);
    // A name that would collide with another key under naive concatenation.
    void reads.read('o1\u0000s', '100', 100, t);
    expect(calls.map((c) => `${c.name}|${c.offset}|${c.maxBytes}`)).toEqual([
      's|o1|100',
      's|o2|100',
      't|o1|100',
      's|o1|200',
      'o1\u0000s|100|100',
    ]);
  });

  it('shares a failure with the callers of that read, then forgets it', async () => {
    const { storage, calls } = pendingStorage();
    const reads = new SharedReads(storage);
    const t = tick();
    const a = reads.read('s', 'o1', 100, t);
    const b = reads.read('s', 'o1', 100, t);
    calls[0]!.fail(new Error('gone'));
    await expect(a).rejects.toThrow('gone');
    await expect(b).rejects.toThrow('gone');
    expect(reads.size).toBe(0);
    const c = reads.read('s', 'o1', 100, t);
    expect(calls).toHaveLength(2);
    calls[1]!.settle(RESULT);
    expect(await c).toBe(RESULT);
  });

  it('turns a synchronous throw of the backend into a rejection', async () => {
    const storage = {
      read() {
        throw new Error('sync');
      },
    } as unknown as Storage;
    await expect(new SharedReads(storage).read('s', 'o', 1, tick())).rejects.toThrow('sync');
  });
});

/** A memory backend that counts its reads. */
class CountingStorage extends MemoryStorage {
  reads = 0;
  override read(name: string, offset: string, options?: ReadOptions): Promise<ReadResult> {
    this.reads++;
    return super.read(name, offset, options);
  }
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('long-poll fan-out shares one read per stream and offset', () => {
  const storage = new CountingStorage({});
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let base: string;
  beforeAll(async () => {
    server = await startTestServer('memory', { longPollTimeoutMs: 10_000 }, storage);
    base = `${server.url}/v1/stream`;
  });
  afterAll(() => server.stop());

  it('wakes 200 waiters with one read; each gets the bytes and its own ETag and cursor', async () => {
    const url = `${base}/fan-${Date.now()}`;
    expect((await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'text/plain' } })).status).toBe(201);
    const head = await fetch(url, { method: 'HEAD' });
    const tail = head.headers.get('stream-next-offset')!;
    const before = storage.reads;
    const atTail = Array.from({ length: 150 }, () => get(`${url}?offset=${tail}&live=long-poll`));
    // Same read offset once caught up, but a different request offset: a different ETag.
    const fromStart = Array.from({ length: 25 }, () => get(`${url}?offset=-1&live=long-poll`));
    // `offset=now`: no ETag, not cacheable.
    const fromNow = Array.from({ length: 20 }, () => get(`${url}?offset=now&live=long-poll`));
    // A client cursor at or past the current interval must get a strictly greater one back.
    const ahead = '999999999';
    const withCursor = Array.from({ length: 5 }, () =>
      get(`${url}?offset=${tail}&live=long-poll&cursor=${ahead}`),
    );
    // Every request has made its first read and is waiting.
    await until(() => storage.reads - before >= 200);
    await new Promise((r) => setTimeout(r, 50));
    const readsBeforeAppend = storage.reads;
    const post = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: 'hello',
    });
    expect(post.status).toBe(204);
    const next = post.headers.get('stream-next-offset')!;
    const [a, b, c, d] = await Promise.all([
      Promise.all(atTail),
      Promise.all(fromStart),
      Promise.all(fromNow),
      Promise.all(withCursor),
    ]);
    expect(storage.reads - readsBeforeAppend).toBe(1);

    const createdAt = /^"([^:]+):/.exec(String(a[0]!.headers.etag))?.[1];
    expect(createdAt).toBeDefined();
    for (const r of [...a, ...b, ...c, ...d]) {
      expect(r.status).toBe(200);
      expect(r.body).toBe('hello');
      expect(r.headers['stream-next-offset']).toBe(next);
      expect(r.headers['stream-up-to-date']).toBe('true');
      expect(r.headers['content-type']).toBe('text/plain');
      expect(r.headers['x-content-type-options']).toBe('nosniff');
    }
    for (const r of a) expect(r.headers.etag).toBe(`"${createdAt}:${tail}:${next}"`);
    for (const r of b) expect(r.headers.etag).toBe(`"${createdAt}:-1:${next}"`);
    for (const r of c) {
      expect(r.headers.etag).toBeUndefined();
      expect(r.headers['cache-control']).toBe('no-store');
    }
    const current = a[0]!.headers['stream-cursor'];
    for (const r of [...a, ...b, ...c]) expect(r.headers['stream-cursor']).toBe(current);
    for (const r of d) expect(Number(r.headers['stream-cursor'])).toBeGreaterThan(Number(ahead));
  });

  it('shares one encoded body among waiters, gzipped for those that accept it and raw for the others', async () => {
    const url = `${base}/json-${Date.now()}`;
    await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'application/json' } });
    const tail = (await fetch(url, { method: 'HEAD' })).headers.get('stream-next-offset')!;
    const before = storage.reads;
    const waiter = (gz: boolean): Promise<Answer & { raw: Buffer }> =>
      new Promise((resolve, reject) => {
        const req = request(
          `${url}?offset=${tail}&live=long-poll`,
          { agent: false, headers: { 'Accept-Encoding': gz ? 'gzip' : 'identity' } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const raw = Buffer.concat(chunks);
              resolve({ status: res.statusCode!, headers: res.headers, body: '', raw });
            });
          },
        );
        req.on('error', reject);
        req.end();
      });
    const zipped = Array.from({ length: 30 }, () => waiter(true));
    const plain = Array.from({ length: 30 }, () => waiter(false));
    await until(() => storage.reads - before >= 60);
    await new Promise((r) => setTimeout(r, 50));
    const messages = [{ n: 1, pad: 'x'.repeat(2000) }, { n: 2 }];
    await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(messages),
    });
    for (const r of await Promise.all(zipped)) {
      expect(r.headers['content-encoding']).toBe('gzip');
      expect(JSON.parse(gunzipSync(r.raw).toString())).toEqual(messages);
      expect(r.headers.vary).toContain('Accept-Encoding');
    }
    for (const r of await Promise.all(plain)) {
      expect(r.headers['content-encoding']).toBeUndefined();
      expect(Number(r.headers['content-length'])).toBe(r.raw.length);
      expect(JSON.parse(r.raw.toString())).toEqual(messages);
    }
  });

  it('does not give a waiter at another offset or on another stream the shared answer', async () => {
    const url = `${base}/apart-${Date.now()}`;
    const other = `${base}/other-${Date.now()}`;
    for (const u of [url, other]) {
      await fetch(u, { method: 'PUT', headers: { 'Content-Type': 'text/plain' } });
    }
    const first = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: 'one',
    });
    const middle = first.headers.get('stream-next-offset')!;
    const before = storage.reads;
    const waiting = Array.from({ length: 20 }, () => get(`${url}?offset=${middle}&live=long-poll`));
    const elsewhere = get(`${other}?offset=now&live=long-poll`);
    await until(() => storage.reads - before >= 21);
    // A reader behind the tail is answered at once with its own bytes, while the others wait.
    const behind = await get(`${url}?offset=-1&live=long-poll`);
    expect(behind.body).toBe('one');
    expect(behind.headers['stream-next-offset']).toBe(middle);
    await fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'two' });
    for (const r of await Promise.all(waiting)) {
      expect(r.status).toBe(200);
      expect(r.body).toBe('two');
    }
    // The other stream's waiter is still waiting: wake it with its own append.
    await fetch(other, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'three' });
    const r = await elsewhere;
    expect(r.body).toBe('three');
  });

  it('delivers a commit that lands while woken waiters are still reading (no lost wake-up)', async () => {
    const url = `${base}/race-${Date.now()}`;
    await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'text/plain' } });
    let offset = (await fetch(url, { method: 'HEAD' })).headers.get('stream-next-offset')!;
    // Rounds of: waiters at the tail, then two appends back to back. Whatever each waiter gets first, a second
    // long-poll from its answer's offset must find the rest at once or after the next append, never lose it.
    for (let round = 0; round < 5; round++) {
      const before = storage.reads;
      const waiting = Array.from({ length: 30 }, () => get(`${url}?offset=${offset}&live=long-poll`));
      await until(() => storage.reads - before >= 30);
      const p1 = fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: `a${round}` });
      const p2 = fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: `b${round}` });
      await Promise.all([p1, p2]);
      const tail = (await fetch(url, { method: 'HEAD' })).headers.get('stream-next-offset')!;
      // The two appends race each other; the catch-up read says in which order they landed.
      const both = await get(`${url}?offset=${offset}`);
      expect(both.headers['stream-next-offset']).toBe(tail);
      for (const r of await Promise.all(waiting)) {
        expect(r.status).toBe(200);
        let seen = r.body;
        if (r.headers['stream-next-offset'] !== tail) {
          const rest = await get(`${url}?offset=${r.headers['stream-next-offset']}&live=long-poll`);
          seen += rest.body;
          expect(rest.headers['stream-next-offset']).toBe(tail);
        }
        expect(seen).toBe(both.body);
      }
      offset = tail;
    }
  });
});

describe.each<Backend>(['memory', 'file'])('SSE fan-out on the %s backend', (backend) => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  beforeAll(async () => {
    server = await startTestServer(backend, { sseReconnectMs: 0 });
    await server.storage;
  });
  afterAll(() => server.stop());

  it.each([
    ['text/plain', (data: string) => data],
    ['application/octet-stream', (data: string) => Buffer.from(data, 'base64').toString()],
  ])('every %s connection gets every message once, in order', async (type, decode) => {
    const url = `${server.url}/v1/stream/sse-${Date.now()}`;
    expect((await fetch(url, { method: 'PUT', headers: { 'Content-Type': type } })).status).toBe(201);
    const readers = Array.from({ length: 40 }, async () => {
      const ac = new AbortController();
      const res = await fetch(`${url}?offset=-1&live=sse`, { signal: ac.signal });
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      let got = '';
      while (!got.includes('m9')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        got = [...text.matchAll(/event: data\ndata:(.*)\n/g)].map((m) => decode(m[1]!)).join('');
      }
      ac.abort();
      return got;
    });
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 10; i++) {
      await fetch(url, { method: 'POST', headers: { 'Content-Type': type }, body: `m${i}` });
    }
    for (const got of await Promise.all(readers)) expect(got).toBe('m0m1m2m3m4m5m6m7m8m9');
  });
});

describe('request bodies', () => {
  let url: string;
  const seen: Buffer[] = [];
  const server = createServer((req, res) => {
    readBody(req, 1 << 20).then(
      (body) => {
        seen.push(body);
        res.end();
      },
      () => {
        res.statusCode = 413;
        res.end();
      },
    );
  });
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  function post(parts: Buffer[], chunked: boolean): Promise<number> {
    return new Promise((resolve, reject) => {
      const total = parts.reduce((n, p) => n + p.length, 0);
      const req = request(
        url,
        {
          method: 'POST',
          agent: false,
          headers: chunked ? { 'Transfer-Encoding': 'chunked' } : { 'Content-Length': total },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        },
      );
      req.on('error', reject);
      (async () => {
        for (const p of parts) {
          req.write(p);
          await new Promise((r) => setTimeout(r, 5));
        }
        req.end();
      })();
    });
  }

  it.each([
    ['one small chunk', [100], false],
    ['a 64 KiB body', [65_536], false],
    ['a chunked body in several pieces', [1000, 70_000, 3, 5000], true],
  ])('returns %s in a buffer that owns exactly its bytes', async (_label, sizes, chunked) => {
    const parts = sizes.map((n, i) => Buffer.alloc(n, 97 + i));
    seen.length = 0;
    expect(await post(parts, chunked)).toBe(200);
    const body = seen[0]!;
    expect(body.equals(Buffer.concat(parts))).toBe(true);
    // Not a view into a larger (socket or pool) buffer: a retained message pins its own bytes only.
    expect(body.byteOffset).toBe(0);
    expect(body.buffer.byteLength).toBe(body.length);
  });
});
