import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { type Client, runBounded } from './client.js';
import { percentile } from './stats.js';

const OCTET = 'application/octet-stream';
const TEXT = 'text/plain';

let unique = 0;
/** Stream names never repeat within a server's life, so runs do not see each other's data. */
export function streamName(prefix: string): string {
  unique++;
  return `${prefix}-${process.pid}-${unique}`;
}

export interface AppendParams {
  readonly size: number;
  readonly writers: number;
  readonly layout: 'own' | 'shared';
  readonly durationMs: number;
  readonly warmupMs: number;
  /** The server's CPU time so far in seconds (see `readCpuSeconds`), to report CPU per append; one server only. */
  readonly cpuSeconds?: () => number;
}

export interface AppendResult {
  readonly perSec: number;
  readonly mibPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  /**
   * Server CPU time (user + system) per counted append, in microseconds: from the end of the warm-up until the last
   * counted append was acknowledged. Unlike appends/s it does not depend on how much CPU the load generator or other
   * processes took meanwhile. `NaN` without `cpuSeconds`.
   */
  readonly cpuUsPerAppend: number;
}

/**
 * W closed-loop writers, each POSTing one message and waiting for its acknowledgement before the next, for a fixed
 * time; appends completed during the warm-up are not counted. The streams are deleted afterwards. Given several
 * clients (instances of one server sharing a database), writer w sends its i-th append to client (w + i) mod n, as a
 * round-robin load balancer would; the streams are created through the first.
 */
export async function appendThroughput(
  target: Client | readonly Client[],
  p: AppendParams,
): Promise<AppendResult> {
  const clients: readonly Client[] = Array.isArray(target) ? target : [target as Client];
  const first = clients[0] as Client;
  const names =
    p.layout === 'own'
      ? Array.from({ length: p.writers }, () => streamName(`ap${p.size}`))
      : [streamName(`ap${p.size}-shared`)];
  for (const n of names) await first.create(n, OCTET);
  const body = Buffer.alloc(p.size, 0x61);
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const countFrom = start + p.warmupMs;
  const stopAt = countFrom + p.durationMs;
  let cpuFrom = Number.NaN;
  const cpuTimer = p.cpuSeconds
    ? setTimeout(() => {
        cpuFrom = (p.cpuSeconds as () => number)();
      }, p.warmupMs)
    : undefined;
  const writer = async (w: number): Promise<void> => {
    const name = names[p.layout === 'own' ? w : 0] as string;
    let i = w;
    while (performance.now() < stopAt) {
      const client = clients[i++ % clients.length] as Client;
      const t = performance.now();
      try {
        await client.append(name, body, OCTET);
        if (t >= countFrom) latencies.push(performance.now() - t);
      } catch {
        errors++;
        if (errors > 1000) throw new Error('too many append errors');
      }
    }
  };
  await Promise.all(Array.from({ length: p.writers }, (_, w) => writer(w)));
  const elapsed = performance.now() - countFrom;
  clearTimeout(cpuTimer);
  const cpuUsPerAppend = p.cpuSeconds ? ((p.cpuSeconds() - cpuFrom) * 1e6) / latencies.length : Number.NaN;
  for (const n of names) await first.remove(n).catch(() => {});
  latencies.sort((a, b) => a - b);
  const perSec = (latencies.length / elapsed) * 1000;
  return {
    perSec,
    mibPerSec: (perSec * p.size) / (1024 * 1024),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    errors,
    cpuUsPerAppend,
  };
}

/** A short mixed load (appends on 16 streams and reads) so the server's hot paths are compiled before measuring. */
export async function warmUp(client: Client, ms: number): Promise<number> {
  const names = Array.from({ length: 16 }, () => streamName('warm'));
  for (const n of names) await client.create(n, OCTET);
  const body = Buffer.alloc(100, 0x77);
  const stopAt = performance.now() + ms;
  let count = 0;
  await Promise.all(
    names.map(async (n, i) => {
      while (performance.now() < stopAt) {
        await client.append(n, body, OCTET);
        if (i % 4 === 0) await client.readAll(n, i % 8 === 0 ? 'gzip' : 'identity');
        count++;
      }
    }),
  );
  for (const n of names) await client.remove(n).catch(() => {});
  return count;
}

