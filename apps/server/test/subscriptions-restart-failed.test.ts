import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStorage } from '@streamkeep/storage-file';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServerMetrics } from '../src/metrics.js';
import { type DeliveryFailed, deliverWebhook } from '../src/webhooks/deliver.js';
import { json, startApp } from './subscriptions-helpers.js';
import {
  pendingPaths,
  startWebhookReceiver,
  until,
  type WebhookReceiver,
} from './subscriptions-restart-helpers.js';

// A webhook subscription whose receiver keeps failing is marked `failed` after `maxAttempts` and is no longer
// delivered to; the status is kept across a restart; sending the same subscription again (`PUT`, same config) makes
// it `active` and delivers what piled up meanwhile.

describe('a failed webhook subscription', () => {
  let dir: string;
  let flaky: WebhookReceiver;
  let healthy: WebhookReceiver;
  const options = { maxAttempts: 3, retryBaseMs: 10, retryMaxMs: 40 };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'streamkeep-failed-'));
    flaky = await startWebhookReceiver('fail');
    healthy = await startWebhookReceiver('done');
  });

  afterAll(async () => {
    await flaky.close();
    await healthy.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stays failed across a restart, and a re-PUT of the same spec makes it active and delivers again', {
    timeout: 120_000,
  }, async () => {
    // Webhook metrics are reported process-wide: this registry sees every delivery of both apps below.
    const metrics = new ServerMetrics();
    /** One series' value in the exposition text (0 while it has none). */
    const value = async (series: string) => {
      const line = (await metrics.text()).split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? 0 : Number(line.slice(series.length + 1));
    };
    let server = await startApp({
      storage: await FileStorage.open({ rootDir: dir }),
      subscriptions: { ...options, dataDir: dir },
    });
    const spec = { type: 'webhook', streams: ['s1'], webhook: { url: flaky.url }, lease_ttl_ms: 1000 };
    const tail = async () =>
      (await fetch(`${server.base}/s1`, { method: 'HEAD' })).headers.get('stream-next-offset')!;
    const acked = async (id: string) =>
      (await json('GET', `${server.base}/__ds/subscriptions/${id}`)).body.streams[0].acked_offset as string;
    const append = async (body: string) => {
      const res = await fetch(`${server.base}/s1`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body,
      });
      expect(res.status).toBe(204);
    };
    try {
      expect(
        (await fetch(`${server.base}/s1`, { method: 'PUT', headers: { 'content-type': 'text/plain' } }))
          .status,
      ).toBe(201);
      expect((await json('PUT', `${server.base}/__ds/subscriptions/flaky`, spec)).status).toBe(201);
      // A second subscription to the same stream, whose receiver is up: it shows when an append has been processed.
      const control = { ...spec, webhook: { url: healthy.url } };
      expect((await json('PUT', `${server.base}/__ds/subscriptions/control`, control)).status).toBe(201);

      await append('a');
      await until(
        async () => (await json('GET', `${server.base}/__ds/subscriptions/flaky`)).body.status === 'failed',
        60_000,
      );
      expect(flaky.received.length).toBeGreaterThanOrEqual(options.maxAttempts);
      // Failed: appends no longer wake it, while the control subscription over the same stream is woken and acked.
      const attempts = flaky.received.length;
      await append('b');
      const bTail = await tail();
      await until(async () => (await acked('control')) === bTail, 60_000);
      expect(flaky.received.length).toBe(attempts);
      expect((await json('GET', `${server.base}/__ds/subscriptions/control`)).body.status).toBe('active');

      // /metrics counted every POST with the answer it got: the receivers' own counts, exactly.
      await until(
        async () => (await value('streamkeep_webhook_delivery_attempts_total{outcome="5xx"}')) === attempts,
      );
      await until(
        async () =>
          (await value('streamkeep_webhook_delivery_attempts_total{outcome="2xx"}')) ===
          healthy.received.length,
      );
      // Every failed attempt but the last was scheduled again; the last marked the subscription failed.
      expect(await value('streamkeep_webhook_retries_total')).toBe(attempts - 1);
      expect(await value('streamkeep_webhook_delivery_duration_seconds_count{outcome="5xx"}')).toBe(attempts);
    } finally {
      await server.close();
    }

    // Restart on the same root: the status is part of the durable record.
    server = await startApp({
      storage: await FileStorage.open({ rootDir: dir }),
      subscriptions: { ...options, dataDir: dir },
    });
    try {
      const kept = await json('GET', `${server.base}/__ds/subscriptions/flaky`);
      expect(kept.body.status).toBe('failed');
      // A different config is still a conflict, and revives nothing.
      const other = await json('PUT', `${server.base}/__ds/subscriptions/flaky`, {
        ...spec,
        description: 'other',
      });
      expect([other.status, other.body.error.code]).toEqual([409, 'SUBSCRIPTION_CONFLICT']);
      expect((await json('GET', `${server.base}/__ds/subscriptions/flaky`)).body.status).toBe('failed');

      // The receiver is back; its owner sends the same subscription again.
      flaky.mode = 'done';
      const from = flaky.received.length;
      const again = await json('PUT', `${server.base}/__ds/subscriptions/flaky`, spec);
      expect(again.status).toBe(200);
      expect(again.body.status).toBe('active');
      // What piled up while it was failed (both appends) is delivered and, answered `{done: true}`, acked.
      const bTail = await tail();
      const resumed = await until(() =>
        flaky.received.slice(from).find((w) => pendingPaths(w).includes('s1')),
      );
      expect(resumed.body.streams[0].tail_offset).toBe(bTail);
      await until(async () => (await acked('flaky')) === bTail, 60_000);
      expect((await json('GET', `${server.base}/__ds/subscriptions/flaky`)).body.status).toBe('active');

      // And new appends wake it as usual.
      await append('c');
      const cTail = await tail();
      await until(async () => (await acked('flaky')) === cTail, 60_000);
    } finally {
      await server.close();
    }
  });
});

