import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FileStorage } from '@streamkeep/storage-file';
// @ts-expect-error: the package ships no type declarations.
import madge from 'madge';
// @ts-expect-error: the package ships no type declarations.
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { type Logger, pino } from 'pino';
import type * as PromClient from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { ServerMetrics } from '../src/metrics.js';
import { openStorage } from '../src/server.js';
import { parseServerConfig } from '../src/settings/index.js';
import { startTestServer } from './helpers.js';

const Registry = createRequire(import.meta.url)('prom-client/lib/registry') as typeof PromClient.Registry;

/** One metric family as `parse-prometheus-text-format` returns it. */
interface Family {
  name: string;
  type: string;
  metrics: {
    labels?: Record<string, string>;
    value?: string;
    count?: string;
    buckets?: Record<string, string>;
  }[];
}

async function scrape(base: string): Promise<Map<string, Family>> {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const families = parsePrometheusTextFormat(await res.text()) as Family[];
  return new Map(families.map((f) => [f.name, f]));
}

function sample(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name);
  expect(family, name).toBeDefined();
  const m = family!.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  expect(m, `${name} ${JSON.stringify(labels)}`).toBeDefined();
  return Number(m!.value ?? m!.count);
}

/** A pino logger whose lines land in `lines`. */
function capture(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) }) as Logger;
  return { logger, lines };
}

async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(await check()).toBe(true);
}

