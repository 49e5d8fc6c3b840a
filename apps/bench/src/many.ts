import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from './client.js';
import type { BenchConfig } from './config.js';
import {
  bounded,
  createStreams,
  OCTET,
  openFileLimit,
  perStreamReaders,
  readerBurst,
  spreadAppends,
  timedStart,
} from './many-load.js';
import { PgUnavailable, startPgCluster } from './postgres.js';
import type { Progress } from './progress.js';
import type { ManyInfo, Results } from './results.js';
import { appendThroughput, streamName, warmUp } from './scenarios.js';
import {
  type ManyPgSeriesId,
  type RunningTarget,
  type StartOptions,
  startTarget,
  type TargetId,
  type TargetSpec,
  targetById,
} from './targets.js';

type ManyId = TargetId | ManyPgSeriesId;
type Base = { longPollTimeoutMs: number; cpuProfDir?: string };

const PG_SPEC: TargetSpec<ManyPgSeriesId> = {
  id: 'sk-postgres',
  label: 'Streamkeep postgres',
  system: 'streamkeep',
  storage: 'postgres',
};

/** Table of each figure: the report renders them by these names. */
export const MANY_GROUPS = {
  writes: 'Many streams: creates and appends',
  memory: 'Many streams: memory',
  restart: 'Many streams: restart',
  readers: 'Many streams: live readers',
} as const;

/** Steps of one target, for the progress counter. */
function targetSteps(c: BenchConfig, persisting: boolean): number {
  return 4 + c.many.reps + (persisting ? c.many.restarts : 0);
}

export function countManySteps(c: BenchConfig): number {
  let n = 0;
  for (const id of c.many.targets) {
    if (c.targets.includes(id)) n += targetSteps(c, targetById(id).storage !== 'memory');
  }
  return n + (c.many.pgStreams > 0 ? targetSteps(c, true) : 0);
}

/** Fresh, empty storage for a server: a new data directory, a new schema, or nothing (memory). */
interface Storage {
  fresh(): Promise<Partial<StartOptions>>;
  cleanup(): Promise<void>;
}

function fileStorage(id: string, root: string): Storage {
  const dirs: string[] = [];
  return {
    async fresh() {
      const dataDir = await mkdtemp(join(root, `sk-bench-many-${id}-`));
      dirs.push(dataDir);
      return { dataDir };
    },
    async cleanup() {
      for (const d of dirs) await rm(d, { recursive: true, force: true }).catch(() => {});
    },
  };
}

function pgStorage(url: string): Storage {
  return {
    fresh: async () => ({ postgres: { url, schema: `bench_many_${randomBytes(4).toString('hex')}` } }),
    cleanup: async () => {},
  };
}

const memoryStorage: Storage = { fresh: async () => ({}), cleanup: async () => {} };

/**
 * The many-streams scenario against every configured target, one at a time, each on a fresh server (data of file
 * targets in the OS temporary directory, a real disk: the creates are durable there), then Streamkeep on PostgreSQL
 * at `pgStreams` when a cluster can be started. A target that fails, or is too slow, gets the reason in the report
 * instead of its figures; the run goes on.
 */
export async function manyScenarios(
  c: BenchConfig,
  results: Results,
  progress: Progress,
  base: Base,
  onPartial?: (results: Results) => Promise<void>,
): Promise<void> {
  const info: ManyInfo = results.many ?? { streams: {}, issues: {} };
  results.many = info;
  const limit = openFileLimit();
  for (const id of c.many.targets) {
    if (!c.targets.includes(id)) continue;
    const spec = targetById(id);
    const storage = spec.storage === 'file' ? fileStorage(id, tmpdir()) : memoryStorage;
    await manyOne(c, spec, storage, c.many.streams, results, progress, base, limit);
    await onPartial?.(results);
  }
  if (c.many.pgStreams <= 0) return;
  const p = c.postgres;
  let cluster: Awaited<ReturnType<typeof startPgCluster>>;
  try {
    cluster = await startPgCluster(p.durable, p.install);
  } catch (err) {
    if (!(err instanceof PgUnavailable)) throw err;
    info.postgres = { skipped: err.message, durable: p.durable };
    results.notes.push(`Many streams on PostgreSQL skipped: ${err.message}`);
    for (let i = 0; i < targetSteps(c, true); i++) progress.step('many postgres: skipped');
    return;
  }
  info.postgres = {
    version: cluster.version,
    durable: cluster.durable,
    dir: cluster.dir,
    startS: cluster.startS,
  };
  progress.info(
    `many: postgres ${cluster.version} at ${cluster.url} (${cluster.durable ? 'durable' : 'fsync off'})`,
  );
  try {
    await manyOne(c, PG_SPEC, pgStorage(cluster.url), c.many.pgStreams, results, progress, base, limit);
  } finally {
    await cluster.stop();
  }
  await onPartial?.(results);
}

