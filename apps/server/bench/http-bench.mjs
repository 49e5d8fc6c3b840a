#!/usr/bin/env node
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
// Side-by-side HTTP benchmark: Streamkeep (memory and file backends) against the Node reference server
// (@durable-streams/server, in-memory and file-backed), over loopback, with the load generator in the same process.
//
//   pnpm --filter @streamkeep/server... run build && node apps/server/bench/http-bench.mjs [--duration 5] [--out file]
//
// Scenarios:
//   append  — 16 keep-alive clients, each POSTing 128-byte text bodies to its own stream, for --duration seconds;
//   read    — 16 clients repeatedly reading a 1 MiB stream (1024 × 1 KiB messages) from the start, no compression;
//   fan-out — 200 long-polls waiting at the tail of one stream, then one append: time until every poll answered.
// Results (requests/s, latency percentiles) are printed and written as JSON (default bench/results.json).
import { Agent, request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DurableStreamTestServer } from '@durable-streams/server';
import { DEFAULT_SERVER_CONFIG } from '../dist/config.js';
import { startServer } from '../dist/server.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : args[i + 1];
};
const DURATION_MS = Number(arg('duration', '5')) * 1000;
const OUT = arg('out', join(here, 'results.json'));
const CLIENTS = 16;
const WAITERS = 200;

function send(agent, base, method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const req = request(
      { agent, host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers },
      (res) => {
        let size = 0;
        res.on('data', (c) => (size += c.length));
        res.on('end', () => resolve({ status: res.statusCode, size, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summarise(latencies, elapsedMs) {
  latencies.sort((a, b) => a - b);
  const round = (x) => Math.round(x * 1000) / 1000;
  return {
    requests: latencies.length,
    perSecond: Math.round((latencies.length / elapsedMs) * 1000),
    p50ms: round(percentile(latencies, 50)),
    p99ms: round(percentile(latencies, 99)),
  };
}

async function runFor(clients, op) {
  const latencies = [];
  const started = performance.now();
  const deadline = started + DURATION_MS;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      while (performance.now() < deadline) {
        const t = performance.now();
        await op(c);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return summarise(latencies, performance.now() - started);
}

async function scenarioAppend(base, prefix) {
  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const body = Buffer.alloc(128, 0x61);
  for (let c = 0; c < CLIENTS; c++) {
    await send(agent, base, 'PUT', `${prefix}/append-${c}`, undefined, { 'Content-Type': 'text/plain' });
  }
  const result = await runFor(CLIENTS, async (c) => {
    const r = await send(agent, base, 'POST', `${prefix}/append-${c}`, body, {
      'Content-Type': 'text/plain',
    });
    if (r.status !== 204) throw new Error(`append answered ${r.status}`);
  });
  agent.destroy();
  return result;
}

async function scenarioRead(base, prefix) {
  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const path = `${prefix}/read`;
  await send(agent, base, 'PUT', path, undefined, { 'Content-Type': 'application/octet-stream' });
  const msg = Buffer.alloc(1024, 0x62);
  for (let i = 0; i < 1024; i++) {
    await send(agent, base, 'POST', path, msg, { 'Content-Type': 'application/octet-stream' });
  }
  const result = await runFor(CLIENTS, async () => {
    const r = await send(agent, base, 'GET', `${path}?offset=-1`, undefined, {
      'Accept-Encoding': 'identity',
    });
    if (r.status !== 200 || r.size < 1024 * 1024)
      throw new Error(`read answered ${r.status} with ${r.size} bytes`);
  });
  agent.destroy();
  return result;
}

async function scenarioFanOut(base, prefix) {
  const agent = new Agent({ keepAlive: true, maxSockets: WAITERS + 1 });
  const path = `${prefix}/fanout`;
  await send(agent, base, 'PUT', path, undefined, { 'Content-Type': 'text/plain' });
  const rounds = [];
  for (let round = 0; round < 10; round++) {
    const head = await send(agent, base, 'HEAD', path);
    const tail = head.headers['stream-next-offset'];
    const polls = Array.from({ length: WAITERS }, () =>
      send(agent, base, 'GET', `${path}?offset=${tail}&live=long-poll`),
    );
    await new Promise((r) => setTimeout(r, 300));
    const t = performance.now();
    await send(agent, base, 'POST', path, 'wake', { 'Content-Type': 'text/plain' });
    const answers = await Promise.all(polls);
    rounds.push(performance.now() - t);
    if (answers.some((a) => a.status !== 200)) throw new Error('a long-poll missed the append');
  }
  agent.destroy();
  rounds.sort((a, b) => a - b);
  return {
    waiters: WAITERS,
    rounds: rounds.length,
    medianAllAnsweredMs: Math.round(percentile(rounds, 50) * 10) / 10,
  };
}

async function withStreamkeep(storage, fn) {
  const dataDir = storage === 'file' ? await mkdtemp(join(tmpdir(), 'sk-bench-')) : './unused';
  const running = await startServer({
    ...DEFAULT_SERVER_CONFIG,
    port: 0,
    storage,
    dataDir,
    syncOnAppend: true,
    compression: false,
    logLevel: 'silent',
  });
  await running.storage;
  try {
    return await fn(running.url);
  } finally {
    await running.close();
    if (storage === 'file') await rm(dataDir, { recursive: true, force: true });
  }
}

async function withReference(file, fn) {
  const dataDir = file ? await mkdtemp(join(tmpdir(), 'ref-bench-')) : undefined;
  const server = new DurableStreamTestServer({
    port: 0,
    longPollTimeout: 30_000,
    compression: false,
    dataDir,
  });
  const url = await server.start();
  try {
    return await fn(url);
  } finally {
    await server.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }
}

const targets = [
  { name: 'streamkeep-memory', run: (fn) => withStreamkeep('memory', fn) },
  { name: 'reference-memory', run: (fn) => withReference(false, fn) },
  { name: 'streamkeep-file (fsync on append)', run: (fn) => withStreamkeep('file', fn) },
  { name: 'reference-file (fdatasync per append)', run: (fn) => withReference(true, fn) },
];

const results = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  durationSeconds: DURATION_MS / 1000,
  targets: {},
};
for (const t of targets) {
  const r = {};
  r.append = await t.run((base) => scenarioAppend(base, '/v1/stream'));
  r.read = await t.run((base) => scenarioRead(base, '/v1/stream'));
  r.fanOut = await t.run((base) => scenarioFanOut(base, '/v1/stream'));
  results.targets[t.name] = r;
  console.log(t.name, JSON.stringify(r));
}
await writeFile(OUT, `${JSON.stringify(results, null, 2)}\n`);
console.log(`written to ${OUT}`);
