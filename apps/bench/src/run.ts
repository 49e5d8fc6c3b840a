import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from './client.js';
import type { BenchConfig } from './config.js';
import { countManySteps, manyScenarios } from './many.js';
import { countPostgresSteps, postgresScenarios } from './postgres.js';
import { probeFdatasync } from './probe.js';
import { marked } from './profile.js';
import { Progress } from './progress.js';
import { Results } from './results.js';
import {
  appendThroughput,
  fanout,
  liveLatency,
  loadMany,
  loadStream,
  streamName,
  warmUp,
} from './scenarios.js';
import { countSubscriptionSteps, subscriptionScenarios } from './subscriptions.js';
import { type RunningTarget, startTarget, type TargetId, targetById } from './targets.js';

export interface RunOptions {
  readonly cpuProfDir?: string;
  readonly quiet?: boolean;
  /** Scenario groups to run; all when unset. */
  readonly only?: readonly Scenario[];
  /** Called after each phase (and each bulk-loaded target) with the results so far, e.g. to save a partial report. */
  readonly onPartial?: (results: Results) => Promise<void>;
}

export type Scenario =
  | 'append'
  | 'catchup'
  | 'latency'
  | 'fanout'
  | 'rss'
  | 'postgres'
  | 'many'
  | 'subscriptions';
export const ALL_SCENARIOS: readonly Scenario[] = [
  'append',
  'catchup',
  'latency',
  'fanout',
  'rss',
  'postgres',
  'many',
  'subscriptions',
];

export const fmtSize = (n: number): string => (n >= 1024 ? `${n / 1024} KiB` : `${n} B`);

function countSteps(c: BenchConfig, only: readonly Scenario[]): number {
  const a = c.append;
  let perTarget = 0;
  if (only.includes('append')) perTarget += a.sizes.length * a.writers.length * a.layouts.length * c.reps;
  if (only.includes('catchup')) perTarget += 1 + 2 * c.catchup.reps;
  if (only.includes('latency')) perTarget += 2 * c.latency.reps;
  if (only.includes('fanout')) perTarget += 2 * c.fanout.reps;
  let steps = perTarget * c.targets.length;
  if (only.includes('rss')) {
    const loaded = c.rss.targets.filter((t) => c.targets.includes(t));
    for (const t of loaded)
      steps += c.rss.loads * (1 + (targetById(t).storage === 'file' ? c.rss.restarts : 0));
  }
  if (only.includes('postgres')) steps += countPostgresSteps(c);
  if (only.includes('many')) steps += countManySteps(c);
  if (only.includes('subscriptions')) steps += countSubscriptionSteps(c);
  return steps;
}

/** Runs every configured scenario against every configured target and returns the measurements. */
export async function runBench(config: BenchConfig, options: RunOptions = {}): Promise<Results> {
  const only = options.only ?? ALL_SCENARIOS;
  const results = new Results();
  const progress = new Progress(countSteps(config, only), options.quiet);
  const base = {
    longPollTimeoutMs: config.longPollTimeoutMs,
    ...(options.cpuProfDir ? { cpuProfDir: options.cpuProfDir } : {}),
  };
  // The floor under every acknowledgement that waits for the disk, measured where phase 1's file targets write (and,
  // on the usual one-disk machine, where the PostgreSQL cluster keeps its WAL), before any server starts.
  results.fsyncProbe = probeFdatasync(tmpdir(), config.fsyncProbeIterations);
  {
    const f = results.fsyncProbe;
    progress.info(
      `disk probe: fdatasync of a 100 B append in ${f.dir} (${f.fsType}): p50 ${f.p50Ms.toFixed(2)} ms, ` +
        `p99 ${f.p99Ms.toFixed(2)} ms (${f.iterations} rounds)`,
    );
  }
  // Phase 1: durability-sensitive scenarios, file targets on disk (the OS temporary directory). All servers run at
  // once and every measurement cell visits the targets in turn, so slow drifts in machine load hit them alike.
  if (only.some((x) => x === 'append' || x === 'latency' || x === 'fanout')) {
    const live = only.includes('latency') || only.includes('fanout');
    await withTargets(config, config.targets, base, progress, live, async (clients, targets) => {
      if (only.includes('append'))
        await marked('append', () => appendScenarios(config, clients, targets, results, progress));
      if (only.includes('latency'))
        await marked('latency', () => latencyScenarios(config, clients, results, progress));
      if (only.includes('fanout'))
        await marked('fanout', () => fanoutScenarios(config, clients, results, progress));
    });
    await options.onPartial?.(results);
  }
  // Phase 1b: Streamkeep on PostgreSQL, one instance vs two (its own servers and cluster; the data on disk).
  if (only.includes('postgres')) {
    await marked('postgres', () => postgresScenarios(config, results, progress, base));
    await options.onPartial?.(results);
  }
  // Phases 2 and 3 load many messages first; file targets keep their data on tmpfs, where fsync is free, so the load
  // does not take hours on the reference (see the report's method section). They measure reads, memory and recovery.
  if (only.includes('catchup')) {
    await withTargets(
      config,
      config.targets,
      { ...base, dataRoot: config.bulkDataRoot },
      progress,
      false,
      async (clients) => {
        await catchupScenario(config, clients, results, progress);
      },
    );
    await options.onPartial?.(results);
  }
  if (only.includes('rss')) {
    for (const id of config.rss.targets) {
      if (!config.targets.includes(id)) continue;
      for (let load = 0; load < config.rss.loads; load++) {
        await rssScenario(config, id, results, progress, options.cpuProfDir);
      }
      await options.onPartial?.(results);
    }
  }
  // Phase 4: many streams, one target at a time on a fresh server (file targets on disk), then on PostgreSQL.
  if (only.includes('many')) {
    await marked('many', () => manyScenarios(config, results, progress, base, options.onPartial));
  }
  // Phase 5: subscriptions (webhook wake latency; appends with subscriptions vs none), one target at a time.
  if (only.includes('subscriptions')) {
    await marked('subscriptions', () =>
      subscriptionScenarios(config, results, progress, base, options.onPartial),
    );
  }
  return results;
}