describe('webhook delivery metrics', () => {
  it('count each attempt by how it ended: status class, timeout, oversized answer, connection error', {
    timeout: 60_000,
  }, async () => {
    const metrics = new ServerMetrics();
    const value = async (series: string) => {
      const line = (await metrics.text()).split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? 0 : Number(line.slice(series.length + 1));
    };
    const server = createServer((req, res) => {
      req.resume();
      if (req.url === '/silent') return; // never answers: the delivery times out
      if (req.url === '/large') {
        res.writeHead(200);
        res.end(Buffer.alloc(4096));
        return;
      }
      res.writeHead(req.url === '/gone' ? 404 : 204);
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    // A loopback port nobody listens on: taken, then released.
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const post = (url: string) =>
      deliverWebhook(
        { url: new URL(url), addresses: [{ address: '127.0.0.1', family: 4 }] },
        Buffer.from('{}'),
        { 'content-type': 'application/json' },
        { timeoutMs: 300, maxAnswerBytes: 1024 },
      ).then(
        (answer) => answer.status,
        (err: DeliveryFailed) => err.reason,
      );
    try {
      expect(await post(`http://127.0.0.1:${port}/ok`)).toBe(204);
      expect(await post(`http://127.0.0.1:${port}/gone`)).toBe(404);
      expect(await post(`http://127.0.0.1:${port}/silent`)).toBe('timeout');
      expect(await post(`http://127.0.0.1:${port}/large`)).toBe('answer-too-large');
      expect(await post(`http://127.0.0.1:${closedPort}/`)).toBe('connection');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    for (const outcome of ['2xx', '4xx', 'timeout', 'answer_too_large', 'connection_error']) {
      expect(await value(`streamkeep_webhook_delivery_attempts_total{outcome="${outcome}"}`), outcome).toBe(
        1,
      );
      expect(await value(`streamkeep_webhook_delivery_duration_seconds_count{outcome="${outcome}"}`)).toBe(1);
    }
    expect(await value('streamkeep_webhook_delivery_attempts_total{outcome="5xx"}')).toBe(0);
  });
});
