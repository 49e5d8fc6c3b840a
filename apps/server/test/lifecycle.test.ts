import { request } from 'node:http';
import { connect } from 'node:net';
import type { Storage } from '@streamkeep/storage';
import { isStorageError, StorageError } from '@streamkeep/storage';
import { MemoryStorage } from '@streamkeep/storage-memory';
import { describe, expect, it } from 'vitest';
import { startTestServer } from './helpers.js';

describe('health and readiness', () => {
  it('/healthz is 200 at once; /readyz is 503 until storage is open, while stream requests wait for it', async () => {
    let open!: (s: Storage) => void;
    const pending = new Promise<Storage>((resolve) => (open = resolve));
    const server = await startTestServer('memory', {}, pending);
    try {
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      const notReady = await fetch(`${server.url}/readyz`);
      expect(notReady.status).toBe(503);
      expect(notReady.headers.get('retry-after')).toBe('1');
      expect(await notReady.json()).toEqual({ status: 'starting' });
      const early = fetch(`${server.url}/v1/stream/x`, { method: 'PUT' });
      while (server.app.load.queued < 1) await new Promise((r) => setTimeout(r, 5));
      expect((await fetch(`${server.url}/readyz`)).status).toBe(503);

      open(new MemoryStorage());
      expect((await early).status).toBe(201);
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({
        status: 'ready',
        capabilities: { forks: true, producers: true },
      });
      expect((await fetch(`${server.url}/v1/stream/x`, { method: 'PUT' })).status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});

describe('graceful shutdown', () => {
  it('answers long-polls, ends SSE streams, finishes in-flight writes, then closes storage', async () => {
    const storage = new MemoryStorage();
    const server = await startTestServer('memory', { longPollTimeoutMs: 30_000, sseReconnectMs: 0 }, storage);
    const url = `${server.url}/v1/stream/shutdown`;
    await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'text/plain' } });

    // A long-poll at the tail (would wait 30 s) and an SSE reader.
    const longPoll = fetch(`${url}?offset=now&live=long-poll`);
    const sse = fetch(`${url}?offset=-1&live=sse`).then((r) => r.text());
    // A write whose body is still arriving when shutdown starts.
    const write = new Promise<number>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.write('first half, ');
      setTimeout(() => req.end('second half'), 300);
    });
    await new Promise((r) => setTimeout(r, 100));

    const started = Date.now();
    const closing = server.close();
    await new Promise((r) => setTimeout(r, 20));
    expect(server.app.ready).toBe(false);

    const lp = await longPoll;
    expect(lp.status).toBe(204);
    expect(lp.headers.get('Stream-Up-To-Date')).toBe('true');
    expect(await sse).toContain('event: control');
    expect(await write).toBe(204);
    await closing;
    expect(Date.now() - started).toBeLessThan(2_000);

    // The write landed before storage closed, and storage is closed now.
    const err = await storage.head('shutdown').catch((e: unknown) => e);
    expect(isStorageError(err, 'STORAGE_CLOSED')).toBe(true);
    await server.stop();
  });

  it('refuses new stream requests with 503 once shutdown has begun', async () => {
    const server = await startTestServer('memory', { shutdownTimeoutMs: 1_000 });
    await server.storage;
    expect((await fetch(`${server.url}/v1/stream/slow`, { method: 'PUT' })).status).toBe(201);
    await server.app.shutdown(1_000);
    const res = await fetch(`${server.url}/v1/stream/slow`, { method: 'HEAD' });
    expect(res.status).toBe(503);
    expect(res.headers.get('connection')).toBe('close');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    await server.stop();
  });
});

