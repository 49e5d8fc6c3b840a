// Measures PostgresStorage on the server in STREAMKEEP_PG_URL and writes the figures to bench/results.json.
//   pnpm run build && ../../scripts/postgres/cluster.sh run --durable -- node bench/bench.mjs
// Each phase is bounded by a fixed number of operations; nothing here is asserted.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import pg from 'pg';
import { PostgresStorage } from '../dist/index.js';

const url = process.env.STREAMKEEP_PG_URL;
if (!url) throw new Error('set STREAMKEEP_PG_URL (or run through scripts/postgres/cluster.sh run -- …)');
const schema = `bench_${randomBytes(4).toString('hex')}`;
const T = 'application/octet-stream';
const payload = (n) => new Uint8Array(n).fill(7);

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50Ms: +percentile(sorted, 50).toFixed(3),
    p99Ms: +percentile(sorted, 99).toFixed(3),
  };
}

const a = await PostgresStorage.open({ connectionString: url, schema, pool: { max: 8 } });
const b = await PostgresStorage.open({ connectionString: url, schema, pool: { max: 8 } });
const results = { date: new Date().toISOString(), node: process.version };
try {
  // 1. Sequential append latency, one instance, 100-byte messages.
  await a.createStream('seq', { contentType: T });
  const lat = [];
  for (let i = 0; i < 2_000; i++) {
    const t = performance.now();
    await a.append('seq', { messages: [payload(100)], contentType: T });
    lat.push(performance.now() - t);
  }
  results.sequentialAppend100B = summary(lat);

  // 2. Budgeted reads of 64 KiB from random offsets of that stream.
  const boundaries = [];
  for (let i = 0; i < 2_000; i += 50)
    boundaries.push(`${i.toString(16).padStart(16, '0')}_${(i * 100).toString(16).padStart(16, '0')}`);
  const reads = [];
  for (let i = 0; i < 1_000; i++) {
    const t = performance.now();
    await b.read('seq', boundaries[i % boundaries.length], { maxBytes: 64 * 1024 });
    reads.push(performance.now() - t);
  }
  results.budgetedRead64KiB = summary(reads);

  // 3. Throughput: 2 instances x 8 writers, each on its own stream, 250 appends each.
  const writers = [];
  for (let w = 0; w < 16; w++) {
    const s = w % 2 === 0 ? a : b;
    await s.createStream(`w${w}`, { contentType: T });
    writers.push([s, `w${w}`]);
  }
  let t0 = performance.now();
  await Promise.all(
    writers.map(async ([s, name]) => {
      for (let i = 0; i < 250; i++) await s.append(name, { messages: [payload(100)], contentType: T });
    }),
  );
  let seconds = (performance.now() - t0) / 1000;
  results.parallelAppendsManyStreams = {
    appends: 4_000,
    seconds: +seconds.toFixed(2),
    perSecond: Math.round(4_000 / seconds),
  };

  // 4. Contended throughput: the same 16 writers on one stream.
  await a.createStream('hot', { contentType: T });
  t0 = performance.now();
  await Promise.all(
    writers.map(async ([s]) => {
      for (let i = 0; i < 125; i++) await s.append('hot', { messages: [payload(100)], contentType: T });
    }),
  );
  seconds = (performance.now() - t0) / 1000;
  results.parallelAppendsOneStream = {
    appends: 2_000,
    seconds: +seconds.toFixed(2),
    perSecond: Math.round(2_000 / seconds),
  };

  // 5. Cross-instance wake-up latency: append on A, time until B's listener runs.
  await a.createStream('wake', { contentType: T });
  let resolveWake;
  await b.subscribe('wake', () => resolveWake?.());
  const wakes = [];
  for (let i = 0; i < 500; i++) {
    const woken = new Promise((r) => {
      resolveWake = r;
    });
    const t = performance.now();
    await a.append('wake', { messages: [payload(10)], contentType: T });
    await woken;
    wakes.push(performance.now() - t);
  }
  results.crossInstanceAppendToWake = summary(wakes);
} finally {
  await a.close();
  await b.close();
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const settings = await admin.query(
    "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit')",
  );
  results.server = Object.fromEntries(settings.rows.map((r) => [r.name, r.setting]));
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
}
const file = new URL('./results.json', import.meta.url);
writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
console.log(JSON.stringify(results, null, 2));
