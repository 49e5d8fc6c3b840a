import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { Client, runBounded } from './client.js';
import { percentile } from './stats.js';
import { type RunningTarget, type StartOptions, startTarget, type TargetSpec } from './targets.js';

export const OCTET = 'application/octet-stream';

/** Rejects when `p` has not settled within `ms`; `p` keeps running (its later failure is swallowed). */
export async function bounded<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${Math.round(ms / 1000)} s`)), ms);
  });
  p.catch(() => {});
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Counts of outcomes by name, rendered as "204 ×3, ECONNRESET ×1". */
export class Tally {
  private readonly counts = new Map<string, number>();
  total = 0;
  add(what: string): void {
    this.counts.set(what, (this.counts.get(what) ?? 0) + 1);
    this.total++;
  }
  toString(): string {
    return [...this.counts]
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k} ×${n.toLocaleString('en')}`)
      .join(', ');
  }
}

function errorName(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e.code ?? e.message?.slice(0, 60) ?? String(err);
}

export interface CreateResult {
  /** Names of the streams the server created (201, or 200 for an existing one). */
  readonly created: string[];
  readonly perSec: number;
  readonly ms: number;
  /** Stopped by the time budget before every name was tried. */
  readonly timedOut: boolean;
  /** Responses other than 200 / 201, and transport errors. */
  readonly failures: Tally;
}

/**
 * Creates the streams `names` (PUT, `application/octet-stream`) with `concurrency` requests in flight, until all are
 * done or `timeoutMs` has passed (requests in flight then are still awaited). Gives up after 1,000 failures.
 */
