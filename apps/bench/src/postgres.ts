import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from './client.js';
import type { BenchConfig } from './config.js';
import type { Progress } from './progress.js';
import type { Results } from './results.js';
import { fmtSize } from './run.js';
import { appendThroughput, liveLatency, warmUp } from './scenarios.js';
import { type PgSeriesId, type RunningTarget, startTarget, type TargetSpec } from './targets.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository's cluster script; `STREAMKEEP_BENCH_PG_SCRIPT` replaces it (tests of the skip path). */
function clusterScript(): string {
  return (
    process.env.STREAMKEEP_BENCH_PG_SCRIPT ??
    resolve(here, '..', '..', '..', 'scripts', 'postgres', 'cluster.sh')
  );
}

/** A throwaway cluster started by `scripts/postgres/cluster.sh`. */
export interface PgCluster {
  /** `postgresql://postgres@127.0.0.1:<port>/postgres`. */
  readonly url: string;
  readonly dir: string;
  readonly version: string;
  readonly durable: boolean;
  readonly startS: number;
  /** Stops the cluster and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** PostgreSQL could not be started; the scenario is skipped with `reason`. */
export class PgUnavailable extends Error {}

function serverInstalled(): boolean {
  try {
    if (readdirSync('/usr/lib/postgresql').some((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`)))
      return true;
  } catch {
    // no Debian layout
  }
  try {
    execFileSync('sh', ['-c', 'command -v initdb'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts a cluster on a free loopback port (installing PostgreSQL first when `install` is set and it is missing).
 * The cluster is also stopped if the harness exits without calling `stop` (an error, or Ctrl-C through the CLI's
 * signal handlers), so an interrupted run leaves no server behind.
 */
export async function startPgCluster(durable: boolean, install: boolean): Promise<PgCluster> {
  const script = clusterScript();
  if (!existsSync(script)) throw new PgUnavailable(`${script} is missing`);
  if (!install && !serverInstalled()) {
    throw new PgUnavailable('PostgreSQL is not installed, and this mode does not install it');
  }
  const t = performance.now();
  const { stdout } = await new Promise<{ stdout: string }>((ok, fail) => {
    execFile(
      'bash',
      [script, 'start', ...(durable ? ['--durable'] : [])],
      { encoding: 'utf8', timeout: 15 * 60_000, maxBuffer: 1024 * 1024 },
      (err, out, errOut) => {
        if (err) {
          const why = errOut.trim().split('\n').slice(-3).join(' / ') || err.message;
          fail(new PgUnavailable(`cluster.sh start failed: ${why}`));
        } else ok({ stdout: out });
      },
    );
  });
  const field = (key: string): string => {
    const line = stdout.split('\n').find((l) => l.startsWith(`${key}=`));
    if (line === undefined) throw new PgUnavailable(`cluster.sh start printed no ${key}= line`);
    return line.slice(key.length + 1);
  };
  const dir = field('dir');
  const url = field('url');
  let stopped = false;
  const stopNow = (): void => {
    if (stopped) return;
    stopped = true;
    process.off('exit', stopNow);
    try {
      execFileSync('bash', [script, 'stop', dir], { stdio: 'ignore' });
    } catch {
      // best effort while exiting
    }
  };
  process.on('exit', stopNow);
  let version = 'unknown';
  try {
    version = readFileSync(join(dir, 'data', 'PG_VERSION'), 'utf8').trim();
  } catch {
    // the directory may belong to the postgres user
  }
  return {
    url,
    dir,
    version,
    durable,
    startS: (performance.now() - t) / 1000,
    async stop() {
      if (stopped) return;
      stopped = true;
      process.off('exit', stopNow);
      await new Promise<void>((ok) => execFile('bash', [script, 'stop', dir], () => ok()));
    },
  };
}

const PG_SPEC = (id: string): TargetSpec<string> => ({
  id,
  label: `Streamkeep postgres (${id})`,
  system: 'streamkeep',
  storage: 'postgres',
});

/** A schema name no earlier run used. */
function freshSchema(tag: string): string {
  return `bench_${tag}_${randomBytes(4).toString('hex')}`;
}

/** Steps of the PostgreSQL scenario, for the progress counter. */
export function countPostgresSteps(c: BenchConfig): number {
  const p = c.postgres;
  return p.writers.length * p.layouts.length * p.reps * 2 + 2 * 2 * p.latency.reps;
}

/**
 * Issue #7: one Streamkeep instance against two instances sharing a schema, on one throwaway cluster. `pg-one` is one
 * server process on its own fresh schema; `pg-two` is two server processes on another fresh schema (one schema each,
 * so the idle configuration's LISTEN connection never hears the measured one's notifications). Appends: the same
 * writers against one instance, or alternating between the two. Live latency: writer and reader on one instance, or
 * the writer on instance A and the reader on instance B (woken through LISTEN/NOTIFY). Cells alternate between the
 * two configurations, so drifts in machine load hit both alike.
 */
export async function postgresScenarios(
  c: BenchConfig,
  results: Results,
  progress: Progress,
  base: { longPollTimeoutMs: number; cpuProfDir?: string },
): Promise<void> {
  const p = c.postgres;
  let cluster: PgCluster;
  try {
    cluster = await startPgCluster(p.durable, p.install);
  } catch (err) {
    if (!(err instanceof PgUnavailable)) throw err;
    results.postgres = { skipped: err.message, durable: p.durable };
    results.notes.push(`PostgreSQL scenario skipped: ${err.message}`);
    progress.info(`postgres: skipped (${err.message})`);
    for (let i = 0; i < countPostgresSteps(c); i++) progress.step('postgres: skipped');
    return;
  }
  results.postgres = {
    version: cluster.version,
    durable: cluster.durable,
    dir: cluster.dir,
    startS: cluster.startS,
  };
  progress.info(
    `postgres ${cluster.version}: ${cluster.url} in ${cluster.dir} (${cluster.durable ? 'durable' : 'fsync off'}), ` +
      `started in ${cluster.startS.toFixed(1)} s`,
  );
  const running: RunningTarget<string>[] = [];
  const clients: Client[] = [];
  try {
    const start = async (id: string, schema: string): Promise<Client> => {
      const t = await startTarget(PG_SPEC(id), { ...base, postgres: { url: cluster.url, schema } });
      running.push(t);
      const client = new Client(t.url, 128);
      clients.push(client);
      progress.info(`${id}: pid ${t.pid} at ${t.url}, schema ${schema}`);
      return client;
    };
    const oneSchema = freshSchema('one');
    const twoSchema = freshSchema('two');
    const one = await start('pg-one', oneSchema);
    const twoA = await start('pg-two-a', twoSchema);
    const twoB = await start('pg-two-b', twoSchema);
    for (const [id, client] of [
      ['pg-one', one],
      ['pg-two-a', twoA],
      ['pg-two-b', twoB],
    ] as const) {
      const n = await warmUp(client, c.serverWarmupMs);
      progress.info(`${id}: warmed up (${n} appends and reads)`);
    }
    const configs: ReadonlyArray<readonly [PgSeriesId, readonly Client[]]> = [
      ['pg-one', [one]],
      ['pg-two', [twoA, twoB]],
    ];
    for (let rep = 0; rep < p.reps; rep++) {
      for (const layout of p.layouts) {
        for (const writers of p.writers) {
          for (const [id, targets] of configs) {
            const r = await appendThroughput(targets, {
              size: p.size,
              writers,
              layout,
              durationMs: p.durationMs,
              warmupMs: p.warmupMs,
            });
            const where = layout === 'own' ? 'own streams' : 'one shared stream';
            const label = `${fmtSize(p.size)} × ${writers} writer${writers > 1 ? 's' : ''}, ${where}`;
            const key = `pg/append/${layout}/${writers}`;
            results.record(
              {
                key: `${key}/perSec`,
                group: 'PostgreSQL: appends',
                label,
                unit: 'appends/s',
                better: 'higher',
              },
              id,
              r.perSec,
            );
            results.record(
              {
                key: `${key}/p99`,
                group: 'PostgreSQL: append acknowledgement latency p99',
                label,
                unit: 'ms',
                better: 'lower',
              },
              id,
              r.p99Ms,
            );
            progress.step(
              `${id} append ${label} rep ${rep + 1}: ${Math.round(r.perSec)}/s, p50 ${r.p50Ms.toFixed(2)} ms, ` +
                `p99 ${r.p99Ms.toFixed(2)} ms${r.errors ? `, ${r.errors} errors` : ''}`,
            );
          }
        }
      }
    }
    const latencyPairs: ReadonlyArray<readonly [PgSeriesId, Client, Client]> = [
      ['pg-one', one, one],
      ['pg-two', twoA, twoB],
    ];
    for (let rep = 0; rep < p.latency.reps; rep++) {
      for (const mode of ['long-poll', 'sse'] as const) {
        for (const [id, writer, reader] of latencyPairs) {
          const r = await liveLatency(writer, mode, p.latency.samples, p.latency.intervalMs, reader);
          for (const [q, v] of [
            ['p50', r.p50Ms],
            ['p90', r.p90Ms],
            ['p99', r.p99Ms],
          ] as const) {
            results.record(
              {
                key: `pg/latency/${mode}/${q}`,
                group: 'PostgreSQL: live delivery latency',
                label: `${mode} ${q}`,
                unit: 'ms',
                better: 'lower',
              },
              id,
              v,
            );
          }
          progress.step(
            `${id} latency ${mode}${id === 'pg-two' ? ' (writer A, reader B)' : ''} rep ${rep + 1}: ` +
              `p50 ${r.p50Ms.toFixed(2)} ms, p90 ${r.p90Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms (${r.samples} samples)`,
          );
        }
      }
    }
  } finally {
    for (const client of clients) await client.close().catch(() => {});
    for (const t of running) await t.dispose().catch(() => {});
    await cluster.stop();
  }
}
