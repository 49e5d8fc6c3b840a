import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_REQUEST_HEADERS } from '../src/http/headers.js';
import { type Backend, startTestServer } from './helpers.js';

/**
 * HTTP behaviour the official suite leaves out, on every backend: limits, chunked reads, SSE lifetime, caching
 * headers, CORS, compression, exact JSON bytes.
 */
const BACKENDS: Backend[] = ['memory', 'file'];
const LIMIT = 64 * 1024;
const READ_CHUNK = 1000;

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function raw(
  url: string,
  init: { method?: string; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    // Given as parts, not a URL string, so that the path goes out exactly as written (no dot-segment folding).
    const u = /^http:\/\/([^/:]+):(\d+)(\/.*)$/.exec(url)!;
    const options = {
      host: u[1],
      port: Number(u[2]),
      path: u[3],
      method: init.method ?? 'GET',
      headers: init.headers,
    };
    const req = request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** Reads an SSE response to its end (or until `stopAfterMs`), returning the text and when it ended. */
async function readSse(
  url: string,
  stopAfterMs = 8000,
): Promise<{ text: string; ms: number; ended: boolean }> {
  const started = Date.now();
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), stopAfterMs);
  const res = await fetch(url, { signal: ac.signal });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let ended = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      text += decoder.decode(value, { stream: true });
    }
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err;
  } finally {
    clearTimeout(timer);
  }
  return { text, ms: Date.now() - started, ended };
}

function events(text: string): { type: string; data: string }[] {
  const out: { type: string; data: string }[] = [];
  for (const block of text.split('\n\n')) {
    let type = '';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) type = line.slice(6).trim();
      else if (line.startsWith('data:')) {
        const v = line.slice(5);
        data.push(v.startsWith(' ') ? v.slice(1) : v);
      }
    }
    if (type !== '') out.push({ type, data: data.join('\n') });
  }
  return out;
}