type Clients = ReadonlyMap<TargetId, Client>;
type Targets = ReadonlyMap<TargetId, RunningTarget>;

/**
 * Starts every target, warms each up (JIT, connection pool; with `live`, also rounds of long-poll and SSE fan-out so
 * that the live-read paths are compiled before they are measured), runs `body`, then stops them all.
 */
async function withTargets(
  c: BenchConfig,
  ids: readonly TargetId[],
  options: Parameters<typeof startTarget>[1],
  progress: Progress,
  live: boolean,
  body: (clients: Clients, targets: Targets) => Promise<void>,
): Promise<void> {
  const running = new Map<TargetId, RunningTarget>();
  const clients = new Map<TargetId, Client>();
  try {
    for (const id of ids) {
      const target = await startTarget(targetById(id), options);
      running.set(id, target);
      clients.set(id, new Client(target.url, 128));
      progress.info(
        `${target.spec.label}: pid ${target.pid} at ${target.url}, data ${target.dataDir ?? 'in memory'}`,
      );
    }
    for (const [id, client] of clients) {
      const n = await warmUp(client, c.serverWarmupMs);
      let rounds = 0;
      if (live) {
        for (let i = 0; i < c.liveWarmupRounds; i++) {
          for (const mode of ['long-poll', 'sse'] as const) {
            await fanout(client, mode, c.fanout.readers, c.fanout.settleMs);
            rounds++;
          }
        }
      }
      progress.info(
        `${id}: warmed up (${n} appends and reads` +
          (rounds > 0 ? `, ${rounds} fan-outs to ${c.fanout.readers} live readers)` : ')'),
      );
    }
    await body(clients, running);
  } finally {
    for (const c of clients.values()) await c.close().catch(() => {});
    for (const t of running.values()) await t.dispose().catch(() => {});
  }
}

/**
 * Flushes the file systems (`sync`) between append cells, so that the write-back and journal work a cell leaves behind
 * (its streams are deleted, but the file system still commits that) is not charged to the next cell's target.
 */
async function settleDisks(): Promise<void> {
  await new Promise<void>((resolve) => execFile('sync', () => resolve()));
}

async function appendScenarios(
  c: BenchConfig,
  clients: Clients,
  targets: Targets,
  results: Results,
  progress: Progress,
): Promise<void> {
  for (let rep = 0; rep < c.reps; rep++) {
    for (const layout of c.append.layouts) {
      for (const size of c.append.sizes) {
        for (const writers of c.append.writers) {
          for (const [id, client] of clients) {
            const r = await appendThroughput(client, {
              size,
              writers,
              layout,
              durationMs: c.append.durationMs,
              warmupMs: c.append.warmupMs,
              cpuSeconds: targets.get(id)?.cpuSeconds,
            });
            await settleDisks();
            const where = layout === 'own' ? 'own streams' : 'one shared stream';
            const base = `append/${layout}/${size}/${writers}`;
            const group = `Appends on ${where}`;
            const label = `${fmtSize(size)} × ${writers} writer${writers > 1 ? 's' : ''}`;
            results.record(
              { key: `${base}/perSec`, group, label, unit: 'appends/s', better: 'higher' },
              id,
              r.perSec,
            );
            results.record(
              {
                key: `${base}/p99`,
                group: `${group}: acknowledgement latency p99`,
                label,
                unit: 'ms',
                better: 'lower',
              },
              id,
              r.p99Ms,
            );
            results.record(
              {
                key: `${base}/cpu`,
                group: `Server CPU per append, ${where}`,
                label,
                unit: 'µs',
                better: 'lower',
              },
              id,
              r.cpuUsPerAppend,
            );
            progress.step(
              `${id} append ${label} ${layout} rep ${rep + 1}: ${Math.round(r.perSec)}/s, ` +
                `${r.mibPerSec.toFixed(1)} MiB/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ` +
                `server CPU ${r.cpuUsPerAppend.toFixed(0)} µs/append` +
                (r.errors ? `, ${r.errors} errors` : ''),
            );
          }
        }
      }
    }
  }
}