/** Fills one stream with `count` messages of `size` bytes (`concurrency` writers on it); returns appends/s. */
export async function loadStream(
  client: Client,
  name: string,
  count: number,
  size: number,
  concurrency: number,
): Promise<number> {
  await client.create(name, OCTET);
  const body = Buffer.alloc(size, 0x62);
  const t = performance.now();
  await runBounded(count, concurrency, async () => {
    await client.append(name, body, OCTET);
  });
  return (count / (performance.now() - t)) * 1000;
}

/** Fills `streams` streams with `perStream` messages each, `concurrency` appends in flight across them. */
export async function loadMany(
  client: Client,
  prefix: string,
  streams: number,
  perStream: number,
  size: number,
  concurrency: number,
  onProgress?: (done: number) => void,
): Promise<{ names: string[]; perSec: number }> {
  const names = Array.from({ length: streams }, (_, i) => `${prefix}-${i}`);
  await runBounded(streams, 16, async (i) => client.create(names[i] as string, OCTET));
  const body = Buffer.alloc(size, 0x63);
  const total = streams * perStream;
  const t = performance.now();
  let done = 0;
  await runBounded(total, concurrency, async (i) => {
    await client.append(names[i % streams] as string, body, OCTET);
    done++;
    if (onProgress && done % 50_000 === 0) onProgress(done);
  });
  return { names, perSec: (total / (performance.now() - t)) * 1000 };
}

export interface LatencyResult {
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly samples: number;
}

/**
 * Live delivery latency with one reader following the tail (long-poll loop or one SSE connection) while one writer
 * appends a numbered ~100 B message every `intervalMs`. Latency = arrival at the reader − the moment the writer
 * started the POST. The first few samples are warm-up. The reader may be connected to another instance than the writer
 * (`readerClient`; instances sharing one database), which measures the cross-instance wake-up.
 */
export async function liveLatency(
  client: Client,
  mode: 'long-poll' | 'sse',
  samples: number,
  intervalMs: number,
  readerClient: Client = client,
): Promise<LatencyResult> {
  const name = streamName(`lat-${mode}`);
  await client.create(name, TEXT);
  const warmup = 5;
  const total = samples + warmup;
  const sentAt = new Float64Array(total).fill(Number.NaN);
  const gotAt = new Float64Array(total).fill(Number.NaN);
  let received = 0;
  const token = /m(\d+);/g;
  const consume = (text: string): void => {
    const now = performance.now();
    for (const m of text.matchAll(token)) {
      const i = Number(m[1]);
      if (i < total && Number.isNaN(gotAt[i] as number)) {
        gotAt[i] = now;
        received++;
      }
    }
  };
  const offset = await client.tail(name);
  const reader = new Pool(readerClient.origin, { connections: 1, headersTimeout: 0, bodyTimeout: 0 });
  let stop = false;
  const readerDone = (async () => {
    if (mode === 'long-poll') {
      let at = offset;
      while (!stop && received < total) {
        const res = await reader.request({
          method: 'GET',
          path: `${client.path(name)}?offset=${encodeURIComponent(at)}&live=long-poll`,
        });
        const text = await res.body.text();
        if (res.statusCode === 200) consume(text);
        const next = res.headers['stream-next-offset'];
        if (typeof next === 'string' && next !== '') at = next;
      }
    } else {
      const res = await reader.request({
        method: 'GET',
        path: `${client.path(name)}?offset=${encodeURIComponent(offset)}&live=sse`,
      });
      let carry = '';
      for await (const chunk of res.body) {
        // Tokens may straddle chunks: keep the unfinished tail for the next one.
        const text = carry + (chunk as Buffer).toString();
        consume(text);
        const cut = text.lastIndexOf(';');
        carry = text.slice(cut + 1);
        if (stop || received >= total) break;
      }
      res.body.destroy();
    }
  })();
  await sleep(50);
  const pad = '.'.repeat(90);
  for (let i = 0; i < total; i++) {
    sentAt[i] = performance.now();
    await client.append(name, `m${i};${pad}`, TEXT);
    await sleep(intervalMs);
  }
  const deadline = performance.now() + 10_000;
  while (received < total && performance.now() < deadline) await sleep(5);
  stop = true;
  if (received < total && mode === 'long-poll') {
    // Wakes the last parked poll so the reader loop can end.
    await client.append(name, 'end;', TEXT).catch(() => {});
  }
  await Promise.race([readerDone.catch(() => {}), sleep(2_000)]);
  await reader.destroy();
  await client.remove(name).catch(() => {});
  const lat: number[] = [];
  for (let i = warmup; i < total; i++) {
    const d = (gotAt[i] as number) - (sentAt[i] as number);
    if (Number.isFinite(d)) lat.push(d);
  }
  lat.sort((a, b) => a - b);
  return {
    p50Ms: percentile(lat, 50),
    p90Ms: percentile(lat, 90),
    p99Ms: percentile(lat, 99),
    samples: lat.length,
  };
}

