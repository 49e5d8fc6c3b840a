#!/usr/bin/env node
// Paired A/B of one append cell between Streamkeep server builds, for differences smaller than this machine's noise.
//
//   node scripts/paired-cells.mjs [--runs 8] [--cells 12] [--writers 64] [--size 100] [--sync] \
//     old=/path/to/old/apps/server/dist/main.js new=/path/to/apps/server/dist/main.js new-nm=...main.js:--metrics=false
//
// Every build is started at once (file backend, a temporary data directory each). In each run, cell by cell, the
// builds take turns: a cell creates `writers` fresh streams, lets each writer append `size` bytes in a closed loop
// (80 ms warm-up, 250 ms measured, as in the harness's quick mode), then deletes the streams. Every other run takes
// the builds in reverse order. Per run and build, the figure is the median over the warm cells (the first three of a
// server's life are left out); the output is the paired ratio of each build to the first, run by run, and the median
// of all warm cells. Only ratios of runs made side by side are comparable: on a shared two-core machine, throughput
// moves by up to 2× between runs minutes apart.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: 'string', default: '8' },
    cells: { type: 'string', default: '12' },
    writers: { type: 'string', default: '64' },
    size: { type: 'string', default: '100' },
    sync: { type: 'boolean', default: false },
    'data-root': { type: 'string', default: tmpdir() },
  },
});
const RUNS = Number(values.runs);
const CELLS = Number(values.cells);
const WRITERS = Number(values.writers);
const COLD_CELLS = 3;
const WARMUP_MS = 80;
const MEASURE_MS = 250;
if (positionals.length < 2 || CELLS <= COLD_CELLS) {
  process.stderr.write('usage: paired-cells.mjs [options] label=main.js[:--flag=value,…] label=main.js …\n');
  process.exit(2);
}
const builds = positionals.map((spec) => {
  const eq = spec.indexOf('=');
  const [main, flags = ''] = spec.slice(eq + 1).split(':');
  return { label: spec.slice(0, eq), main, flags: flags === '' ? [] : flags.split(',') };
});

const OCTET = { 'content-type': 'application/octet-stream' };

async function start(build) {
  const dir = mkdtempSync(join(values['data-root'], 'sk-paired-'));
  const args = [
    build.main,
    ...['--host', '127.0.0.1', '--port', '0', '--storage', 'file', '--data-dir', dir],
    values.sync ? '--sync-on-append' : '--no-sync-on-append',
    ...build.flags,
  ];
  // Builds from before the flag existed log no requests anyway.
  if (
    execFileSync(process.execPath, [build.main, '--help'], { encoding: 'utf8' }).includes('--log-requests')
  ) {
    args.push('--log-requests', 'false');
  }
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, STREAMKEEP_MAX_IN_FLIGHT: '100000' },
  });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`${build.label} exited (${code}) before listening`)));
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /"url":"(http:[^"]+)"/.exec(out);
      if (m === null) return;
      child.stdout.removeAllListeners('data');
      child.stdout.resume();
      resolve(m[1].replace(/\/$/, ''));
    });
  });
  const pool = new Pool(url, { connections: WRITERS });
  for (;;) {
    const res = await pool.request({ method: 'GET', path: '/readyz' });
    await res.body.dump();
    if (res.statusCode === 200) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return { ...build, child, dir, pool };
}

async function stop(server) {
  await server.pool.close();
  const exited = new Promise((r) => server.child.once('exit', r));
  server.child.kill('SIGKILL');
  await exited;
  rmSync(server.dir, { recursive: true, force: true });
}

let unique = 0;
const body = Buffer.alloc(Number(values.size), 0x61);

/** One cell on one server: appends per second over the measured window. */
async function cell(server) {
  const send = async (method, name, withBody) => {
    const res = await server.pool.request({
      method,
      path: `/v1/stream/${name}`,
      headers: OCTET,
      ...(withBody ? { body } : {}),
    });
    await res.body.dump();
    if (res.statusCode >= 300) throw new Error(`${server.label}: ${method} ${name} → ${res.statusCode}`);
  };
  const names = Array.from({ length: WRITERS }, () => `paired-${unique++}`);
  for (const name of names) await send('PUT', name, false);
  const from = performance.now() + WARMUP_MS;
  const until = from + MEASURE_MS;
  let counted = 0;
  await Promise.all(
    names.map(async (name) => {
      while (performance.now() < until) {
        const t = performance.now();
        await send('POST', name, true);
        if (t >= from) counted++;
      }
    }),
  );
  const rate = (counted / (performance.now() - from)) * 1000;
  for (const name of names) await send('DELETE', name, false);
  return rate;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
};
const perRun = new Map(builds.map((b) => [b.label, []]));
const allWarm = new Map(builds.map((b) => [b.label, []]));
for (let run = 0; run < RUNS; run++) {
  const order = run % 2 === 0 ? builds : [...builds].reverse();
  const servers = [];
  for (const b of order) servers.push(await start(b));
  const rates = new Map(servers.map((s) => [s.label, []]));
  for (let c = 0; c < CELLS; c++) for (const s of servers) rates.get(s.label).push(await cell(s));
  for (const s of servers) await stop(s);
  for (const [label, xs] of rates) {
    const warm = xs.slice(COLD_CELLS);
    perRun.get(label).push(median(warm));
    allWarm.get(label).push(...warm);
  }
  process.stdout.write(
    `run ${run + 1}/${RUNS}: ${builds.map((b) => `${b.label} ${Math.round(perRun.get(b.label).at(-1))}/s`).join(', ')}\n`,
  );
}
const base = builds[0].label;
for (const b of builds) {
  const ratios = perRun.get(b.label).map((v, i) => (v / perRun.get(base)[i]).toFixed(2));
  process.stdout.write(
    `${b.label}: warm median ${Math.round(median(allWarm.get(b.label)))}/s (${(median(allWarm.get(b.label)) / median(allWarm.get(base))).toFixed(3)}× ${base}); paired run ratios ${ratios.join(' ')}\n`,
  );
}