async function catchupScenario(
  c: BenchConfig,
  clients: Clients,
  results: Results,
  progress: Progress,
): Promise<void> {
  const { messages, size } = c.catchup;
  const names = new Map<TargetId, string>();
  for (const [id, client] of clients) {
    const name = streamName('catchup');
    names.set(id, name);
    const loadRate = await loadStream(client, name, messages, size, c.catchup.loadConcurrency);
    results.record(
      {
        key: 'catchup/load',
        group: 'Loading (setup of the catch-up scenario; data on tmpfs)',
        label: `${messages.toLocaleString('en')} × ${fmtSize(size)} into one stream, ${c.catchup.loadConcurrency} writers`,
        unit: 'appends/s',
        better: 'higher',
      },
      id,
      loadRate,
    );
    progress.step(`${id} catch-up: loaded ${messages} × ${size} B at ${Math.round(loadRate)}/s`);
  }
  for (let rep = 0; rep < c.catchup.reps; rep++) {
    for (const encoding of ['identity', 'gzip'] as const) {
      for (const [id, client] of clients) {
        const name = names.get(id) as string;
        const t = performance.now();
        const r = await marked(`catchup-${encoding}`, () => client.readAll(name, encoding));
        const ms = performance.now() - t;
        if (r.bytes !== messages * size) {
          throw new Error(`${id} catch-up read ${r.bytes} bytes, expected ${messages * size}`);
        }
        results.record(
          {
            key: `catchup/${encoding}`,
            group: 'Catch-up read',
            label: `${messages.toLocaleString('en')} × ${fmtSize(size)}, ${encoding}`,
            unit: 'ms',
            better: 'lower',
          },
          id,
          ms,
        );
        progress.step(
          `${id} catch-up ${encoding} rep ${rep + 1}: ${ms.toFixed(1)} ms in ${r.requests} request(s)`,
        );
      }
    }
  }
}

async function latencyScenarios(
  c: BenchConfig,
  clients: Clients,
  results: Results,
  progress: Progress,
): Promise<void> {
  for (let rep = 0; rep < c.latency.reps; rep++) {
    for (const mode of ['long-poll', 'sse'] as const) {
      for (const [id, client] of clients) {
        const r = await liveLatency(client, mode, c.latency.samples, c.latency.intervalMs);
        const group = 'Live delivery latency';
        for (const [q, v] of [
          ['p50', r.p50Ms],
          ['p90', r.p90Ms],
          ['p99', r.p99Ms],
        ] as const) {
          results.record(
            { key: `latency/${mode}/${q}`, group, label: `${mode} ${q}`, unit: 'ms', better: 'lower' },
            id,
            v,
          );
        }
        progress.step(
          `${id} latency ${mode} rep ${rep + 1}: p50 ${r.p50Ms.toFixed(2)} ms, p90 ${r.p90Ms.toFixed(2)} ms, ` +
            `p99 ${r.p99Ms.toFixed(2)} ms (${r.samples} samples)`,
        );
      }
    }
  }
}

async function fanoutScenarios(
  c: BenchConfig,
  clients: Clients,
  results: Results,
  progress: Progress,
): Promise<void> {
  const n = c.fanout.readers;
  // One unmeasured round per target and mode right before measuring: the first fan-out after the append and latency
  // scenarios pays for what they left behind (a grown heap to collect, re-tiered code), for every server alike.
  for (const mode of ['long-poll', 'sse'] as const) {
    for (const client of clients.values()) {
      await fanout(client, mode, n, c.fanout.settleMs);
      await sleep(c.fanout.settleMs);
    }
  }
  for (let rep = 0; rep < c.fanout.reps; rep++) {
    for (const mode of ['long-poll', 'sse'] as const) {
      for (const [id, client] of clients) {
        const r = await fanout(client, mode, n, c.fanout.settleMs);
        const group = `Fan-out of one append to ${n.toLocaleString('en')} readers`;
        const rec = (what: string, label: string, v: number): void =>
          results.record(
            { key: `fanout/${mode}/${what}`, group, label: `${mode}: ${label}`, unit: 'ms', better: 'lower' },
            id,
            v,
          );
        rec('all', 'all readers delivered', r.allDeliveredMs);
        rec('p50', 'median reader delivered', r.p50DeliveredMs);
        rec('ack', "writer's acknowledgement", r.ackMs);
        rec('baseAck', 'acknowledgement with no readers', r.baselineAckMs);
        progress.step(
          `${id} fan-out ${mode} rep ${rep + 1}: ${r.delivered}/${n} delivered, all in ${r.allDeliveredMs.toFixed(1)} ms, ` +
            `ack ${r.ackMs.toFixed(1)} ms (no readers ${r.baselineAckMs.toFixed(2)} ms)`,
        );
        // Lets the closed connections drain before the next target's run.
        await sleep(c.fanout.settleMs);
      }
    }
  }
}

