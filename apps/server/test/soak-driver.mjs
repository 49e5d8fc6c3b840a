#!/usr/bin/env node
// Soak: N writers and M live readers (long-poll and SSE) against a `streamkeep` process on the file backend, over
// loopback, for T seconds. Checks that every acknowledged message reaches every reader exactly once and in order,
// and samples the server's RSS once a second.
//
//   node test/soak-driver.mjs [--seconds 60] [--writers 4] [--streams 2] [--long-poll 2] [--sse 2] [--rate 25]
//                             [--bin dist/main.js] [--out soak-results.json]
//
// Writers are idempotent producers (Producer-Id/Epoch/Seq), so a retried append can never store a duplicate.
// Readers of both kinds start at offset -1 before the writers; SSE readers are made to reconnect every few seconds
// and resume from the last control event's offset; a data event counts only once its control event has arrived.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** @returns {Promise<number|undefined>} resident set size of `pid` in bytes (Linux), or undefined. */
async function rssOf(pid) {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function startServer(bin, dataDir, extraArgs) {
  const child = spawn(
    process.execPath,
    [bin, '--port', '0', '--storage', 'file', '--data-dir', dataDir, '--log-level', 'info', ...extraArgs],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { PATH: process.env.PATH } },
  );
  const url = new Promise((resolveUrl, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const entry = JSON.parse(line);
        if (entry.msg === 'listening') resolveUrl(entry.url);
      } catch {}
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { child, url };
}

/** Reads a whole JSON stream with catch-up reads, chunk by chunk. */
async function readAll(url) {
  const out = [];
  let offset = '-1';
  for (;;) {
    const res = await fetch(`${url}?offset=${offset}`);
    if (res.status !== 200) throw new Error(`catch-up read: ${res.status}`);
    out.push(...(await res.json()));
    offset = res.headers.get('stream-next-offset');
    if (res.headers.get('stream-up-to-date') === 'true') return out;
  }
}

async function writer(url, w, deadline, rate, stats) {
  const acked = [];
  const interval = 1000 / rate;
  let next = performance.now();
  for (let seq = 0; Date.now() < deadline; seq++) {
    const body = JSON.stringify({ w, n: seq });
    for (let attempt = 0; ; attempt++) {
      let status = 0;
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: {
            'Content-Type': 'application/json',
            'Producer-Id': `w${w}`,
            'Producer-Epoch': '0',
            'Producer-Seq': String(seq),
          },
          body,
        });
        status = res.status;
        await res.arrayBuffer();
      } catch {
        stats.writeErrors++;
      }
      if (status === 200 || status === 204) {
        acked.push(seq);
        break;
      }
      if (status !== 0) stats.writeStatuses[status] = (stats.writeStatuses[status] ?? 0) + 1;
      if (attempt >= 20)
        throw new Error(`writer ${w}: append ${seq} failed 20 times (last status ${status})`);
      await sleep(50);
    }
    next += interval;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
    else next = performance.now();
  }
  return acked;
}

async function longPollReader(url, stats) {
  const got = [];
  let offset = '-1';
  let cursor = '';
  for (;;) {
    const res = await fetch(`${url}?offset=${offset}&live=long-poll${cursor ? `&cursor=${cursor}` : ''}`);
    if (res.status === 200) got.push(...(await res.json()));
    else if (res.status === 204) await res.arrayBuffer();
    else throw new Error(`long-poll: ${res.status} ${await res.text()}`);
    stats.longPolls++;
    offset = res.headers.get('stream-next-offset');
    cursor = res.headers.get('stream-cursor') ?? '';
    if (res.headers.get('stream-closed') === 'true') return got;
  }
}

async function sseReader(url, stats) {
  const got = [];
  let offset = '-1';
  for (;;) {
    const res = await fetch(`${url}?offset=${offset}&live=sse`);
    if (res.status !== 200) throw new Error(`sse: ${res.status} ${await res.text()}`);
    stats.sseConnections++;
    const decoder = new TextDecoder();
    let buffer = '';
    /** Data waiting for its control event. */
    let pending = [];
    let closed = false;
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
        let type = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) type = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5));
        }
        if (type === 'data') pending.push(...JSON.parse(data.join('\n')));
        else if (type === 'control') {
          const control = JSON.parse(data.join('\n'));
          got.push(...pending);
          pending = [];
          offset = control.streamNextOffset;
          if (control.streamClosed) closed = true;
        }
      }
    }
    if (pending.length > 0) stats.sseUncommitted += pending.length;
    if (closed) return got;
  }
}