describe('/metrics', () => {
  it('serves requests, appends, live reads, queue and storage state in the Prometheus text format', async () => {
    const server = await startTestServer('file');
    try {
      const s = `${server.url}/v1/stream/metered`;
      const text = { 'Content-Type': 'text/plain' };
      expect((await fetch(s, { method: 'PUT', headers: text })).status).toBe(201);
      for (const body of ['hello ', 'world']) {
        expect((await fetch(s, { method: 'POST', headers: text, body })).status).toBe(204);
      }
      expect((await fetch(`${s}?offset=-1`)).status).toBe(200);
      expect((await fetch(`${server.url}/v1/stream/missing`)).status).toBe(404);
      const parked = fetch(`${s}?offset=now&live=long-poll`);
      await until(() => server.app.load.liveReads === 1);

      const m = await scrape(server.url);
      expect(
        sample(m, 'streamkeep_http_requests_total', { route: 'stream', method: 'POST', status: '204' }),
      ).toBe(2);
      expect(
        sample(m, 'streamkeep_http_requests_total', { route: 'stream', method: 'PUT', status: '201' }),
      ).toBe(1);
      expect(
        sample(m, 'streamkeep_http_requests_total', { route: 'stream', method: 'GET', status: '404' }),
      ).toBe(1);
      // The parser drops the labels of labelled histograms (it merges their series): only their shape is checked.
      const duration = m.get('streamkeep_http_request_duration_seconds');
      expect(duration?.type).toBe('HISTOGRAM');
      expect(duration!.metrics.every((x) => Number(x.buckets?.['+Inf']) >= 1)).toBe(true);
      expect(sample(m, 'streamkeep_appends_total')).toBe(2);
      expect(sample(m, 'streamkeep_appended_messages_total')).toBe(2);
      expect(sample(m, 'streamkeep_appended_bytes_total')).toBe('hello world'.length);
      expect(sample(m, 'streamkeep_live_reads')).toBe(1);
      expect(sample(m, 'streamkeep_requests_queued')).toBe(0);
      expect(sample(m, 'streamkeep_requests_shed_total')).toBe(0);
      expect(sample(m, 'streamkeep_storage_open')).toBe(1);
      expect(sample(m, 'streamkeep_storage_recovery_seconds')).toBeGreaterThanOrEqual(0);
      // Stream names never become label values.
      expect(JSON.stringify([...m.values()])).not.toContain('metered');

      expect((await fetch(s, { method: 'POST', headers: text, body: '!' })).status).toBe(204);
      expect((await parked).status).toBe(200);
      const after = await scrape(server.url);
      expect(
        sample(after, 'streamkeep_http_requests_total', {
          route: 'stream_long_poll',
          method: 'GET',
          status: '200',
        }),
      ).toBe(1);
      expect(
        sample(after, 'streamkeep_http_requests_total', { route: 'metrics', method: 'GET', status: '200' }),
      ).toBe(1);
      expect(sample(after, 'streamkeep_live_reads')).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it('records commit groups reported through the onCommit observer, and is off with --no-metrics', async () => {
    const metrics = new ServerMetrics();
    metrics.commit({ entries: 3, bytes: 300, syncMs: 2 });
    metrics.commit({ entries: 1, bytes: 10, syncMs: 0 });
    const families = new Map(
      (parsePrometheusTextFormat(await metrics.text()) as Family[]).map((f) => [f.name, f] as const),
    );
    expect(sample(families, 'streamkeep_storage_commit_entries')).toBe(2);
    expect(families.get('streamkeep_storage_commit_entries')!.metrics[0]!.buckets!['4']).toBe('2');
    expect(families.get('streamkeep_storage_commit_bytes')!.metrics[0]!.buckets!['256']).toBe('1');
    expect(sample(families, 'streamkeep_storage_sync_seconds')).toBe(2);

    // End to end: the backends the server opens report their commit groups (here the file backend, synced).
    const wired = new ServerMetrics();
    const dataDir = await mkdtemp(join(tmpdir(), 'sk-ops-commit-'));
    const storage = await openStorage(
      parseServerConfig(['--storage', 'file', '--data-dir', dataDir, '--sync-on-append']),
      undefined,
      wired,
    );
    try {
      await storage.createStream('c', { contentType: 'text/plain' });
      await Promise.all(
        [1, 2, 3].map(() =>
          storage.append('c', { messages: [new Uint8Array(5)], contentType: 'text/plain' }),
        ),
      );
    } finally {
      await storage.close();
      await rm(dataDir, { recursive: true, force: true });
    }
    const got = new Map(
      (parsePrometheusTextFormat(await wired.text()) as Family[]).map((f) => [f.name, f] as const),
    );
    expect(Number(got.get('streamkeep_storage_commit_entries')!.metrics[0]!.count)).toBeGreaterThanOrEqual(1);
    expect(
      Number(got.get('streamkeep_storage_commit_bytes')!.metrics[0]!.buckets!['+Inf']),
    ).toBeGreaterThanOrEqual(1);

    const off = await startTestServer('memory', { metrics: false });
    try {
      expect((await fetch(`${off.url}/metrics`)).status).toBe(404);
    } finally {
      await off.stop();
    }
  });
});

describe('process metrics', () => {
  it('adds the process and Node.js figures, prefixed, when asked for (as the binary does)', async () => {
    const metrics = new ServerMetrics({ processMetrics: true });
    metrics.appended(2, 20);
    const families = new Map(
      (parsePrometheusTextFormat(await metrics.text()) as Family[]).map((f) => [f.name, f] as const),
    );
    // CPU time of the process since it started.
    expect(sample(families, 'streamkeep_process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(0);
    expect(sample(families, 'streamkeep_nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(sample(families, 'streamkeep_appended_bytes_total')).toBe(20);
    // Counters tallied between scrapes are added once, not again on the next scrape.
    const again = new Map(
      (parsePrometheusTextFormat(await metrics.text()) as Family[]).map((f) => [f.name, f] as const),
    );
    expect(sample(again, 'streamkeep_appends_total')).toBe(1);
    expect(sample(again, 'streamkeep_appended_messages_total')).toBe(2);
    expect(
      new ServerMetrics().registry.getSingleMetric('streamkeep_nodejs_heap_size_used_bytes'),
    ).toBeUndefined();
  });

  it('registers them at the first scrape, with CPU time counted from the start of the process', async () => {
    const registered: string[] = [];
    const register = Registry.prototype.registerMetric;
    const spy = vi.spyOn(Registry.prototype, 'registerMetric').mockImplementation(function (
      this: PromClient.Registry,
      metric,
    ) {
      registered.push((metric as unknown as { name: string }).name);
      register.call(this, metric);
    });
    try {
      const metrics = new ServerMetrics({ processMetrics: true });
      expect(registered).toContain('streamkeep_appends_total');
      expect(registered.filter((n) => /^streamkeep_(nodejs|process)_/.test(n))).toEqual([]);
      const before = process.cpuUsage();
      const families = new Map(
        (parsePrometheusTextFormat(await metrics.text()) as Family[]).map((f) => [f.name, f] as const),
      );
      expect(registered).toContain('streamkeep_nodejs_eventloop_lag_seconds');
      // The CPU this test process spent before the metrics existed (well over the kernel's tick) is counted.
      expect(sample(families, 'streamkeep_process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(
        Math.floor(before.user / 1e4) / 100,
      );
      expect(before.user).toBeGreaterThan(10_000);

      // A registry passed in may be scraped by its owner directly: the process metrics are in it at once.
      const own = new Registry();
      new ServerMetrics({ registry: own, processMetrics: true });
      expect(own.getSingleMetric('streamkeep_process_cpu_seconds_total')).toBeDefined();
    } finally {
      spy.mockRestore();
    }
  });
});

describe('request logs and X-Request-Id', () => {
  it('logs one info line per request with its id and client address, and echoes the id', async () => {
    const { logger, lines } = capture();
    const server = await startTestServer('memory', {}, undefined, logger);
    try {
      const s = `${server.url}/v1/stream/logged`;
      const given = await fetch(s, { method: 'PUT', headers: { 'X-Request-Id': 'trace-42.a:b' } });
      expect(given.headers.get('x-request-id')).toBe('trace-42.a:b');
      const fresh = await fetch(`${s}?offset=-1`);
      const id = fresh.headers.get('x-request-id');
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      // Not a valid id (spaces, too long): replaced, never echoed.
      for (const bad of ['has spaces', 'x'.repeat(200)]) {
        const r = await fetch(s, { method: 'HEAD', headers: { 'X-Request-Id': bad } });
        expect(r.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      }
      // Errors carry it too.
      const missing = await fetch(`${server.url}/v1/stream/nope`, { headers: { 'X-Request-Id': 'err-1' } });
      expect([missing.status, missing.headers.get('x-request-id')]).toEqual([404, 'err-1']);

      await until(() => lines.filter((l) => l.msg === 'request completed').length >= 5);
      const requests = lines.filter((l) => l.msg === 'request completed');
      const put = requests.find((l) => (l.req as { id: string }).id === 'trace-42.a:b');
      expect(put).toMatchObject({
        level: 30,
        reqId: 'trace-42.a:b',
        req: { method: 'PUT', url: '/v1/stream/logged', remoteAddress: '127.0.0.1' },
        res: { statusCode: 201 },
      });
      expect(typeof put!.responseTime).toBe('number');
      expect(requests.some((l) => l.reqId === id)).toBe(true);
      // No headers in the logs (they may carry credentials).
      expect(JSON.stringify(requests)).not.toContain('user-agent');
    } finally {
      await server.stop();
    }
  });

  it('logs no request lines with --no-log-requests, and still echoes a given id', async () => {
    const { logger, lines } = capture();
    const server = await startTestServer('memory', { logRequests: false }, undefined, logger);
    try {
      const r = await fetch(`${server.url}/v1/stream/quiet`, {
        method: 'PUT',
        headers: { 'X-Request-Id': 'q-1' },
      });
      expect(r.headers.get('x-request-id')).toBe('q-1');
      const none = await fetch(`${server.url}/v1/stream/quiet`, { method: 'HEAD' });
      expect(none.headers.get('x-request-id')).toBe(null);
      expect(lines.filter((l) => String(l.msg).startsWith('request'))).toEqual([]);
    } finally {
      await server.stop();
    }
  });
});

describe('content negotiation', () => {
  it('gzips only for clients that prefer gzip to identity', async () => {
    const server = await startTestServer('memory');
    try {
      const s = `${server.url}/v1/stream/negotiated`;
      await fetch(s, { method: 'PUT', headers: { 'Content-Type': 'text/plain' }, body: 'z'.repeat(4096) });
      const cases: [string, string | null][] = [
        ['gzip', 'gzip'],
        ['gzip, deflate, br', 'gzip'],
        ['*', 'gzip'],
        ['gzip;q=0, *;q=1', null],
        ['*;q=1, gzip;q=0', null],
        ['identity', null],
        ['br', null],
        ['identity;q=1, gzip;q=0.5', null],
      ];
      for (const [acceptEncoding, expected] of cases) {
        // node:http so that the client does not add or decode encodings of its own.
        const res = await new Promise<import('node:http').IncomingMessage>((ok, fail) => {
          import('node:http').then(({ get }) =>
            get(`${s}?offset=-1`, { headers: { 'Accept-Encoding': acceptEncoding } }, ok).on('error', fail),
          );
        });
        res.resume();
        expect(res.statusCode, acceptEncoding).toBe(200);
        expect(res.headers['content-encoding'] ?? null, acceptEncoding).toBe(expected);
        expect(res.headers.vary, acceptEncoding).toMatch(/Accept-Encoding/);
      }
    } finally {
      await server.stop();
    }
  });
});

describe('quarantined streams', () => {
  it('warn once with stream, path and reason, and read as 404 CORRUPTED, not 500', async () => {
    // Two records written by the file backend itself; the damage goes in the first, in the middle of the log (a
    // damaged last record would read as a torn tail and be cut).
    const dataDir = await mkdtemp(join(tmpdir(), 'streamkeep-quarantine-'));
    const seed = await FileStorage.open({ rootDir: dataDir, syncOnAppend: false });
    const text = 'text/plain';
    await seed.createStream('damaged', { contentType: text, messages: [Buffer.from('precious bytes')] });
    await seed.append('damaged', { messages: [Buffer.from('more')], contentType: text });
    await seed.createStream('intact', { contentType: text });
    await seed.close();
    const s = (base: string) => `${base}/v1/stream/damaged`;

    const logs = join(dataDir, 'logs');
    const files: string[] = [];
    for (const sub of await readdir(logs))
      for (const f of await readdir(join(logs, sub))) files.push(join(logs, sub, f));
    expect(files).toHaveLength(1);
    const bytes = await readFile(files[0]!);
    bytes[20]! ^= 0x40;
    await writeFile(files[0]!, bytes);

    const { logger, lines } = capture();
    const second = await startTestServer('file', { dataDir }, undefined, logger);
    try {
      await second.storage;
      expect(lines.some((l) => l.msg === 'storage open')).toBe(true);
      expect(lines.filter((l) => l.msg === 'stream quarantined: damaged, refused')).toEqual([]);
      for (let i = 0; i < 2; i++) {
        const r = await fetch(`${s(second.url)}?offset=-1`);
        expect(r.status).toBe(404);
        expect(await r.json()).toMatchObject({
          code: 'CORRUPTED',
          detail: expect.stringMatching(/quarantined/),
        });
      }
      expect((await fetch(`${second.url}/v1/stream/intact?offset=-1`)).status).toBe(200);
      const warnings = lines.filter((l) => l.msg === 'stream quarantined: damaged, refused');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({
        level: 40,
        stream: 'damaged',
        path: files[0],
        reason: expect.any(String),
      });
      expect(lines.filter((l) => l.level === 50)).toEqual([]);
    } finally {
      await second.stop();
    }
  });
});

describe('module structure', () => {
  it('has no import cycles (type imports included)', async () => {
    const pkgDir = resolve(import.meta.dirname, '..');
    const graph = await madge(join(pkgDir, 'src'), {
      fileExtensions: ['ts'],
      tsConfig: join(pkgDir, 'tsconfig.build.json'),
    });
    // The resolver saw the graph (a broken one would find no cycles vacuously).
    expect(graph.obj()['app.ts']).toEqual(expect.arrayContaining(['context.ts', 'routes/get.ts']));
    expect(graph.obj()['routes/long-poll.ts']).toContain('context.ts');
    expect(graph.circular()).toEqual([]);
  }, 60_000);
});