async function rssScenario(
  c: BenchConfig,
  id: TargetId,
  results: Results,
  progress: Progress,
  cpuProfDir: string | undefined,
): Promise<void> {
  const spec = targetById(id);
  const { streams, perStream, size } = c.rss;
  const payloadMiB = (streams * perStream * size) / (1024 * 1024);
  const startOpts = { longPollTimeoutMs: c.longPollTimeoutMs, ...(cpuProfDir ? { cpuProfDir } : {}) };
  let target: RunningTarget = await startTarget(spec, { ...startOpts, dataRoot: c.bulkDataRoot });
  const dataDir = target.dataDir;
  const idleRss = await target.rss();
  const client = new Client(target.url, c.rss.concurrency);
  const desc = `${streams} streams × ${perStream.toLocaleString('en')} × ${fmtSize(size)} (${payloadMiB.toFixed(1)} MiB payload)`;
  try {
    const { names, perSec } = await loadMany(
      client,
      'rss',
      streams,
      perStream,
      size,
      c.rss.concurrency,
      (done) =>
        progress.info(
          `${id} loading: ${done.toLocaleString('en')} / ${(streams * perStream).toLocaleString('en')}`,
        ),
    );
    await sleep(500);
    const rss = await target.rss();
    const mib = (b: number): number => b / 2 ** 20;
    const group = `Memory and restart after loading ${desc}`;
    results.record(
      {
        key: 'rss/load',
        group,
        label: `load rate (${c.rss.concurrency} appends in flight)`,
        unit: 'appends/s',
        better: 'higher',
      },
      id,
      perSec,
    );
    results.record(
      { key: 'rss/idle', group, label: 'RSS before loading', unit: 'MiB', better: 'lower' },
      id,
      mib(idleRss.total),
    );
    results.record(
      { key: 'rss/loaded', group, label: 'RSS after loading', unit: 'MiB', better: 'lower' },
      id,
      mib(rss.total),
    );
    results.record(
      { key: 'rss/anon', group, label: 'of which anonymous (RssAnon)', unit: 'MiB', better: 'lower' },
      id,
      mib(rss.anon),
    );
    progress.step(
      `${id} loaded ${desc} at ${Math.round(perSec)}/s; RSS ${mib(rss.total).toFixed(1)} MiB (anon ${mib(rss.anon).toFixed(1)})`,
    );
    await client.close();
    if (spec.storage === 'file' && dataDir) {
      const probe = names[names.length - 1] as string;
      for (let r = 0; r < c.rss.restarts; r++) {
        await target.stop();
        const t = performance.now();
        target = await startTarget(spec, { ...startOpts, dataDir });
        const probeClient = new Client(target.url, 1);
        let bytes = 0;
        try {
          for (;;) {
            try {
              const res = await probeClient.pool.request({
                method: 'GET',
                path: `${probeClient.path(probe)}?offset=-1`,
                headers: { 'accept-encoding': 'identity' },
              });
              const body = await res.body.arrayBuffer();
              if (res.statusCode === 200 && body.byteLength > 0) {
                bytes = body.byteLength;
                break;
              }
            } catch {
              // not serving yet
            }
            if (performance.now() - t > 120_000) throw new Error(`${id}: no read within 120 s of restart`);
            await sleep(2);
          }
        } finally {
          await probeClient.close();
        }
        const ms = performance.now() - t;
        const rssAfter = await target.rss();
        results.record(
          { key: 'restart/firstRead', group, label: 'restart to first read', unit: 'ms', better: 'lower' },
          id,
          ms,
        );
        results.record(
          {
            key: 'restart/rss',
            group,
            label: 'RSS after restart and first read',
            unit: 'MiB',
            better: 'lower',
          },
          id,
          rssAfter.total / 2 ** 20,
        );
        progress.step(
          `${id} restart ${r + 1}: first read (${bytes} B) after ${ms.toFixed(1)} ms; RSS ${(rssAfter.total / 2 ** 20).toFixed(1)} MiB`,
        );
      }
    }
  } finally {
    await client.close().catch(() => {});
    await target.dispose();
    // A restarted server does not own the directory the first one made: remove it here.
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  }
}