export interface FanoutResult {
  /** Time from the start of the append until every reader had the message. */
  readonly allDeliveredMs: number;
  readonly p50DeliveredMs: number;
  /** Time from the start of the append until the writer's acknowledgement. */
  readonly ackMs: number;
  /** Acknowledgement time of an append to the same stream with no readers, just before. */
  readonly baselineAckMs: number;
  readonly delivered: number;
}

/**
 * `readers` clients wait at the tail of one stream (long-poll or SSE), each on its own connection; then one append.
 * Readiness: every request is on the wire (SSE: every response has started), then a settle pause and a HEAD round
 * trip, which the server answers only after the readers' requests that arrived before it were handled.
 */
export async function fanout(
  client: Client,
  mode: 'long-poll' | 'sse',
  readers: number,
  settleMs: number,
): Promise<FanoutResult> {
  const name = streamName(`fan-${mode}`);
  await client.create(name, TEXT);
  // Baseline: the acknowledgement time of a lone append (median of 5) on the same stream.
  const base: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await client.append(name, `warm${i};`, TEXT);
    base.push(performance.now() - t);
  }
  base.sort((a, b) => a - b);
  const offset = await client.tail(name);
  const marker = `fanout-marker-${name};`;
  const pool = new Pool(client.origin, {
    connections: readers,
    pipelining: 1,
    headersTimeout: 0,
    bodyTimeout: 0,
    connectTimeout: 30_000,
  });
  const arrival = new Float64Array(readers).fill(Number.NaN);
  let started = 0;
  let delivered = 0;
  const path =
    mode === 'long-poll'
      ? `${client.path(name)}?offset=${encodeURIComponent(offset)}&live=long-poll`
      : `${client.path(name)}?offset=${encodeURIComponent(offset)}&live=sse`;
  const bodies: Array<{ destroy(): unknown }> = [];
  const one = async (r: number): Promise<void> => {
    const res = await pool.request({ method: 'GET', path });
    started++;
    bodies.push(res.body);
    let seen = '';
    for await (const chunk of res.body) {
      seen += (chunk as Buffer).toString();
      if (seen.includes(marker)) {
        arrival[r] = performance.now();
        delivered++;
        break;
      }
      if (seen.length > 1 << 16) seen = seen.slice(-1024);
    }
    res.body.destroy();
  };
  const all = Array.from({ length: readers }, (_, r) => one(r).catch(() => {}));
  // Every request on a socket (long-poll) or every response started (SSE).
  const readyDeadline = performance.now() + 60_000;
  for (;;) {
    const s = pool.stats;
    const onWire = mode === 'long-poll' ? s.running >= readers && s.pending === 0 : started >= readers;
    if (onWire || performance.now() > readyDeadline) break;
    await sleep(10);
  }
  await sleep(settleMs);
  await client.tail(name);
  const t0 = performance.now();
  await client.append(name, marker, TEXT);
  const ackMs = performance.now() - t0;
  const deadline = performance.now() + 60_000;
  while (delivered < readers && performance.now() < deadline) await sleep(1);
  for (const b of bodies) b.destroy();
  await Promise.race([Promise.all(all), sleep(5_000)]);
  await pool.destroy();
  await client.remove(name).catch(() => {});
  const times: number[] = [];
  for (const a of arrival) if (Number.isFinite(a)) times.push(a - t0);
  times.sort((a, b) => a - b);
  return {
    allDeliveredMs: delivered === readers ? (times[times.length - 1] as number) : Number.NaN,
    p50DeliveredMs: percentile(times, 50),
    ackMs,
    baselineAckMs: percentile(base, 50),
    delivered,
  };
}