/**
 * Runs one soak and returns its figures. Throws only on setup failures; correctness failures are in the result
 * (`lost`, `duplicated`, `outOfOrder`, `readerErrors`).
 */
export async function runSoak(options = {}) {
  const o = {
    seconds: 60,
    writers: 4,
    streams: 2,
    longPollReaders: 2,
    sseReaders: 2,
    rate: 25,
    bin: resolve(import.meta.dirname, '..', 'dist', 'main.js'),
    sseReconnectMs: 5_000,
    longPollTimeoutMs: 2_000,
    ...options,
  };
  const dataDir = await mkdtemp(join(tmpdir(), 'streamkeep-soak-'));
  const { child, url: urlPromise } = startServer(o.bin, dataDir, [
    '--sse-reconnect',
    String(o.sseReconnectMs),
    '--long-poll-timeout',
    String(o.longPollTimeoutMs),
  ]);
  const stats = { writeErrors: 0, writeStatuses: {}, longPolls: 0, sseConnections: 0, sseUncommitted: 0 };
  const rss = [];
  let sampler;
  try {
    const base = await urlPromise;
    for (let i = 0; ; i++) {
      const r = await fetch(`${base}/readyz`).catch(() => undefined);
      if (r?.status === 200) break;
      if (i > 200) throw new Error('server never became ready');
      await sleep(50);
    }
    const streamUrls = Array.from({ length: o.streams }, (_, i) => `${base}/v1/stream/soak/s${i}`);
    for (const u of streamUrls) {
      const r = await fetch(u, { method: 'PUT', headers: { 'Content-Type': 'application/json' } });
      if (r.status !== 201) throw new Error(`create: ${r.status}`);
    }
    const started = Date.now();
    const sample = async () => {
      const bytes = await rssOf(child.pid);
      if (bytes !== undefined)
        rss.push({ t: Math.round((Date.now() - started) / 100) / 10, mib: bytes / 2 ** 20 });
    };
    await sample();
    sampler = setInterval(sample, 1_000);

    const readers = streamUrls.flatMap((u, s) => [
      ...Array.from({ length: o.longPollReaders }, (_, i) => ({
        stream: s,
        kind: 'long-poll',
        id: i,
        done: longPollReader(u, stats).then(
          (got) => ({ got }),
          (error) => ({ error: String(error) }),
        ),
      })),
      ...Array.from({ length: o.sseReaders }, (_, i) => ({
        stream: s,
        kind: 'sse',
        id: i,
        done: sseReader(u, stats).then(
          (got) => ({ got }),
          (error) => ({ error: String(error) }),
        ),
      })),
    ]);
    await sleep(200);
    const deadline = Date.now() + o.seconds * 1000;
    const writers = Array.from({ length: o.writers }, (_, w) =>
      writer(streamUrls[w % o.streams], w, deadline, o.rate, stats),
    );
    const acked = await Promise.all(writers);
    for (const u of streamUrls) {
      const r = await fetch(u, { method: 'POST', headers: { 'Stream-Closed': 'true' } });
      if (r.status !== 204) throw new Error(`close: ${r.status}`);
    }
    const readerTimeout = sleep(30_000).then(() => ({
      error: 'reader did not finish within 30 s of the close',
    }));
    const results = await Promise.all(readers.map((r) => Promise.race([r.done, readerTimeout])));
    clearInterval(sampler);
    await sample();

    // The stream itself, read back: the reference order every reader must reproduce.
    const stored = await Promise.all(streamUrls.map((u) => readAll(u)));
    const key = (m) => `${m.w}:${m.n}`;
    let lost = 0;
    let duplicated = 0;
    let outOfOrder = 0;
    const readerErrors = [];
    const perReader = [];
    let ackedTotal = 0;
    for (let w = 0; w < o.writers; w++) ackedTotal += acked[w].length;
    // Acknowledged messages missing from storage are lost too.
    for (let w = 0; w < o.writers; w++) {
      const inStream = new Set(stored[w % o.streams].filter((m) => m.w === w).map((m) => m.n));
      for (const n of acked[w]) if (!inStream.has(n)) lost++;
    }
    results.forEach((res, i) => {
      const r = readers[i];
      if (res.error !== undefined) {
        readerErrors.push(`${r.kind}#${r.id} on s${r.stream}: ${res.error}`);
        return;
      }
      const seen = new Map();
      for (const m of res.got) seen.set(key(m), (seen.get(key(m)) ?? 0) + 1);
      let readerLost = 0;
      let readerDup = 0;
      for (let w = r.stream; w < o.writers; w += o.streams) {
        for (const n of acked[w]) if (!seen.has(`${w}:${n}`)) readerLost++;
      }
      for (const c of seen.values()) if (c > 1) readerDup += c - 1;
      const ref = stored[r.stream];
      const same = res.got.length === ref.length && res.got.every((m, j) => key(m) === key(ref[j]));
      if (!same) outOfOrder++;
      lost += readerLost;
      duplicated += readerDup;
      perReader.push({
        stream: r.stream,
        kind: r.kind,
        id: r.id,
        delivered: res.got.length,
        lost: readerLost,
        duplicated: readerDup,
        identicalToStream: same,
      });
    });
    // Per writer, the stream holds its messages in sequence order, each once.
    for (let w = 0; w < o.writers; w++) {
      const ns = stored[w % o.streams].filter((m) => m.w === w).map((m) => m.n);
      for (let j = 1; j < ns.length; j++) if (ns[j] <= ns[j - 1]) outOfOrder++;
    }
    const mibs = rss.map((s) => s.mib);
    const warm = mibs.slice(Math.floor(mibs.length / 4), Math.floor(mibs.length / 2));
    const tail = mibs.slice(Math.floor((mibs.length * 3) / 4));
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
    return {
      date: new Date().toISOString(),
      node: process.version,
      seconds: o.seconds,
      writers: o.writers,
      streams: o.streams,
      readers: { longPoll: o.longPollReaders * o.streams, sse: o.sseReaders * o.streams },
      ratePerWriter: o.rate,
      acked: ackedTotal,
      stored: stored.reduce((n, s) => n + s.length, 0),
      deliveries: perReader.reduce((n, r) => n + r.delivered, 0),
      lost,
      duplicated,
      outOfOrder,
      readerErrors,
      stats,
      rss: {
        warmMedianMiB: Math.round(median(warm) * 10) / 10,
        tailMedianMiB: Math.round(median(tail) * 10) / 10,
        maxMiB: Math.round(Math.max(...mibs) * 10) / 10,
        samples: rss.map((s) => ({ t: s.t, mib: Math.round(s.mib * 10) / 10 })),
      },
      perReader,
    };
  } finally {
    clearInterval(sampler);
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    await rm(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const get = (flag, fallback) => {
    const i = args.indexOf(flag);
    return i === -1 ? fallback : args[i + 1];
  };
  const result = await runSoak({
    seconds: Number(get('--seconds', 60)),
    writers: Number(get('--writers', 4)),
    streams: Number(get('--streams', 2)),
    longPollReaders: Number(get('--long-poll', 2)),
    sseReaders: Number(get('--sse', 2)),
    rate: Number(get('--rate', 25)),
    ...(get('--bin') ? { bin: resolve(get('--bin')) } : {}),
  });
  const out = resolve(get('--out', 'soak-results.json'));
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  const { perReader, rss, ...summary } = result;
  console.log(JSON.stringify({ ...summary, rss: { ...rss, samples: rss.samples.length } }, null, 2));
  console.log(`RSS (MiB) every second: ${rss.samples.map((s) => s.mib.toFixed(0)).join(' ')}`);
  console.log(`written to ${out}`);
  process.exit(
    result.lost === 0 &&
      result.duplicated === 0 &&
      result.outOfOrder === 0 &&
      result.readerErrors.length === 0
      ? 0
      : 1,
  );
}