describe('a storage close that fails', () => {
  it('rejects the server close with its error once everything is closed, so the process can exit non-zero', async () => {
    const storage = new MemoryStorage();
    const release = storage.close.bind(storage);
    const failure = new StorageError('INTERNAL', 'the final checkpoint at close failed (EIO)');
    storage.close = async () => {
      await release();
      throw failure;
    };
    const server = await startTestServer('memory', { shutdownTimeoutMs: 1_000 }, storage);
    expect((await fetch(`${server.url}/v1/stream/kept`, { method: 'PUT' })).status).toBe(201);
    const closing = server.close();
    await expect(closing).rejects.toBe(failure);
    // Idempotent: a second call settles alike, and nothing is left open.
    await expect(server.close()).rejects.toBe(failure);
    expect(server.server.listening).toBe(false);
    expect(isStorageError(await storage.head('kept').catch((e: unknown) => e), 'STORAGE_CLOSED')).toBe(true);
  });
});

describe('slow clients', () => {
  it('drops a client that does not finish its headers within the headers timeout', {
    timeout: 10_000,
  }, async () => {
    const server = await startTestServer('memory', { headersTimeoutMs: 300, requestTimeoutMs: 600 });
    try {
      const { port } = new URL(server.url);
      const started = Date.now();
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => {
          socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
        });
        let data = '';
        socket.on('data', (d) => (data += d));
        socket.on('close', () => resolve(data));
        socket.on('error', reject);
      });
      expect(reply).toMatch(/^HTTP\/1\.1 408/);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await server.stop();
    }
  });

  it('drops a client that trickles its body past the request timeout', { timeout: 10_000 }, async () => {
    const server = await startTestServer('memory', { headersTimeoutMs: 300, requestTimeoutMs: 600 });
    try {
      await fetch(`${server.url}/v1/stream/slow`, {
        method: 'PUT',
        headers: { 'Content-Type': 'text/plain' },
      });
      const { port } = new URL(server.url);
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => {
          socket.write(
            'POST /v1/stream/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nab',
          );
        });
        const trickle = setInterval(() => socket.writable && socket.write('x'), 100);
        let data = '';
        socket.on('data', (d) => (data += d));
        socket.on('close', () => {
          clearInterval(trickle);
          resolve(data);
        });
        socket.on('error', (e) => {
          clearInterval(trickle);
          reject(e);
        });
      });
      expect(reply).toMatch(/408/);
      const head = await fetch(`${server.url}/v1/stream/slow`, { method: 'HEAD' });
      expect(head.headers.get('Stream-Next-Offset')).toBe('0000000000000000_0000000000000000');
    } finally {
      await server.stop();
    }
  });
});

describe('capabilities', () => {
  it('refuses forks, expiry and producers with 501 when the backend lacks them', async () => {
    const inner = new MemoryStorage();
    const capabilities = { ...inner.capabilities, forks: false, expiry: false, producers: false };
    const limited = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'capabilities') return capabilities;
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as Storage;
    const server = await startTestServer('memory', {}, limited);
    try {
      const url = `${server.url}/v1/stream/caps`;
      expect((await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'text/plain' } })).status).toBe(
        201,
      );
      const fork = await fetch(`${url}-fork`, {
        method: 'PUT',
        headers: { 'Stream-Forked-From': '/v1/stream/caps' },
      });
      expect(fork.status).toBe(501);
      expect(await fork.json()).toMatchObject({ code: 'NOT_SUPPORTED' });
      const ttl = await fetch(`${url}-ttl`, {
        method: 'PUT',
        headers: { 'Content-Type': 'text/plain', 'Stream-TTL': '60' },
      });
      expect(ttl.status).toBe(501);
      const producer = await fetch(url, {
        method: 'POST',
        headers: {
          'Content-Type': 'text/plain',
          'Producer-Id': 'p',
          'Producer-Epoch': '0',
          'Producer-Seq': '0',
        },
        body: 'x',
      });
      expect(producer.status).toBe(501);
      const ready = await fetch(`${server.url}/readyz`);
      expect(await ready.json()).toMatchObject({
        capabilities: { forks: false, expiry: false, producers: false },
      });
    } finally {
      await server.stop();
    }
  });
});
