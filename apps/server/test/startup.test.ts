import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Storage } from '@streamkeep/storage';
import {
  FileStorage,
  type FileStorageOptions,
  type QuarantinedStream,
  type RecoveryReport,
} from '@streamkeep/storage-file';
import { MemoryStorage } from '@streamkeep/storage-memory';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openStorage } from '../src/server.js';
import { DEFAULT_SERVER_CONFIG, type ServerConfig } from '../src/settings/index.js';
import { startTestServer } from './helpers.js';

/** A storage promise the test settles. */
function pendingStorage() {
  let open!: (s: Storage) => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<Storage>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

describe('requests during start-up', () => {
  it('wait for storage to open, then are served; /readyz stays 503 meanwhile', async () => {
    const pending = pendingStorage();
    const server = await startTestServer('memory', {}, pending.promise);
    try {
      const url = `${server.url}/v1/stream/early`;
      const put = fetch(url, { method: 'PUT', headers: { 'Content-Type': 'text/plain' } });
      const read = fetch(`${server.url}/v1/stream/old?offset=-1`);
      while (server.app.load.queued < 2) await new Promise((r) => setTimeout(r, 5));
      expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
      const storage = new MemoryStorage();
      await storage.createStream('old', { contentType: 'text/plain', messages: [Buffer.from('kept')] });
      pending.open(storage);
      expect((await put).status).toBe(201);
      const answered = await read;
      expect(answered.status).toBe(200);
      expect(await answered.text()).toBe('kept');
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      expect(server.app.load.queued).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it('wait at most the request timeout, then 503 + Retry-After', async () => {
    const pending = pendingStorage();
    const server = await startTestServer(
      'memory',
      { headersTimeoutMs: 300, requestTimeoutMs: 300 },
      pending.promise,
    );
    try {
      const started = Date.now();
      const res = await fetch(`${server.url}/v1/stream/late`, { method: 'HEAD' });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      const body = await (await fetch(`${server.url}/v1/stream/late`)).json();
      expect(body).toMatchObject({ code: 'SERVICE_UNAVAILABLE', detail: 'storage is not open yet' });
      pending.open(new MemoryStorage());
      await server.storage;
      expect((await fetch(`${server.url}/v1/stream/late`, { method: 'PUT' })).status).toBe(201);
    } finally {
      await server.stop();
    }
  });

  it('get 503 when storage fails to open, waiting or not; /readyz says failed', async () => {
    const pending = pendingStorage();
    const server = await startTestServer('memory', {}, pending.promise);
    try {
      const url = `${server.url}/v1/stream/doomed`;
      const waiting = fetch(url, { method: 'PUT' });
      while (server.app.load.queued < 1) await new Promise((r) => setTimeout(r, 5));
      pending.fail(new Error('disk on fire'));
      const res = await waiting;
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(await res.json()).toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
        detail: 'storage failed to open',
      });
      expect((await fetch(url, { method: 'PUT' })).status).toBe(503);
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: 'failed' });
    } finally {
      await server.stop();
    }
  });

  it('are answered 503 at once when shutdown begins', async () => {
    const pending = pendingStorage();
    const server = await startTestServer('memory', {}, pending.promise);
    try {
      const waiting = fetch(`${server.url}/v1/stream/x`, { method: 'PUT' });
      while (server.app.load.queued < 1) await new Promise((r) => setTimeout(r, 5));
      await server.app.shutdown(100);
      const res = await waiting;
      expect(res.status).toBe(503);
      expect(res.headers.get('connection')).toBe('close');
      expect(server.app.load.queued).toBe(0);
    } finally {
      pending.open(new MemoryStorage());
      await server.stop();
    }
  });
});