export async function createStreams(
  client: Client,
  names: readonly string[],
  concurrency: number,
  timeoutMs: number,
  onProgress?: (done: number) => void,
): Promise<CreateResult> {
  const created: string[] = [];
  const failures = new Tally();
  const t = performance.now();
  const stopAt = t + timeoutMs;
  let next = 0;
  let timedOut = false;
  const worker = async (): Promise<void> => {
    while (next < names.length && failures.total < 1_000) {
      if (performance.now() > stopAt) {
        timedOut = true;
        return;
      }
      const name = names[next++] as string;
      try {
        const res = await client.pool.request({
          method: 'PUT',
          path: client.path(name),
          headers: { 'content-type': OCTET },
        });
        await res.body.dump();
        if (res.statusCode === 201 || res.statusCode === 200) {
          created.push(name);
          if (onProgress && created.length % 10_000 === 0) onProgress(created.length);
        } else failures.add(String(res.statusCode));
      } catch (err) {
        failures.add(errorName(err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, names.length) }, worker));
  const ms = performance.now() - t;
  return { created, perSec: (created.length / ms) * 1000, ms, timedOut, failures };
}

export interface SpreadResult {
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: Tally;
  /** Distinct streams appended to in the counted window. */
  readonly touched: number;
}

/**
 * `writers` closed-loop writers, each appending `size` bytes to a stream picked at random among `names` for every
 * append, for `durationMs` after `warmupMs` (the same shape as `appendThroughput` with own streams).
 */
export async function spreadAppends(
  client: Client,
  names: readonly string[],
  p: { writers: number; size: number; durationMs: number; warmupMs: number },
): Promise<SpreadResult> {
  const body = Buffer.alloc(p.size, 0x61);
  const latencies: number[] = [];
  const touched = new Set<number>();
  const errors = new Tally();
  const countFrom = performance.now() + p.warmupMs;
  const stopAt = countFrom + p.durationMs;
  const writer = async (): Promise<void> => {
    while (performance.now() < stopAt) {
      const i = Math.floor(Math.random() * names.length);
      const t = performance.now();
      try {
        await client.append(names[i] as string, body, OCTET);
        if (t >= countFrom) {
          latencies.push(performance.now() - t);
          touched.add(i);
        }
      } catch (err) {
        // Client.append throws "POST <name>: <status>": keep the status.
        errors.add(/: (\d{3})$/.exec((err as Error).message)?.[1] ?? errorName(err));
        if (errors.total > 1000) throw new Error(`too many append errors: ${errors}`);
      }
    }
  };
  await Promise.all(Array.from({ length: p.writers }, writer));
  const elapsed = performance.now() - countFrom;
  latencies.sort((a, b) => a - b);
  return {
    perSec: (latencies.length / elapsed) * 1000,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    errors,
    touched: touched.size,
  };
}

/** The soft limit on open files of this process (`ulimit -n`), or `undefined` when it cannot be read. */
export function openFileLimit(): number | undefined {
  try {
    const n = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export interface LiveOutcome {
  readonly readers: number;
  /** Got the message their trigger appended. */
  readonly served: number;
  /** Answered 503 (admission control, or the server refusing for another reason). */
  readonly refused: number;
  /** Anything else: another status (204 when the long-poll timed out), a transport error, no answer by the deadline. */
  readonly other: number;
  readonly otherWhy: string;
  /** From the start of the requests until every one was on the wire (or refused). */
  readonly connectMs: number;
  /** From the first trigger until the last reader was served (`NaN` when none was). */
  readonly lastServedMs: number;
  /** Per served reader: from the start of its own trigger to the arrival. */
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/**
 * Parks one long-poll GET per entry of `paths` (each on its own connection; one undici pool of `paths.length`
 * connections), waits until all are on the wire, lets the server take them in (`settleMs`, then `roundTrip`), then
 * calls `trigger`, which appends and returns the moment each reader's message was sent. A reader is served when its
 * response carries its `markers` entry. Everything is bounded by `timeoutMs` (to connect, and again to be served).
 */
export async function liveReaders(
  origin: string,
  paths: readonly string[],
  markers: readonly string[],
  o: {
    settleMs: number;
    timeoutMs: number;
    roundTrip: () => Promise<unknown>;
    trigger: () => Promise<Float64Array>;
  },
): Promise<LiveOutcome & { triggerMs: number }> {
  const n = paths.length;
  const pool = new Pool(origin, {
    connections: n,
    pipelining: 1,
    headersTimeout: 0,
    bodyTimeout: 0,
    connectTimeout: o.timeoutMs,
  });
  const arrival = new Float64Array(n).fill(Number.NaN);
  const why = new Tally();
  let refused = 0;
  let settled = 0;
  const bodies: Array<{ destroy(): unknown }> = [];
  const one = async (i: number): Promise<void> => {
    try {
      const res = await pool.request({ method: 'GET', path: paths[i] as string });
      if (res.statusCode !== 200) {
        if (res.statusCode === 503) refused++;
        else why.add(String(res.statusCode));
        await res.body.dump().catch(() => {});
        return;
      }
      bodies.push(res.body);
      const marker = markers[i] as string;
      let seen = '';
      for await (const chunk of res.body) {
        seen += (chunk as Buffer).toString('latin1');
        if (seen.includes(marker)) {
          arrival[i] = performance.now();
          break;
        }
        if (seen.length > 1 << 16) seen = seen.slice(-1024);
      }
      res.body.destroy();
      if (Number.isNaN(arrival[i] as number)) why.add('200 without the message');
    } catch (err) {
      if (Number.isNaN(arrival[i] as number)) why.add(errorName(err));
    } finally {
      settled++;
    }
  };
  const t = performance.now();
  const all: Promise<void>[] = [];
  try {
    // In waves: 10,000 connections at once overflow the server's accept queue (SYNs dropped and retried seconds
    // later), which measures a connection storm rather than readers waiting. After each wave is on the wire, a HEAD
    // on a new connection, queued behind the wave's: once answered, the server has taken the wave in.
    const connectBy = t + o.timeoutMs;
    for (let from = 0; from < n; from += WAVE) {
      const to = Math.min(n, from + WAVE);
      for (let i = from; i < to; i++) all.push(one(i));
      for (;;) {
        const s = pool.stats;
        if (s.running + settled >= to || performance.now() > connectBy) break;
        await sleep(5);
      }
      await behind(origin, Math.max(0, connectBy - performance.now()));
    }
    const connectMs = performance.now() - t;
    await sleep(o.settleMs);
    await o.roundTrip();
    const tTrigger = performance.now();
    const sentAt = await o.trigger();
    const triggerMs = performance.now() - tTrigger;
    const deadline = performance.now() + o.timeoutMs;
    while (settled < n && performance.now() < deadline) await sleep(2);
    let first = Number.POSITIVE_INFINITY;
    for (const s of sentAt) if (s < first) first = s;
    const lat: number[] = [];
    let last = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const a = arrival[i] as number;
      if (Number.isNaN(a)) continue;
      lat.push(a - (sentAt[i] as number));
      last = Math.max(last, a - first);
    }
    lat.sort((a, b) => a - b);
    const served = lat.length;
    const unanswered = n - served - refused - why.total;
    if (unanswered > 0) for (let i = 0; i < unanswered; i++) why.add('no answer by the deadline');
    return {
      readers: n,
      served,
      refused,
      other: why.total,
      otherWhy: why.toString(),
      connectMs,
      lastServedMs: lat.length > 0 ? last : Number.NaN,
      p50Ms: percentile(lat, 50),
      p99Ms: percentile(lat, 99),
      triggerMs,
    };
  } finally {
    for (const b of bodies) b.destroy();
    await Promise.race([Promise.all(all), sleep(5_000)]);
    await pool.destroy().catch(() => {});
  }
}

/** Readers connected at a time (see `liveReaders`). */
const WAVE = 1_000;

/** A HEAD request on a connection of its own, waited for at most `ms`; its answer does not matter. */
async function behind(origin: string, ms: number): Promise<void> {
  const pool = new Pool(origin, { connections: 1, headersTimeout: 0, bodyTimeout: 0 });
  try {
    await bounded(
      ms,
      'HEAD behind a wave of readers',
      pool.request({ method: 'HEAD', path: '/' }).then((res) => res.body.dump()),
    );
  } catch {
    // slow or refused: the deadline of the caller bounds it
  } finally {
    await pool.destroy().catch(() => {});
  }
}

/** `readers` long-poll readers at the tail of one new stream, then one append. */
export async function readerBurst(
  client: Client,
  name: string,
  readers: number,
  settleMs: number,
  timeoutMs: number,
): Promise<LiveOutcome & { ackMs: number }> {
  await client.create(name, OCTET);
  await client.append(name, Buffer.from('first;'), OCTET);
  const offset = await client.tail(name);
  const marker = `burst-marker-${name};`;
  const path = `${client.path(name)}?offset=${encodeURIComponent(offset)}&live=long-poll`;
  let ackMs = Number.NaN;
  const r = await liveReaders(
    client.origin,
    Array.from({ length: readers }, () => path),
    Array.from({ length: readers }, () => marker),
    {
      settleMs,
      timeoutMs,
      roundTrip: () => client.tail(name),
      trigger: async () => {
        const t0 = performance.now();
        await client.append(name, Buffer.from(marker), OCTET);
        ackMs = performance.now() - t0;
        return new Float64Array(readers).fill(t0);
      },
    },
  );
  await client.remove(name).catch(() => {});
  return { ...r, ackMs };
}

/**
 * One long-poll reader at the tail of each of `names`, then one append to each (`writers` in flight); each reader
 * waits for the append to its own stream.
 */
export async function perStreamReaders(
  client: Client,
  names: readonly string[],
  writers: number,
  settleMs: number,
  timeoutMs: number,
): Promise<LiveOutcome & { appendsMs: number; appendFailures: Tally }> {
  const offsets: string[] = new Array(names.length).fill('-1');
  await runBounded(names.length, writers, async (i) => {
    offsets[i] = await client.tail(names[i] as string);
  });
  const markers = names.map((_, i) => `reader-marker-${process.pid}-${i};`);
  const appendFailures = new Tally();
  const paths = names.map(
    (n, i) => `${client.path(n)}?offset=${encodeURIComponent(offsets[i] as string)}&live=long-poll`,
  );
  return liveReaders(client.origin, paths, markers, {
    settleMs,
    timeoutMs,
    roundTrip: () => client.tail(names[0] as string),
    trigger: async () => {
      const sentAt = new Float64Array(names.length).fill(Number.NaN);
      await runBounded(names.length, writers, async (i) => {
        sentAt[i] = performance.now();
        try {
          await client.append(names[i] as string, Buffer.from(markers[i] as string), OCTET);
        } catch (err) {
          appendFailures.add(/: (\d{3})$/.exec((err as Error).message)?.[1] ?? errorName(err));
        }
      });
      return sentAt;
    },
  }).then((r) => ({ ...r, appendsMs: r.triggerMs, appendFailures }));
}

export interface Timed {
  readonly target: RunningTarget<string>;
  /** Spawn → ready (Streamkeep: `/readyz` answers 200; the reference: its first answer to any request). */
  readonly readyMs: number;
  /** Ready → the first complete read of `probe` from the start. */
  readMs: number;
}

/** Starts a server and times it to ready and to the first read of `probe`, which must hold some data. */
export async function timedStart(
  spec: TargetSpec<string>,
  options: StartOptions,
  probe: string,
  timeoutMs: number,
): Promise<Timed> {
  const t = performance.now();
  const target = await startTarget(spec, options);
  const client = new Client(target.url, 1);
  const deadline = t + timeoutMs;
  try {
    if (spec.system === 'reference') {
      for (;;) {
        try {
          const res = await client.pool.request({ method: 'HEAD', path: client.path('bench-ready-probe') });
          await res.body.dump();
          if (res.statusCode < 500) break;
        } catch {
          // not answering yet
        }
        if (performance.now() > deadline) throw new Error(`no answer within ${timeoutMs / 1000} s`);
        await sleep(2);
      }
    }
    const readyMs = performance.now() - t;
    const t1 = performance.now();
    for (;;) {
      try {
        const res = await client.pool.request({
          method: 'GET',
          path: `${client.path(probe)}?offset=-1`,
          headers: { 'accept-encoding': 'identity' },
        });
        const body = await res.body.arrayBuffer();
        if (res.statusCode === 200 && body.byteLength > 0) break;
      } catch {
        // not serving yet
      }
      if (performance.now() > deadline) throw new Error(`no read of ${probe} within ${timeoutMs / 1000} s`);
      await sleep(2);
    }
    return { target, readyMs, readMs: performance.now() - t1 };
  } catch (err) {
    await target.stop();
    throw err;
  } finally {
    await client.close();
  }
}
