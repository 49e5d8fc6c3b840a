import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One server configuration under test. */
export interface TargetSpec<Id extends string = TargetId> {
  readonly id: Id;
  readonly label: string;
  readonly system: 'streamkeep' | 'reference';
  readonly storage: 'memory' | 'file' | 'postgres';
  /** Streamkeep file backend only. */
  readonly syncOnAppend?: boolean;
}

export type TargetId = 'sk-memory' | 'sk-file-sync' | 'sk-file-nosync' | 'ref-memory' | 'ref-file';

/**
 * The two configurations of the PostgreSQL scenario: one Streamkeep instance, and two instances sharing one schema
 * (each on its own fresh schema of the same database).
 */
export type PgSeriesId = 'pg-one' | 'pg-two';

/** Streamkeep on PostgreSQL in the many-streams scenario (one instance). */
export type ManyPgSeriesId = 'sk-postgres';

/** Every column a figure can have a value in. */
export type SeriesId = TargetId | PgSeriesId | ManyPgSeriesId;

export const TARGETS: readonly TargetSpec[] = [
  { id: 'sk-memory', label: 'Streamkeep memory', system: 'streamkeep', storage: 'memory' },
  {
    id: 'sk-file-sync',
    label: 'Streamkeep file + sync',
    system: 'streamkeep',
    storage: 'file',
    syncOnAppend: true,
  },
  {
    id: 'sk-file-nosync',
    label: 'Streamkeep file, no sync',
    system: 'streamkeep',
    storage: 'file',
    syncOnAppend: false,
  },
  { id: 'ref-memory', label: 'Reference memory', system: 'reference', storage: 'memory' },
  { id: 'ref-file', label: 'Reference file (LMDB + fdatasync)', system: 'reference', storage: 'file' },
];

export function targetById(id: TargetId): TargetSpec {
  const t = TARGETS.find((x) => x.id === id);
  if (!t) throw new Error(`unknown target ${id}`);
  return t;
}

export interface StartOptions {
  /** Reuse this data directory (restart); otherwise a fresh temporary one is made for file targets. */
  readonly dataDir?: string;
  /** Where a fresh data directory is made (default: the OS temporary directory, on disk). */
  readonly dataRoot?: string;
  readonly longPollTimeoutMs: number;
  /** Directory for `node --cpu-prof` output; unset = no profiling. */
  readonly cpuProfDir?: string;
  /** The database of a `postgres` target. */
  readonly postgres?: { readonly url: string; readonly schema: string };
  /** Streamkeep keeps its own admission limits (sized by memory and `ulimit -n`) instead of the raised ones. */
  readonly serverLimits?: boolean;
  /** The `dist/main.js` of another Streamkeep build (A/B runs between builds); default: this workspace's. */
  readonly streamkeepMain?: string;
  /** Server flags after the harness's own (Streamkeep targets). */
  readonly extraArgs?: readonly string[];
}