/** A pino logger whose lines land in `lines`. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { logger, lines };
}

describe('openStorage logging', () => {
  const dirs: string[] = [];
  const config = async (over: Partial<ServerConfig> = {}): Promise<ServerConfig> => {
    const dataDir = await mkdtemp(join(tmpdir(), 'streamkeep-open-'));
    dirs.push(dataDir);
    return { ...DEFAULT_SERVER_CONFIG, storage: 'file', dataDir, syncOnAppend: false, ...over };
  };
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it('logs one "storage open" line for the memory backend, with the duration', async () => {
    const { logger, lines } = capture();
    const storage = await openStorage({ ...DEFAULT_SERVER_CONFIG, storage: 'memory' }, logger);
    await storage.close();
    expect(lines.map((l) => l.msg)).toEqual(['storage open']);
    expect(lines[0]).toMatchObject({ level: 30, storage: 'memory', durationMs: expect.any(Number) });
  });

  it('logs what a file recovery found: streams, bytes, duration', async () => {
    const cfg = await config();
    const first = await openStorage(cfg);
    await first.createStream('a', { contentType: 'text/plain' });
    await first.createStream('b', { contentType: 'text/plain', messages: [Buffer.from('hello')] });
    await first.close();
    const { logger, lines } = capture();
    const again = await openStorage(cfg, logger);
    await again.close();
    const open = lines.filter((l) => l.msg === 'storage open');
    expect(open).toHaveLength(1);
    expect(open[0]).toMatchObject({
      level: 30,
      storage: 'file',
      rootDir: cfg.dataDir,
      streams: 2,
      tailsTruncated: 0,
      quarantined: 0,
      durationMs: expect.any(Number),
      recoveryMs: expect.any(Number),
    });
  });

  it('passes progress and quarantine callbacks to FileStorage.open and logs each once', async () => {
    const cfg = await config();
    const seen: FileStorageOptions[] = [];
    const damaged: QuarantinedStream = { dir: '/data/streams/0001', name: 'orders', reason: 'bad checksum' };
    const alsoDamaged: QuarantinedStream = {
      dir: '/data/streams/0002',
      name: undefined,
      reason: 'no metadata',
    };
    // Only the fields the server logs: the report is growing while the file backend is redesigned.
    const report: Partial<RecoveryReport> = {
      streams: 3,
      messages: 10,
      logBytes: 4096,
      truncated: [{ name: 'events', bytes: 17 }],
      redone: 2,
      quarantined: [damaged, alsoDamaged],
      durationMs: 12.3,
    };
    vi.spyOn(FileStorage, 'open').mockImplementation(async (options) => {
      seen.push(options);
      options.onProgress?.({
        phase: 'replay',
        streamsDone: 1,
        streamsTotal: 3,
        bytesDone: 100,
        bytesTotal: 300,
        elapsedMs: 2000.4,
      });
      // The storage names one damaged stream as it finds it; the report lists both.
      options.onQuarantine?.(damaged);
      return { recovery: report, capabilities: new MemoryStorage().capabilities } as unknown as FileStorage;
    });
    const { logger, lines } = capture();
    await openStorage(cfg, logger);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ rootDir: cfg.dataDir, syncOnAppend: false });
    expect(seen[0]!.onProgress).toBeTypeOf('function');
    expect(seen[0]!.onQuarantine).toBeTypeOf('function');
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      [30, 'recovering storage'],
      [40, 'stream quarantined: damaged, refused'],
      [40, 'stream quarantined: damaged, refused'],
      [30, 'storage open'],
    ]);
    expect(lines[0]).toMatchObject({ phase: 'replay', streamsDone: 1, streamsTotal: 3, elapsedMs: 2000 });
    expect(lines[1]).toMatchObject({ stream: 'orders', path: '/data/streams/0001', reason: 'bad checksum' });
    expect(lines[2]).toMatchObject({ path: '/data/streams/0002', reason: 'no metadata' });
    expect(lines[3]).toMatchObject({
      streams: 3,
      logBytes: 4096,
      tailsTruncated: 1,
      truncated: [{ name: 'events', bytes: 17 }],
      redone: 2,
      quarantined: 2,
      quarantinedStreams: [
        { stream: 'orders', path: '/data/streams/0001', reason: 'bad checksum' },
        { path: '/data/streams/0002', reason: 'no metadata' },
      ],
      recoveryMs: 12,
    });
  });
});