describe.each(BACKENDS)('HTTP extras on the %s backend', (backend) => {
  let base = '';
  let origin = '';
  let stop: () => Promise<void>;
  let n = 0;
  const fresh = () => `${base}/s-${backend}-${++n}-${Date.now()}`;
  const put = (
    url: string,
    contentType = 'text/plain',
    body?: string,
    headers: Record<string, string> = {},
  ) => fetch(url, { method: 'PUT', headers: { 'Content-Type': contentType, ...headers }, body });
  const post = (url: string, body: string | undefined, headers: Record<string, string> = {}) =>
    fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain', ...headers }, body });

  beforeAll(async () => {
    const s = await startTestServer(backend, {
      maxBodyBytes: LIMIT,
      maxReadBytes: READ_CHUNK,
      sseKeepAliveMs: 150,
      sseReconnectMs: 1500,
      longPollTimeoutMs: 500,
    });
    await s.storage;
    origin = s.url;
    base = `${s.url}/v1/stream`;
    stop = s.stop;
  });
  afterAll(() => stop());

  describe('request body limit', () => {
    it('refuses a chunked body with 413 while it streams in, without reading or storing it whole', async () => {
      const url = fresh();
      await put(url);
      const total = 64 * LIMIT;
      const result = await new Promise<{ status: number; body: string; sent: number }>((resolve, reject) => {
        const req = request(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' } });
        const chunk = Buffer.alloc(16 * 1024, 0x61);
        let sent = 0;
        let stopped = false;
        const pump = (): void => {
          while (!stopped && sent < total) {
            sent += chunk.length;
            if (!req.write(chunk)) {
              req.once('drain', pump);
              return;
            }
          }
          req.end();
        };
        req.on('response', (res) => {
          stopped = true;
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode!, body, sent }));
        });
        req.on('error', (err) => (stopped ? undefined : reject(err)));
        pump();
      });
      expect(result.status).toBe(413);
      expect(JSON.parse(result.body)).toMatchObject({ status: 413, code: 'BODY_TOO_LARGE' });
      expect(result.sent).toBeLessThan(total);
      const head = await fetch(url, { method: 'HEAD' });
      expect(head.headers.get('Stream-Next-Offset')).toBe('0000000000000000_0000000000000000');
    });

    it('refuses a declared Content-Length over the limit, and accepts the limit itself', async () => {
      const url = fresh();
      await put(url);
      const over = await post(url, 'x'.repeat(LIMIT + 1));
      expect(over.status).toBe(413);
      expect(over.headers.get('content-type')).toBe('application/problem+json');
      const at = await post(url, 'x'.repeat(LIMIT));
      expect(at.status).toBe(204);
    });

    it('answers Expect: 100-continue for an oversized body with 413, without inviting the body', async () => {
      const url = fresh();
      await put(url);
      const { hostname, port, pathname } = new URL(url);
      const outcome = await new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
        const req = request({
          host: hostname,
          port,
          path: pathname,
          method: 'POST',
          headers: {
            'Content-Type': 'text/plain',
            'Content-Length': String(LIMIT * 4),
            Expect: '100-continue',
          },
        });
        let continued = false;
        req.on('continue', () => {
          continued = true;
          req.end(Buffer.alloc(LIMIT * 4));
        });
        req.on('response', (res) => {
          res.resume();
          resolve({ status: res.statusCode!, continued });
          req.destroy();
        });
        req.on('error', (err) => (continued ? undefined : reject(err)));
        req.flushHeaders();
      });
      expect(outcome).toEqual({ status: 413, continued: false });
    });

    it('applies the limit to PUT bodies too', async () => {
      const res = await put(fresh(), 'text/plain', 'y'.repeat(LIMIT + 1));
      expect(res.status).toBe(413);
    });
  });

  describe('chunked catch-up reads', () => {
    it('cuts reads at the maximum chunk size; Stream-Up-To-Date and Stream-Closed only at the tail', async () => {
      const url = fresh();
      await put(url);
      const parts = Array.from({ length: 10 }, (_, i) => String(i).repeat(300));
      for (const p of parts) expect((await post(url, p)).status).toBe(204);
      await post(url, undefined, { 'Stream-Closed': 'true' });
      let offset = '-1';
      let all = '';
      const pages: { upToDate: string | null; closed: string | null; size: number }[] = [];
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${url}?offset=${offset}`);
        const body = await res.text();
        pages.push({
          upToDate: res.headers.get('Stream-Up-To-Date'),
          closed: res.headers.get('Stream-Closed'),
          size: body.length,
        });
        all += body;
        offset = res.headers.get('Stream-Next-Offset')!;
        if (res.headers.get('Stream-Up-To-Date') !== null) break;
      }
      expect(all).toBe(parts.join(''));
      expect(pages.length).toBe(4);
      for (const p of pages.slice(0, -1)) {
        expect(p).toEqual({ upToDate: null, closed: null, size: 900 });
      }
      expect(pages.at(-1)).toEqual({ upToDate: 'true', closed: 'true', size: 300 });
    });

    it('keeps every JSON chunk a standalone array', async () => {
      const url = fresh();
      const values = Array.from({ length: 12 }, (_, i) => ({ i, pad: 'p'.repeat(200) }));
      await put(url, 'application/json', JSON.stringify(values));
      let offset = '-1';
      const seen: unknown[] = [];
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${url}?offset=${offset}`);
        const chunk = (await res.json()) as unknown[];
        expect(Array.isArray(chunk)).toBe(true);
        seen.push(...chunk);
        offset = res.headers.get('Stream-Next-Offset')!;
        if (res.headers.get('Stream-Up-To-Date') !== null) break;
      }
      expect(seen).toEqual(values);
    });

    it('returns a message larger than the chunk size whole rather than stalling', async () => {
      const url = fresh();
      await put(url, 'text/plain', 'z'.repeat(5 * READ_CHUNK));
      const res = await fetch(`${url}?offset=-1`);
      expect((await res.text()).length).toBe(5 * READ_CHUNK);
      expect(res.headers.get('Stream-Up-To-Date')).toBe('true');
    });
  });

  describe('SSE lifetime', () => {
    it('sends keep-alive comments while idle and closes cleanly after the reconnect interval', async () => {
      const url = fresh();
      await put(url, 'text/plain', 'hello');
      const { text, ms, ended } = await readSse(`${url}?offset=-1&live=sse`);
      expect(ended).toBe(true);
      expect(ms).toBeGreaterThanOrEqual(1400);
      expect(ms).toBeLessThan(5000);
      expect(text).toContain(': keep-alive\n\n');
      expect(text.endsWith('\n\n')).toBe(true);
      const evs = events(text);
      expect(evs[0]).toEqual({ type: 'data', data: 'hello' });
      const control = JSON.parse(evs[1]!.data);
      expect(control.upToDate).toBe(true);
      expect(control.streamClosed).toBeUndefined();
      // The client resumes from the last control event's offset and sees no duplicates.
      const again = await fetch(`${url}?offset=${control.streamNextOffset}`);
      expect(await again.text()).toBe('');
    });

    it('delivers an append-and-close wake-up as data, then the closing control event, then ends', async () => {
      const url = fresh();
      await put(url);
      const reading = readSse(`${url}?offset=-1&live=sse`);
      await new Promise((r) => setTimeout(r, 100));
      await post(url, 'final', { 'Stream-Closed': 'true' });
      const { text, ended, ms } = await reading;
      expect(ended).toBe(true);
      expect(ms).toBeLessThan(1400);
      const evs = events(text);
      const last = evs.at(-1)!;
      expect(last.type).toBe('control');
      expect(JSON.parse(last.data)).toMatchObject({ streamClosed: true, upToDate: true });
      expect(evs.at(-2)).toEqual({ type: 'data', data: 'final' });
    });

    it('preserves a payload that begins with a space, and sets X-Accel-Buffering: no', async () => {
      const url = fresh();
      await put(url, 'text/plain', '  two spaces', { 'Stream-Closed': 'true' });
      const res = await fetch(`${url}?offset=-1&live=sse`);
      expect(res.headers.get('x-accel-buffering')).toBe('no');
      const evs = events(await res.text());
      expect(evs[0]).toEqual({ type: 'data', data: '  two spaces' });
    });
  });

  describe('Cache-Control', () => {
    it('follows §10 for every kind of response', async () => {
      const url = fresh();
      const created = await put(url, 'text/plain', 'abc');
      expect(created.headers.get('cache-control')).toBe('no-store');
      const catchUp = await fetch(`${url}?offset=-1`);
      expect(catchUp.headers.get('cache-control')).toBe('public, max-age=60, stale-while-revalidate=300');
      const now = await fetch(`${url}?offset=now`);
      expect(now.headers.get('cache-control')).toBe('no-store');
      expect(now.headers.get('etag')).toBeNull();
      const head = await fetch(url, { method: 'HEAD' });
      expect(head.headers.get('cache-control')).toBe('no-store');
      const lp200 = await fetch(`${url}?offset=-1&live=long-poll`);
      expect(lp200.status).toBe(200);
      expect(lp200.headers.get('cache-control')).toBe('public, max-age=60, stale-while-revalidate=300');
      const lp204 = await fetch(`${url}?offset=now&live=long-poll`);
      expect(lp204.status).toBe(204);
      expect(lp204.headers.get('cache-control')).toBe('no-store');
      const appended = await post(url, 'd');
      expect(appended.headers.get('cache-control')).toBe('no-store');
      const missing = await fetch(`${base}/missing-${Date.now()}`);
      expect(missing.status).toBe(404);
      expect(missing.headers.get('cache-control')).toBe('no-store');
      const ac = new AbortController();
      const sse = await fetch(`${url}?offset=now&live=sse`, { signal: ac.signal });
      expect(sse.headers.get('cache-control')).toBe('no-cache');
      ac.abort();
      const deleted = await fetch(url, { method: 'DELETE' });
      expect(deleted.headers.get('cache-control')).toBe('no-store');
    });
  });

  describe('CORS and security headers', () => {
    it('allows every protocol request header in preflight, If-None-Match included', async () => {
      const res = await fetch(fresh(), {
        method: 'OPTIONS',
        headers: {
          Origin: 'https://app.example',
          'Access-Control-Request-Method': 'POST',
          'Access-Control-Request-Headers': 'if-none-match, producer-id',
        },
      });
      expect(res.status).toBe(204);
      const allowed = res.headers.get('access-control-allow-headers')!.toLowerCase().split(/,\s*/);
      for (const h of PROTOCOL_REQUEST_HEADERS) expect(allowed).toContain(h);
      expect(res.headers.get('access-control-allow-methods')).toContain('DELETE');
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    });

    it('exposes every protocol response header, Stream-SSE-Data-Encoding included, on errors too', async () => {
      const res = await fetch(`${base}/nope-${Date.now()}`);
      expect(res.status).toBe(404);
      const exposed = res.headers.get('access-control-expose-headers')!.toLowerCase();
      for (const h of [
        'stream-next-offset',
        'stream-cursor',
        'stream-up-to-date',
        'stream-closed',
        'stream-sse-data-encoding',
        'producer-epoch',
        'producer-seq',
        'producer-expected-seq',
        'producer-received-seq',
        'etag',
        'location',
      ]) {
        expect(exposed).toContain(h);
      }
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(await res.json()).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    });

    it('answers unknown routes and methods with problems carrying the security headers', async () => {
      const other = await fetch(`${origin}/elsewhere`);
      expect(other.status).toBe(404);
      expect(other.headers.get('x-content-type-options')).toBe('nosniff');
      const patch = await fetch(fresh(), { method: 'PATCH' });
      expect(patch.status).toBe(405);
      expect(patch.headers.get('allow')).toContain('POST');
    });
  });

  describe('protocol details', () => {
    it('compares Stream-Closed case-insensitively and ignores other values', async () => {
      const url = fresh();
      await put(url);
      const ignored = await post(url, 'a', { 'Stream-Closed': 'yes' });
      expect(ignored.status).toBe(204);
      expect(ignored.headers.get('Stream-Closed')).toBeNull();
      const closed = await post(url, undefined, { 'Stream-Closed': 'TRUE' });
      expect(closed.status).toBe(204);
      expect(closed.headers.get('Stream-Closed')).toBe('true');
      const after = await post(url, 'b');
      expect(after.status).toBe(409);
      expect(after.headers.get('Stream-Closed')).toBe('true');
      expect(after.headers.get('Stream-Next-Offset')).toBe(closed.headers.get('Stream-Next-Offset'));
    });

    it('answers a producer duplicate with 204, the stored epoch and seq, and Stream-Next-Offset', async () => {
      const url = fresh();
      await put(url);
      const producer = (seq: string) => ({ 'Producer-Id': 'w', 'Producer-Epoch': '2', 'Producer-Seq': seq });
      const first = await post(url, 'a', producer('0'));
      expect(first.status).toBe(200);
      const second = await post(url, 'b', producer('1'));
      expect(second.status).toBe(200);
      const dup = await post(url, 'a', producer('0'));
      expect(dup.status).toBe(204);
      expect(dup.headers.get('Producer-Epoch')).toBe('2');
      expect(dup.headers.get('Producer-Seq')).toBe('1');
      expect(dup.headers.get('Stream-Next-Offset')).toBe(second.headers.get('Stream-Next-Offset'));
      const gap = await post(url, 'c', producer('5'));
      expect([
        gap.status,
        gap.headers.get('Producer-Expected-Seq'),
        gap.headers.get('Producer-Received-Seq'),
      ]).toEqual([409, '2', '5']);
      const stale = await post(url, 'd', { 'Producer-Id': 'w', 'Producer-Epoch': '1', 'Producer-Seq': '0' });
      expect([stale.status, stale.headers.get('Producer-Epoch')]).toEqual([403, '2']);
      expect(await (await fetch(`${url}?offset=-1`)).text()).toBe('ab');
    });

    it('base64-encodes SSE for binary types and reports closure at once for offset=now', async () => {
      const url = fresh();
      const bytes = Buffer.from([0, 255, 10, 13, 32]);
      await fetch(url, {
        method: 'PUT',
        headers: { 'Content-Type': 'application/octet-stream', 'Stream-Closed': 'true' },
        body: bytes,
      });
      const res = await fetch(`${url}?offset=-1&live=sse`);
      expect(res.headers.get('stream-sse-data-encoding')).toBe('base64');
      const evs = events(await res.text());
      expect(Buffer.from(evs[0]!.data, 'base64')).toEqual(bytes);
      const now = await fetch(`${url}?offset=now&live=sse`);
      const only = events(await now.text());
      expect(only).toHaveLength(1);
      expect(JSON.parse(only[0]!.data)).toMatchObject({ upToDate: true, streamClosed: true });
    });

    it('never rejects an empty-body close on its Content-Type (§5.2)', async () => {
      const url = fresh();
      await put(url);
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'garbage', 'Stream-Closed': 'true' },
      });
      expect(res.status).toBe(204);
      expect(res.headers.get('Stream-Closed')).toBe('true');
    });

    it('ends an SSE response cleanly when its stream is deleted', async () => {
      const url = fresh();
      await put(url, 'text/plain', 'x');
      const reading = readSse(`${url}?offset=-1&live=sse`);
      await new Promise((r) => setTimeout(r, 100));
      expect((await fetch(url, { method: 'DELETE' })).status).toBe(204);
      const { ended, ms } = await reading;
      expect(ended).toBe(true);
      expect(ms).toBeLessThan(1400);
    });

    it('changes the ETag when the stream closes and answers 304 only to a matching If-None-Match', async () => {
      const url = fresh();
      await put(url, 'text/plain', 'abc');
      const first = await fetch(`${url}?offset=-1`);
      const etag = first.headers.get('etag')!;
      expect(etag).toMatch(/^"[0-9a-z]+:-1:[0-9a-f]{16}_[0-9a-f]{16}"$/);
      const hit = await fetch(`${url}?offset=-1`, { headers: { 'If-None-Match': etag } });
      expect(hit.status).toBe(304);
      expect(await hit.text()).toBe('');
      await post(url, undefined, { 'Stream-Closed': 'true' });
      const closed = await fetch(`${url}?offset=-1`, { headers: { 'If-None-Match': etag } });
      expect(closed.status).toBe(200);
      expect(closed.headers.get('etag')).toBe(`${etag.slice(0, -1)}:c"`);
    });

    it('gzips large reads for clients that ask, asynchronously, and leaves others alone', async () => {
      const url = fresh();
      const body = 'compress me '.repeat(200);
      await put(url, 'text/plain', body);
      const zipped = await raw(`${url}?offset=-1`, { headers: { 'Accept-Encoding': 'gzip' } });
      expect(zipped.headers['content-encoding']).toBe('gzip');
      expect(zipped.headers.vary).toContain('Accept-Encoding');
      expect(gunzipSync(zipped.body).toString()).toBe(body);
      const plain = await raw(`${url}?offset=-1`);
      expect(plain.headers['content-encoding']).toBeUndefined();
      expect(plain.body.toString()).toBe(body);
      const small = fresh();
      await put(small, 'text/plain', 'tiny');
      const tiny = await raw(`${small}?offset=-1`, { headers: { 'Accept-Encoding': 'gzip' } });
      expect(tiny.headers['content-encoding']).toBeUndefined();
    });

    it('stores JSON values byte for byte (no re-serialisation)', async () => {
      const url = fresh();
      await put(url, 'application/json');
      await post(url, '[12345678901234567890, {"b":1,"a":2}, 1.50]', { 'Content-Type': 'application/json' });
      const res = await fetch(`${url}?offset=-1`);
      expect(await res.text()).toBe('[12345678901234567890,{"b":1,"a":2},1.50]');
    });

    it('answers 201 with an absolute Location and refuses malformed media types', async () => {
      const url = fresh();
      const res = await put(url);
      expect(res.status).toBe(201);
      expect(res.headers.get('location')).toBe(url);
      const bad = await fetch(fresh(), { method: 'PUT', headers: { 'Content-Type': 'not a type' } });
      expect(bad.status).toBe(400);
    });

    it('treats closure as part of a PUT match (§5.1)', async () => {
      const url = fresh();
      await put(url);
      expect((await put(url)).status).toBe(200);
      await post(url, undefined, { 'Stream-Closed': 'true' });
      expect((await put(url)).status).toBe(409);
      const closedMatch = await put(url, 'text/plain', undefined, { 'Stream-Closed': 'true' });
      expect(closedMatch.status).toBe(200);
      expect(closedMatch.headers.get('Stream-Closed')).toBe('true');
      expect((await put(url, 'application/json', undefined, { 'Stream-Closed': 'true' })).status).toBe(409);
    });

    it('keeps the precedence closed > content type > body on invalid JSON appends', async () => {
      const url = fresh();
      await put(url, 'application/json');
      const json = { 'Content-Type': 'application/json' };
      expect((await post(url, '[1,', json)).status).toBe(400);
      expect((await post(url, '[]', json)).status).toBe(400);
      await post(url, undefined, { 'Stream-Closed': 'true' });
      const closed = await post(url, '[1,', json);
      expect(closed.status).toBe(409);
      expect(closed.headers.get('Stream-Closed')).toBe('true');
    });

    it('rejects names that try to traverse or are malformed', async () => {
      for (const bad of ['a/../b', '%2e%2e', 'a//b', '%E0%A4%A']) {
        // Sent raw: fetch would normalise the dot segments away.
        const res = await raw(`${base}/${bad}`, { method: 'PUT', headers: { 'Content-Type': 'text/plain' } });
        expect(res.status, bad).toBe(400);
      }
    });
  });
});