const mib = (b: number): number => b / 2 ** 20;

/** The scenario against one server configuration with `n` streams. */
async function manyOne(
  c: BenchConfig,
  spec: TargetSpec<ManyId>,
  storage: Storage,
  n: number,
  results: Results,
  progress: Progress,
  base: Base,
  fdLimit: number | undefined,
): Promise<void> {
  const m = c.many;
  const id = spec.id;
  const info = results.many as ManyInfo;
  info.streams[id] = n;
  const persisting = spec.storage !== 'memory';
  let steps = targetSteps(c, persisting);
  const step = (message: string): void => {
    steps--;
    progress.step(`${id} many: ${message}`);
  };
  const issue = (key: string, text: string): void => {
    const before = info.issues[id]?.[`many/${key}`];
    info.issues[id] = { ...(info.issues[id] ?? {}), [`many/${key}`]: before ? `${before}; ${text}` : text };
    progress.info(`${id} many: ${text}`);
  };
  const rec = (
    group: keyof typeof MANY_GROUPS,
    key: string,
    label: string,
    unit: string,
    better: 'higher' | 'lower',
    value: number,
  ): void => {
    // A figure that could not be measured (no reader served, say) is left out, not recorded as NaN.
    if (Number.isFinite(value))
      results.record({ key: `many/${key}`, group: MANY_GROUPS[group], label, unit, better }, id, value);
  };
  /** Runs one part; a failure is recorded against `key` and the scenario goes on with the next part. */
  const part = async (key: string, body: () => Promise<void>): Promise<void> => {
    try {
      await body();
    } catch (err) {
      issue(key, `failed: ${(err as Error).message.split('\n')[0]}`);
    }
  };
  const live = new Set<RunningTarget<string>>();
  let client: Client | undefined;
  const startOpts = { ...base, serverLimits: m.serverLimits };
  try {
    const main = await storage.fresh();
    let target: RunningTarget<string>;
    try {
      target = await startTarget(spec, { ...startOpts, ...main });
    } catch (err) {
      issue('creates', `did not start: ${(err as Error).message.split('\n')[0]}`);
      return;
    }
    live.add(target);
    client = new Client(target.url, 128);
    const warm = await warmUp(client, c.serverWarmupMs);
    await sleep(m.settleMs);
    const rss0 = await target.rss();
    rec('memory', 'rss/live0', 'RSS with no streams (after the warm-up)', 'MiB', 'lower', mib(rss0.total));
    step(`started (pid ${target.pid}), warmed up (${warm} appends), RSS ${mib(rss0.total).toFixed(1)} MiB`);

    const names = Array.from({ length: n }, (_, i) => `many-${i}`);
    const cr = await createStreams(client, names, m.concurrency, m.createTimeoutMs, (done) =>
      progress.info(`${id} many: ${done.toLocaleString('en')} of ${n.toLocaleString('en')} created`),
    );
    const created = cr.created;
    rec('writes', 'created', 'streams created', 'streams', 'higher', created.length);
    rec('writes', 'creates', `creates/s (PUT, ${m.concurrency} in flight)`, 'per s', 'higher', cr.perSec);
    if (cr.timedOut) {
      issue(
        'creates',
        `timed out after ${Math.round(cr.ms / 1000)} s at ${created.length.toLocaleString('en')} of ${n.toLocaleString('en')} creates`,
      );
    }
    if (cr.failures.total > 0) issue('created', `failed creates: ${cr.failures}`);
    step(
      `${created.length.toLocaleString('en')} streams created in ${(cr.ms / 1000).toFixed(1)} s, ${Math.round(cr.perSec)}/s` +
        (cr.failures.total ? ` (${cr.failures})` : ''),
    );
    if (created.length === 0) return;

    await sleep(m.settleMs);
    const rssN = await target.rss();
    rec('memory', 'rss/liveN', 'RSS with the streams created, idle', 'MiB', 'lower', mib(rssN.total));
    const perLive = (rssN.total - rss0.total) / created.length;
    rec('memory', 'rss/livePerStream', 'RSS per idle stream, live server', 'bytes', 'lower', perLive);

    const own = `${m.writers} writers on their own ${m.writers} streams`;
    const spread = `${m.writers} writers, each append to a random stream of the ${created.length.toLocaleString('en')}`;
    const pw = { writers: m.writers, size: m.size, durationMs: m.durationMs, warmupMs: m.warmupMs };
    const budget = m.durationMs + m.warmupMs + 60_000;
    for (let rep = 0; rep < m.reps; rep++) {
      let line = `appends rep ${rep + 1}:`;
      await part('append/own', async () => {
        const r = await bounded(
          budget,
          'appends',
          appendThroughput(client as Client, { ...pw, layout: 'own' }),
        );
        rec('writes', 'append/own', `appends/s, ${own}`, 'per s', 'higher', r.perSec);
        if (r.errors) issue('append/own', `run ${rep + 1}: ${r.errors} append errors`);
        line += ` own ${Math.round(r.perSec)}/s (p99 ${r.p99Ms.toFixed(1)} ms)`;
      });
      await part('append/spread', async () => {
        const r = await bounded(budget, 'appends', spreadAppends(client as Client, created, pw));
        rec('writes', 'append/spread', `appends/s, ${spread}`, 'per s', 'higher', r.perSec);
        line += `, spread ${Math.round(r.perSec)}/s (p99 ${r.p99Ms.toFixed(1)} ms, ${r.touched} streams)`;
        if (r.errors.total) issue('append/spread', `run ${rep + 1}: append errors ${r.errors}`);
      });
      step(line);
    }

    const readerBudget = 2 * m.readerTimeoutMs + 60_000;
    const cap = fdLimit === undefined ? m.burstReaders : Math.max(1, fdLimit - 1_024);
    const burstN = Math.min(m.burstReaders, cap);
    if (burstN < m.burstReaders) {
      issue(
        'burst/served',
        `${burstN} readers, not ${m.burstReaders}: this process may open ${fdLimit} files`,
      );
    }
    const readerSettle = m.settleMs / 2 + burstN / 10;
    await part('burst/served', async () => {
      const b = await bounded(
        readerBudget,
        'reader burst',
        readerBurst(client as Client, streamName('burst'), burstN, readerSettle, m.readerTimeoutMs),
      );
      const what = `${burstN.toLocaleString('en')} long-poll readers on one stream, one append`;
      rec('readers', 'burst/served', `${what}: served`, 'readers', 'higher', b.served);
      rec('readers', 'burst/refused', `${what}: refused (503)`, 'readers', 'lower', b.refused);
      rec('readers', 'burst/other', `${what}: other outcome`, 'readers', 'lower', b.other);
      rec('readers', 'burst/connect', `${what}: all requests on the wire`, 'ms', 'lower', b.connectMs);
      rec('readers', 'burst/last', `${what}: last reader served`, 'ms', 'lower', b.lastServedMs);
      rec('readers', 'burst/p50', `${what}: median reader served`, 'ms', 'lower', b.p50Ms);
      rec('readers', 'burst/ack', `${what}: writer's acknowledgement`, 'ms', 'lower', b.ackMs);
      if (b.other > 0) issue('burst/other', b.otherWhy);
      step(
        `burst: ${b.served}/${burstN} served, ${b.refused} refused (503), ${b.other} other${b.other ? ` (${b.otherWhy})` : ''}; ` +
          `last served after ${b.lastServedMs.toFixed(1)} ms, ack ${b.ackMs.toFixed(1)} ms; connected in ${b.connectMs.toFixed(0)} ms`,
      );
    });
    const readerNames = created.slice(0, Math.min(m.streamReaders, created.length));
    await part('readers/served', async () => {
      const k = readerNames.length;
      const r = await bounded(
        readerBudget,
        'readers on their own streams',
        perStreamReaders(
          client as Client,
          readerNames,
          m.writers,
          m.settleMs / 2 + k / 10,
          m.readerTimeoutMs,
        ),
      );
      const what = `${k.toLocaleString('en')} long-poll readers on ${k.toLocaleString('en')} streams, one append to each`;
      rec('readers', 'readers/connect', `${what}: all requests on the wire`, 'ms', 'lower', r.connectMs);
      rec('readers', 'readers/served', `${what}: served`, 'readers', 'higher', r.served);
      rec('readers', 'readers/refused', `${what}: refused (503)`, 'readers', 'lower', r.refused);
      rec('readers', 'readers/other', `${what}: other outcome`, 'readers', 'lower', r.other);
      rec(
        'readers',
        'readers/last',
        `${what}: last reader served (from the first append)`,
        'ms',
        'lower',
        r.lastServedMs,
      );
      rec('readers', 'readers/p50', `${what}: reader served after its append, p50`, 'ms', 'lower', r.p50Ms);
      rec('readers', 'readers/p99', `${what}: reader served after its append, p99`, 'ms', 'lower', r.p99Ms);
      if (r.other > 0) issue('readers/other', r.otherWhy);
      if (r.appendFailures.total > 0) {
        issue(
          'readers/other',
          `the appends to ${r.appendFailures.total} of the ${k} streams failed (${r.appendFailures}), so their readers were never woken`,
        );
      }
      step(
        `${k} readers on ${k} streams: ${r.served} served, ${r.refused} refused, ${r.other} other${r.other ? ` (${r.otherWhy})` : ''}; ` +
          `all served ${r.lastServedMs.toFixed(1)} ms after the first of the appends (${r.appendsMs.toFixed(0)} ms for them all), ` +
          `p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms; connected in ${r.connectMs.toFixed(0)} ms`,
      );
    });
    if (!persisting) return;

    // Probes for the reads after restart: random streams of the N, each given data, one per restart.
    const probes = Array.from(
      { length: m.restarts },
      () => created[Math.floor(Math.random() * created.length)] as string,
    );
    for (const p of probes) await client.append(p, Buffer.alloc(m.size, 0x70), OCTET);
    await client.close();
    client = undefined;
    {
      const t = performance.now();
      await target.stop();
      live.delete(target);
      rec(
        'restart',
        'stop',
        'graceful stop (SIGTERM → exit) with the streams',
        'ms',
        'lower',
        performance.now() - t,
      );
    }
    // The baseline: a data directory (or schema) holding one stream of one message, started, filled, stopped.
    const empty = { ...startOpts, ...(await storage.fresh()) };
    {
      const t = await startTarget(spec, empty);
      live.add(t);
      const c1 = new Client(t.url, 1);
      try {
        await c1.create('probe', OCTET);
        await c1.append('probe', Buffer.alloc(m.size, 0x70), OCTET);
      } finally {
        await c1.close();
      }
      await t.stop();
      live.delete(t);
    }
    const full = { ...startOpts, ...main };
    const startBudget = 120_000;
    for (let r = 0; r < m.restarts; r++) {
      await part('restart/readyN', async () => {
        const e = await bounded(
          startBudget,
          'restart',
          timedStart(spec, empty, 'probe', startBudget - 5_000),
        );
        live.add(e.target);
        await sleep(m.settleMs);
        const rssE = await e.target.rss();
        await e.target.stop();
        live.delete(e.target);
        const f = await bounded(
          startBudget,
          'restart',
          timedStart(spec, full, probes[r] as string, startBudget - 5_000),
        );
        live.add(f.target);
        await sleep(m.settleMs);
        const rssF = await f.target.rss();
        await f.target.stop();
        live.delete(f.target);
        const nStreams = `${created.length.toLocaleString('en')} streams`;
        rec(
          'restart',
          'restart/ready0',
          'start → ready, empty data directory (one stream)',
          'ms',
          'lower',
          e.readyMs,
        );
        rec('restart', 'restart/readyN', `start → ready, ${nStreams}`, 'ms', 'lower', f.readyMs);
        rec(
          'restart',
          'restart/read0',
          'ready → first read, empty data directory (one stream)',
          'ms',
          'lower',
          e.readMs,
        );
        rec(
          'restart',
          'restart/readN',
          `ready → first read of a random stream, ${nStreams}`,
          'ms',
          'lower',
          f.readMs,
        );
        rec(
          'memory',
          'rss/restart0',
          'RSS after restart and one read, empty data directory',
          'MiB',
          'lower',
          mib(rssE.total),
        );
        rec(
          'memory',
          'rss/restartN',
          `RSS after restart and one read, ${nStreams}`,
          'MiB',
          'lower',
          mib(rssF.total),
        );
        const per = (rssF.total - rssE.total) / created.length;
        rec('memory', 'rss/restartPerStream', 'RSS per idle stream, after restart', 'bytes', 'lower', per);
        step(
          `restart ${r + 1}: ready ${f.readyMs.toFixed(0)} ms (empty ${e.readyMs.toFixed(0)} ms), ` +
            `first read ${f.readMs.toFixed(1)} ms (empty ${e.readMs.toFixed(1)} ms); RSS ${mib(rssF.total).toFixed(1)} MiB ` +
            `(empty ${mib(rssE.total).toFixed(1)} MiB): ${per.toFixed(0)} B per stream`,
        );
      });
    }
  } catch (err) {
    issue('error', `stopped: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    await client?.close().catch(() => {});
    for (const t of live) await t.stop().catch(() => {});
    await storage.cleanup();
    while (steps > 0) step('skipped');
  }
}