/** A server running in its own child process. */
export interface RunningTarget<Id extends string = TargetId> {
  readonly spec: TargetSpec<Id>;
  readonly url: string;
  readonly pid: number;
  readonly dataDir: string | undefined;
  /** Milliseconds from spawn until the process announced it was listening. */
  readonly startMs: number;
  /** Resident set size of the server process, in bytes. */
  rss(): Promise<Rss>;
  /** CPU time the server process has used so far (user + system, all threads), in seconds. */
  cpuSeconds(): number;
  /** Graceful stop (SIGTERM); waits for the process to exit. Keeps the data directory. */
  stop(): Promise<void>;
  /** Stops and removes the data directory if the harness made it. */
  dispose(): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

function streamkeepMain(): string {
  return join(dirname(require.resolve('@streamkeep/server/package.json')), 'dist', 'main.js');
}

/** Whether the server at `main` has `flag` (its `--help` names it). */
function knowsFlag(main: string, flag: string): boolean {
  return execFileSync(process.execPath, [main, '--help'], { encoding: 'utf8' }).includes(flag);
}

function referenceScript(): string {
  return join(here, '..', 'scripts', 'reference-server.mjs');
}

/** Byte limits raised so no benchmark is refused (the reference server has none). */
const STREAMKEEP_LIMITS = [
  '--max-body-bytes',
  String(64 * 1024 * 1024),
  '--max-stream-bytes',
  '0',
  '--max-total-bytes',
  '0',
];

const ADMISSION_ENV = {
  STREAMKEEP_MAX_IN_FLIGHT: '100000',
  STREAMKEEP_MAX_LIVE_READS: '100000',
  STREAMKEEP_MAX_STREAMS: '0',
  STREAMKEEP_MAX_LIVE_READS_PER_CLIENT: '0',
};

/** Server processes still running; killed if the harness exits without stopping them (error, Ctrl-C). */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

export async function startTarget<Id extends string>(
  spec: TargetSpec<Id>,
  options: StartOptions,
): Promise<RunningTarget<Id>> {
  let dataDir = options.dataDir;
  let ownsDir = false;
  if (spec.storage === 'file' && dataDir === undefined) {
    dataDir = await mkdtemp(join(options.dataRoot ?? tmpdir(), `sk-bench-${spec.id}-`));
    ownsDir = true;
  }
  const nodeFlags = options.cpuProfDir
    ? [
        '--cpu-prof',
        '--cpu-prof-dir',
        options.cpuProfDir,
        '--cpu-prof-name',
        `${spec.id}-${Date.now()}.cpuprofile`,
      ]
    : [];
  let args: string[];
  if (spec.system === 'streamkeep') {
    const main = options.streamkeepMain ?? streamkeepMain();
    args = [
      ...nodeFlags,
      main,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--storage',
      spec.storage,
      '--long-poll-timeout',
      String(options.longPollTimeoutMs),
      '--sse-reconnect',
      '0',
      '--log-level',
      'info',
      // The reference server logs no requests; request logs (on by default, one pino-http line each) are left out
      // so that both do the same work. Their cost is reported with the server's operations figures. (A build from
      // before the flag logs none and would refuse it.)
      ...(main === streamkeepMain() || knowsFlag(main, '--log-requests') ? ['--log-requests', 'false'] : []),
      ...STREAMKEEP_LIMITS,
    ];
    if (spec.storage === 'file') {
      args.push(
        '--data-dir',
        dataDir as string,
        spec.syncOnAppend ? '--sync-on-append' : '--no-sync-on-append',
      );
    }
    if (spec.storage === 'postgres') {
      if (!options.postgres) throw new Error(`${spec.id}: a postgres target needs a database`);
      args.push('--postgres-url', options.postgres.url, '--postgres-schema', options.postgres.schema);
    }
    args.push(...(options.extraArgs ?? []));
  } else {
    const opts = { longPollTimeout: options.longPollTimeoutMs, ...(dataDir ? { dataDir } : {}) };
    args = [...nodeFlags, referenceScript(), JSON.stringify(opts)];
  }
  const started = performance.now();
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: here,
    // Admission limits raised so no benchmark is refused with 503; given as environment variables, which a server
    // build without these settings ignores (an unknown flag would stop it).
    env: options.serverLimits ? process.env : { ...process.env, ...ADMISSION_ENV },
  });
  track(child);
  let hasExited = false;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      hasExited = true;
      resolve(code);
    }),
  );
  let url: string;
  try {
    url = await waitForUrl(child, spec);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  }
  const startMs = performance.now() - started;
  if (spec.system === 'streamkeep') {
    try {
      await waitReady(url, () => hasExited);
    } catch (err) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`${spec.id}: ${(err as Error).message}`);
    }
  }
  const pid = child.pid as number;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.kill('SIGTERM');
    await exited;
    clearTimeout(timer);
  };
  return {
    spec,
    url,
    pid,
    dataDir,
    startMs,
    rss: () => readRss(pid),
    cpuSeconds: () => readCpuSeconds(pid),
    stop,
    async dispose() {
      await stop();
      if (ownsDir && dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

function waitForUrl(child: ChildProcess, spec: TargetSpec<string>): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`${spec.id} did not start within 60 s`)), 60_000);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      reject(new Error(`${e.message}\nstdout: ${out.slice(-2000)}\nstderr: ${err.slice(-2000)}`));
    };
    child.stderr?.on('data', (c: Buffer) => {
      if (err.length < 100_000) err += c.toString();
    });
    const onExit = (code: number | null): void =>
      fail(new Error(`${spec.id} exited with ${code} before listening`));
    child.once('exit', onExit);
    child.stdout?.on('data', (c: Buffer) => {
      if (out.length > 100_000) return;
      out += c.toString();
      const ref = /BENCH_READY (\S+)/.exec(out);
      const sk =
        /"url":"(http:[^"]+)"[^\n]*"msg":"listening"|"msg":"listening"[^\n]*"url":"(http:[^"]+)"/.exec(out);
      const found = ref?.[1] ?? sk?.[1] ?? sk?.[2];
      if (found) {
        clearTimeout(timer);
        child.removeListener('exit', onExit);
        // Keep draining the pipes so the child never blocks on a full pipe.
        child.stdout?.removeAllListeners('data');
        child.stdout?.resume();
        child.stderr?.resume();
        resolve(found.replace(/\/$/, ''));
      }
    });
  });
}

async function waitReady(url: string, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    // A server that cannot open its storage (e.g. the database refused it) logs the reason and exits.
    if (exited()) throw new Error(`${url} exited before it was ready`);
    try {
      const res = await fetch(`${url}/readyz`);
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`${url} not ready within 60 s`);
}

export interface Rss {
  /** VmRSS, bytes. */
  readonly total: number;
  /** RssAnon (heap, buffers), bytes. */
  readonly anon: number;
}

let clockTicks: number | undefined;

/**
 * User + system CPU time of a process (every thread), in seconds, from `/proc/<pid>/stat` (fields 14 and 15, in clock
 * ticks of `getconf CLK_TCK`, usually 100 per second). Synchronous: one small read, taken between measurements.
 */
export function readCpuSeconds(pid: number): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces: count fields after its closing one.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / clockTicks;
}

export async function readRss(pid: number): Promise<Rss> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const m = new RegExp(`${name}:\\s+(\\d+)\\s+kB`).exec(status);
    if (!m) throw new Error(`no ${name} for ${pid}`);
    return Number(m[1]) * 1024;
  };
  return { total: field('VmRSS'), anon: field('RssAnon') };
}
