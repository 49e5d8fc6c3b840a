import { request } from 'node:http';
import { connect } from 'node:net';
import type { AppendRequest, AppendResult } from '@streamkeep/storage';
import { MemoryStorage } from '@streamkeep/storage-memory';
import { describe, expect, it } from 'vitest';
import { startTestServer } from './helpers.js';

/**
 * Every limit at its edge: the largest accepted value passes, one more is refused with the documented status and
 * problem code, and the server keeps serving.
 */

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Sends a request as raw bytes and parses the first response (status, headers, Content-Length body). */
function rawRequest(url: string, head: string, body = ''): Promise<Reply> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(head + body));
    let data = Buffer.alloc(0);
    const done = (): void => {
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) return;
      const lines = text.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      const len = Number(headers['content-length'] ?? 0);
      if (data.length < end + 4 + len) return;
      socket.destroy();
      resolve({
        status: Number(lines[0]!.split(' ')[1]),
        headers,
        body: data.subarray(end + 4, end + 4 + len).toString('utf8'),
      });
    };
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      done();
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed: ${data.toString('latin1')}`)));
  });
}

/** A POST with a chunked body sent in pieces (no Content-Length). */
function chunkedPost(url: string, size: number): Promise<{ status: number; code?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () =>
        resolve({ status: res.statusCode!, ...(text ? { code: JSON.parse(text).code } : {}) }),
      );
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    const piece = 'x'.repeat(100);
    let sent = 0;
    const pump = (): void => {
      while (sent < size) {
        const n = Math.min(piece.length, size - sent);
        sent += n;
        if (!req.write(piece.slice(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

const put = (url: string, headers: Record<string, string> = { 'Content-Type': 'text/plain' }) =>
  fetch(url, { method: 'PUT', headers });

describe('request body limit (--max-body-bytes)', () => {
  it('accepts a body of exactly the limit and refuses one byte more, declared or chunked', async () => {
    const server = await startTestServer('memory', { maxBodyBytes: 1000 });
    try {
      const url = `${server.url}/v1/stream/body`;
      expect((await put(url)).status).toBe(201);
      const post = (n: number) =>
        fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'y'.repeat(n) });
      expect((await post(1000)).status).toBe(204);
      const over = await post(1001);
      expect(over.status).toBe(413);
      expect(await over.json()).toMatchObject({ code: 'BODY_TOO_LARGE' });
      expect(await chunkedPost(url, 1000)).toEqual({ status: 204 });
      expect(await chunkedPost(url, 1001)).toEqual({ status: 413, code: 'BODY_TOO_LARGE' });
      // Nothing of the refused bodies was stored.
      const read = await fetch(`${url}?offset=-1`);
      expect((await read.text()).length).toBe(2000);
      // PUT bodies have the same limit.
      const big = await fetch(`${server.url}/v1/stream/body2`, {
        method: 'PUT',
        headers: { 'Content-Type': 'text/plain' },
        body: 'z'.repeat(1001),
      });
      expect(big.status).toBe(413);
      expect((await fetch(`${server.url}/v1/stream/body2`, { method: 'HEAD' })).status).toBe(404);
    } finally {
      await server.stop();
    }
  });
});

describe('request head limit (--max-header-bytes)', () => {
  it('counts the request line plus Name: value lines; exactly the limit passes, one byte more is 431', async () => {
    const limit = 2048;
    const server = await startTestServer('memory', { maxHeaderBytes: limit });
    try {
      const path = '/v1/stream/head-limit';
      expect((await put(`${server.url}${path}`)).status).toBe(201);
      // request line `GET <path> HTTP/1.1\r\n`, `Host: h\r\n`, `X-Pad: <pad>\r\n`
      const fixed = 'GET'.length + path.length + 12 + ('Host'.length + 1 + 4) + ('X-Pad'.length + 4);
      const head = (pad: number) => `GET ${path} HTTP/1.1\r\nHost: h\r\nX-Pad: ${'p'.repeat(pad)}\r\n\r\n`;
      const atLimit = await rawRequest(server.url, head(limit - fixed));
      expect(atLimit.status).toBe(200);
      const over = await rawRequest(server.url, head(limit - fixed + 1));
      expect(over.status).toBe(431);
      expect(over.headers['content-type']).toBe('application/problem+json');
      expect(JSON.parse(over.body)).toMatchObject({ code: 'HEADERS_TOO_LARGE', status: 431 });
      // Far over: Node's parser refuses it before the app sees it, with the same status.
      const far = await rawRequest(server.url, head(limit * 4));
      expect(far.status).toBe(431);
      expect(far.headers['x-content-type-options']).toBe('nosniff');
      // A HEAD refused by the parser gets no body (a HEAD response must not have one), so clients parse it cleanly.
      const head431 = await new Promise<{ status: number; length: string | undefined }>((resolve, reject) => {
        const req = request(
          `${server.url}${path}`,
          { method: 'HEAD', headers: { 'X-Pad': 'p'.repeat(limit * 4) } },
          (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode!, length: res.headers['content-length'] }));
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(head431).toEqual({ status: 431, length: '0' });
      // Still serving.
      expect((await fetch(`${server.url}${path}?offset=-1`)).status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});

describe('stream count limit (--max-streams)', () => {
  for (const backend of ['memory', 'file'] as const) {
    it(`creates up to the limit, then 507; an existing name still matches; a delete frees room (${backend})`, async () => {
      const server = await startTestServer(backend, { maxStreams: 3 });
      await server.storage;
      try {
        const s = (n: string) => `${server.url}/v1/stream/${n}`;
        expect((await put(s('a'))).status).toBe(201);
        expect((await put(s('b'))).status).toBe(201);
        // A fork is a stream too.
        expect((await put(s('c'), { 'Stream-Forked-From': '/v1/stream/a' })).status).toBe(201);
        const refused = await put(s('d'));
        expect(refused.status).toBe(507);
        expect(await refused.json()).toMatchObject({ code: 'TOO_MANY_STREAMS' });
        expect((await fetch(s('d'), { method: 'HEAD' })).status).toBe(404);
        // Idempotent re-create and conflicts are not creations.
        expect((await put(s('b'))).status).toBe(200);
        expect((await put(s('b'), { 'Content-Type': 'application/json' })).status).toBe(409);
        expect((await fetch(s('b'), { method: 'DELETE' })).status).toBe(204);
        expect((await put(s('d'))).status).toBe(201);
        expect((await put(s('e'))).status).toBe(507);
      } finally {
        await server.stop();
      }
    });
  }

  it('never overshoots under concurrent creates, and counts streams that exist at start', async () => {
    const storage = new MemoryStorage();
    await storage.createStream('old', { contentType: 'text/plain' });
    const server = await startTestServer('memory', { maxStreams: 4 }, storage);
    try {
      const statuses = await Promise.all(
        Array.from({ length: 12 }, (_, i) => put(`${server.url}/v1/stream/c${i}`).then((r) => r.status)),
      );
      expect(statuses.filter((s) => s === 201).length).toBe(3);
      expect(statuses.filter((s) => s === 507).length).toBe(9);
      expect((await storage.listStreams()).length).toBe(4);
    } finally {
      await server.stop();
    }
  });
});

describe('live read limit (--max-live-reads)', () => {
  it('holds exactly the limit of long-polls and SSE streams open; one more is 503 with Retry-After', async () => {
    const server = await startTestServer('memory', {
      maxLiveReads: 2,
      longPollTimeoutMs: 10_000,
      sseReconnectMs: 0,
    });
    try {
      const url = `${server.url}/v1/stream/live`;
      expect((await put(url)).status).toBe(201);
      const poll1 = fetch(`${url}?offset=now&live=long-poll`);
      const sseAbort = new AbortController();
      const sse = await fetch(`${url}?offset=now&live=sse`, { signal: sseAbort.signal });
      expect(sse.status).toBe(200);
      await new Promise((r) => setTimeout(r, 50));
      const third = await fetch(`${url}?offset=now&live=long-poll`);
      expect(third.status).toBe(503);
      expect(third.headers.get('retry-after')).toBe('1');
      expect(await third.json()).toMatchObject({ code: 'TOO_MANY_LIVE_READS' });
      expect((await fetch(`${url}?offset=now&live=sse`)).status).toBe(503);
      // Catch-up reads and writes are not live reads.
      expect((await fetch(`${url}?offset=-1`)).status).toBe(200);
      expect(
        (await fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'wake' }))
          .status,
      ).toBe(204);
      const woken = await poll1;
      expect(woken.status).toBe(200);
      expect(await woken.text()).toBe('wake');
      // One slot is free again.
      const again = fetch(`${url}?offset=now&live=long-poll`);
      await new Promise((r) => setTimeout(r, 50));
      expect((await fetch(`${url}?offset=now&live=long-poll`)).status).toBe(503);
      sseAbort.abort();
      await new Promise((r) => setTimeout(r, 100));
      const afterSse = fetch(`${url}?offset=now&live=long-poll`);
      await new Promise((r) => setTimeout(r, 50));
      await fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'again' });
      expect((await again).status).toBe(200);
      expect((await afterSse).status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});

/** A long-poll from a chosen loopback source address; resolves with the status once answered. */
function longPollFrom(url: string, localAddress: string): Promise<{ status: number; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { localAddress }, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          ...(res.headers['retry-after'] === undefined ? {} : { retryAfter: res.headers['retry-after'] }),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('per-client live read limit (--max-live-reads-per-client)', () => {
  it('holds exactly the limit per client address; one more from that client is 429, other clients are served', async () => {
    const server = await startTestServer('memory', { maxLiveReadsPerClient: 2, longPollTimeoutMs: 10_000 });
    await server.storage;
    try {
      const url = `${server.url}/v1/stream/per-client`;
      expect((await put(url)).status).toBe(201);
      const tail = `${url}?offset=now&live=long-poll`;
      const mine = [longPollFrom(tail, '127.0.0.1'), longPollFrom(tail, '127.0.0.1')];
      await new Promise((r) => setTimeout(r, 50));
      expect(await longPollFrom(tail, '127.0.0.1')).toEqual({ status: 429, retryAfter: '1' });
      // Another client address (Linux routes all of 127/8 to loopback) still gets its live reads.
      const theirs = [longPollFrom(tail, '127.0.0.2'), longPollFrom(tail, '127.0.0.2')];
      await new Promise((r) => setTimeout(r, 50));
      expect(await longPollFrom(tail, '127.0.0.2')).toMatchObject({ status: 429 });
      await fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x' });
      for (const p of [...mine, ...theirs]) expect((await p).status).toBe(200);
      // Answered long-polls free their slots.
      const again = longPollFrom(tail, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 50));
      await fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'y' });
      expect((await again).status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});

/** A memory backend whose appends wait until released, so requests can be held inside storage. */
class GatedStorage extends MemoryStorage {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  entered = 0;
  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }
  override async append(name: string, request: AppendRequest): Promise<AppendResult> {
    this.entered++;
    if (this.gate !== undefined) await this.gate;
    return super.append(name, request);
  }
}

const until = async (cond: () => boolean): Promise<void> => {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
};

describe('storage admission (--max-in-flight, --max-queued, --queue-target)', () => {
  it('admits the limit into storage, queues the rest in order, and waiting live reads hold no slot', async () => {
    const storage = new GatedStorage();
    const server = await startTestServer('memory', { maxInFlight: 2, longPollTimeoutMs: 10_000 }, storage);
    try {
      const url = `${server.url}/v1/stream/busy`;
      expect((await put(url)).status).toBe(201);
      // Three long-polls wait at the tail: they are admitted, read, and give their slots back.
      const polls = [1, 2, 3].map(() => fetch(`${url}?offset=now&live=long-poll`));
      await until(() => server.app.load.liveReads === 3);
      await new Promise((r) => setTimeout(r, 20));
      expect(server.app.load.inFlight).toBe(0);
      storage.hold();
      const post = (body: string) =>
        fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body });
      const held = [post('one'), post('two')];
      await until(() => storage.entered === 2);
      // More requests wait their turn instead of being refused.
      const third = post('three');
      const head = fetch(url, { method: 'HEAD' });
      await until(() => server.app.load.queued === 2);
      expect(server.app.load).toMatchObject({ inFlight: 2, queued: 2, shed: 0 });
      // Health stays up while storage is saturated.
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      expect(storage.entered).toBe(2);
      storage.release();
      expect((await Promise.all(held)).map((r) => r.status)).toEqual([204, 204]);
      expect((await third).status).toBe(204);
      expect((await head).status).toBe(200);
      for (const p of await Promise.all(polls)) expect(p.status).toBe(200);
      expect(await (await fetch(`${url}?offset=-1`)).text()).toMatch(/^(onetwo|twoone)three$/);
      expect(server.app.load).toMatchObject({ inFlight: 0, queued: 0, shed: 0 });
    } finally {
      storage.release();
      await server.stop();
    }
  });

  it('sheds with 503 + Retry-After when storage stalls or the queue is full, and serves again after', async () => {
    const storage = new GatedStorage();
    const server = await startTestServer(
      'memory',
      { maxInFlight: 1, maxQueued: 2, queueTargetMs: 50 },
      storage,
    );
    try {
      const url = `${server.url}/v1/stream/stalled`;
      expect((await put(url)).status).toBe(201);
      const post = (body: string) =>
        fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body });
      storage.hold();
      const held = post('one');
      await until(() => storage.entered === 1);
      const queued = [post('two'), post('three')];
      await until(() => server.app.load.queued === 2);
      // The queue is full: refused at once.
      const full = await post('four');
      expect(full.status).toBe(503);
      expect(full.headers.get('retry-after')).toBe('1');
      expect(await full.json()).toMatchObject({ code: 'OVERLOADED' });
      // Storage stays stalled: the waiting requests are answered 503 once the queue has stood above the target for
      // the interval (1 s), not left hanging.
      for (const res of await Promise.all(queued)) {
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('1');
        expect(await res.json()).toMatchObject({ code: 'OVERLOADED' });
      }
      expect(server.app.load).toMatchObject({ inFlight: 1, queued: 0, shed: 3 });
      expect(storage.entered).toBe(1);
      storage.release();
      expect((await held).status).toBe(204);
      expect((await post('five')).status).toBe(204);
      expect(await (await fetch(`${url}?offset=-1`)).text()).toBe('onefive');
    } finally {
      storage.release();
      await server.stop();
    }
  });
});

describe('slow clients (slowloris)', () => {
  it('trickling headers and bodies hold no storage slot and do not delay other clients', {
    timeout: 20_000,
  }, async () => {
    const server = await startTestServer('memory', {
      maxInFlight: 2,
      headersTimeoutMs: 1_500,
      requestTimeoutMs: 3_000,
    });
    const sockets: import('node:net').Socket[] = [];
    const closed: Promise<string>[] = [];
    try {
      const url = `${server.url}/v1/stream/slow`;
      expect((await put(url)).status).toBe(201);
      const { port } = new URL(server.url);
      // 40 clients that never finish their headers and 20 that never finish their bodies, each a byte at a time.
      for (let i = 0; i < 60; i++) {
        const socket = connect(Number(port), '127.0.0.1');
        sockets.push(socket);
        let data = '';
        socket.on('data', (d) => (data += d));
        socket.on('error', () => {});
        closed.push(new Promise((r) => socket.on('close', () => r(data))));
        socket.write(
          i < 40
            ? 'GET /v1/stream/slow?offset=-1 HTTP/1.1\r\nHost: h\r\n'
            : 'POST /v1/stream/slow HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n',
        );
      }
      const trickle = setInterval(() => {
        for (const s of sockets) if (s.writable) s.write('x');
      }, 100);
      try {
        // Meanwhile a good client gets prompt answers, writes included.
        for (let i = 0; i < 20; i++) {
          const started = performance.now();
          const w = await fetch(url, {
            method: 'POST',
            headers: { 'Content-Type': 'text/plain' },
            body: `${i},`,
          });
          expect(w.status).toBe(204);
          const r = await fetch(`${url}?offset=-1`);
          expect(r.status).toBe(200);
          await r.text();
          expect(performance.now() - started).toBeLessThan(1_000);
        }
        // The slow ones are cut off by the timeouts: 408, or closed.
        const replies = await Promise.all(closed);
        for (const reply of replies) expect(reply === '' || /^HTTP\/1\.1 (408|400)/.test(reply)).toBe(true);
      } finally {
        clearInterval(trickle);
      }
      const body = await (await fetch(`${url}?offset=-1`)).text();
      expect(body).toBe(Array.from({ length: 20 }, (_, i) => `${i},`).join(''));
    } finally {
      for (const s of sockets) s.destroy();
      await server.stop();
    }
  });
});
