#!/usr/bin/env node
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type BenchConfig, configFor, type Mode } from './config.js';
import { profileMarkdown, profileWindows, summariseProfile } from './profile.js';
import { buildReport, type RunInfo } from './report.js';
import { Results, type ResultsJson } from './results.js';
import { ALL_SCENARIOS, runBench, type Scenario } from './run.js';
import { TARGETS, type TargetId } from './targets.js';

const HELP = `Usage: node dist/cli.js [--quick | --full | --smoke] [options]

Starts Streamkeep (memory; file with and without sync on append) and the reference server @durable-streams/server
(memory and file) on loopback, drives the same workloads against each, and writes docs/benchmarks.md plus SVG charts.
The postgres scenario also starts a throwaway PostgreSQL cluster and compares one Streamkeep instance with two on it.

  --quick               short runs, scaled-down loads (default; about two and a half minutes, plus about five for
                        the many-streams scenario at 10,000 streams)
  --full                the issue's full configuration (1,000 readers, 100k catch-up, 100 × 10,000 load)
                        (about 25 minutes on an idle 2-core machine, plus about 15 for many streams at 100,000
                        and about 11 for subscriptions)
  --smoke               a few seconds; what CI runs
  --only <list>         scenarios, comma-separated: append,catchup,latency,fanout,rss,postgres,many,subscriptions
                        (postgres: one Streamkeep instance vs two on one PostgreSQL database; the harness starts a
                        throwaway cluster with scripts/postgres/cluster.sh and skips the scenario, with a note in the
                        report, when PostgreSQL cannot be started. many: N streams per target (quick 10,000, full
                        100,000): creates/s, appends spread over them, restart, RSS per idle stream, reader bursts;
                        then Streamkeep on PostgreSQL at --many-pg-streams. subscriptions: webhook wake latency with
                        1, 100 and 1,000 subscriptions, and appends/s with 1,000 subscriptions vs none, on
                        sk-memory, sk-file-sync and ref-memory)
  --targets <list>      ${TARGETS.map((t) => t.id).join(',')}
  --out <file>          report path (default: <repo>/docs/benchmarks.md; SVGs go to <dir>/benchmarks/)
  --no-write            do not write the report (results JSON is still written)
                        raw figures go to apps/bench/results/<mode>.json, or next to the report when --out is given
  --profile             run the servers under node --cpu-prof and summarise the top self-time functions into
                        apps/bench/profiles/<mode>.md (figures from a profiled run are not representative)
  --note <text>         a sentence for the report (e.g. other work running on the machine)
  --sizes, --writers, --layouts, --duration <ms>, --readers, --catchup-messages, --rss-per-stream, --reps
                        override the mode's configuration (comma-separated lists; --reps: runs of the append
                        cells), e.g. for profiling one cell
  --pg-writers <list>   writer counts of the postgres scenario (default 1,16,64; smoke 1,4)
  --pg-fsync <on|off>   the cluster's fsync and synchronous_commit (default on; smoke off)
  --many-streams <n>    streams per target of the many scenario
  --many-pg-streams <n> streams of its PostgreSQL part (0: skip it)
  --many-readers <n>    long-poll readers on one stream in its reader burst
  --many-timeout <s>    time budget of its creates per target (the rest runs on the streams created by then)
  --many-server-limits  run Streamkeep in the many scenario with its own admission limits (sized by memory and
                        ulimit -n) instead of the raised ones, to count what admission control refuses
  --subs-counts <list>  subscription counts of the wake-latency stages (default 1,100,1000)
  --subs-samples <n>    wakes measured per run and count
  --subs-duration <ms>  measured time of each append cell of the subscriptions throughput comparison
  --render <json>       run nothing: rewrite the report from a recorded run (results/<mode>.json) with the current
                        analysis.md and profiles/summary.md, e.g. after editing the analysis
  -h, --help`;

/** What `results/<mode>.json` holds: the figures, and the configuration and run details to render them again. */
interface RecordedRun extends ResultsJson {
  readonly config: BenchConfig;
  readonly info: RunInfo;
}

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = resolve(here, '..');
const repoDir = resolve(pkgDir, '..', '..');

/** The commit the servers were built from, and which packages had uncommitted changes then. */
function gitRevision(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: repoDir,
      encoding: 'utf8',
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'apps/server', 'packages'], {
      cwd: repoDir,
      encoding: 'utf8',
    })
      .split('\n')
      .map((l) => /(apps\/server|packages\/[^/]+)/.exec(l)?.[1])
      .filter((x): x is string => !!x);
    const uniq = [...new Set(dirty)];
    return uniq.length ? `${head}, with uncommitted changes in ${uniq.join(', ')}` : head;
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      full: { type: 'boolean' },
      smoke: { type: 'boolean' },
      only: { type: 'string' },
      targets: { type: 'string' },
      out: { type: 'string' },
      'no-write': { type: 'boolean' },
      profile: { type: 'boolean' },
      note: { type: 'string' },
      sizes: { type: 'string' },
      writers: { type: 'string' },
      layouts: { type: 'string' },
      duration: { type: 'string' },
      readers: { type: 'string' },
      'catchup-messages': { type: 'string' },
      reps: { type: 'string' },
      'rss-per-stream': { type: 'string' },
      'pg-writers': { type: 'string' },
      'pg-fsync': { type: 'string' },
      'many-streams': { type: 'string' },
      'many-pg-streams': { type: 'string' },
      'many-readers': { type: 'string' },
      'many-timeout': { type: 'string' },
      'many-server-limits': { type: 'boolean' },
      'subs-counts': { type: 'string' },
      'subs-samples': { type: 'string' },
      'subs-duration': { type: 'string' },
      render: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const mode: Mode = values.full ? 'full' : values.smoke ? 'smoke' : 'quick';
  const base = configFor(mode);
  const targets = values.targets
    ? (values.targets.split(',').map((s) => s.trim()) as TargetId[]).filter((t) =>
        TARGETS.some((x) => x.id === t),
      )
    : base.targets;
  const list = (v: string | undefined): number[] | undefined => v?.split(',').map((x) => Number(x.trim()));
  const config = {
    ...base,
    targets,
    reps: values.reps ? Math.max(2, Number(values.reps)) : base.reps,
    append: {
      ...base.append,
      sizes: list(values.sizes) ?? base.append.sizes,
      writers: list(values.writers) ?? base.append.writers,
      layouts: (values.layouts?.split(',') as ('own' | 'shared')[] | undefined) ?? base.append.layouts,
      durationMs: values.duration ? Number(values.duration) : base.append.durationMs,
    },
    rss: {
      ...base.rss,
      perStream: values['rss-per-stream'] ? Number(values['rss-per-stream']) : base.rss.perStream,
    },
    fanout: { ...base.fanout, readers: values.readers ? Number(values.readers) : base.fanout.readers },
    catchup: {
      ...base.catchup,
      messages: values['catchup-messages'] ? Number(values['catchup-messages']) : base.catchup.messages,
    },
    many: {
      ...base.many,
      streams: values['many-streams'] ? Number(values['many-streams']) : base.many.streams,
      pgStreams: values['many-pg-streams'] ? Number(values['many-pg-streams']) : base.many.pgStreams,
      burstReaders: values['many-readers'] ? Number(values['many-readers']) : base.many.burstReaders,
      createTimeoutMs: values['many-timeout']
        ? Number(values['many-timeout']) * 1000
        : base.many.createTimeoutMs,
      serverLimits: values['many-server-limits'] ?? base.many.serverLimits,
    },
    subscriptions: {
      ...base.subscriptions,
      counts: list(values['subs-counts']) ?? base.subscriptions.counts,
      samples: values['subs-samples'] ? Number(values['subs-samples']) : base.subscriptions.samples,
      throughput: {
        ...base.subscriptions.throughput,
        durationMs: values['subs-duration']
          ? Number(values['subs-duration'])
          : base.subscriptions.throughput.durationMs,
      },
    },
    postgres: {
      ...base.postgres,
      writers: list(values['pg-writers']) ?? base.postgres.writers,
      durable: values['pg-fsync'] === undefined ? base.postgres.durable : values['pg-fsync'] === 'on',
    },
  };
  if (values['pg-fsync'] !== undefined && !['on', 'off'].includes(values['pg-fsync'])) {
    throw new Error(`--pg-fsync: expected on or off, got ${values['pg-fsync']}`);
  }
  const only = values.only ? (values.only.split(',').map((s) => s.trim()) as Scenario[]) : undefined;
  const unknown = only?.filter((x) => !ALL_SCENARIOS.includes(x));
  if (unknown?.length) throw new Error(`--only: unknown scenario ${unknown.join(', ')}`);
  // Ctrl-C or a kill: exit through process.exit, so the exit hooks stop the server processes and the PostgreSQL
  // cluster this run started.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`bench: ${signal}, stopping the servers\n`);
      process.exit(130);
    });
  }

  const require = createRequire(import.meta.url);
  const main = join(dirname(require.resolve('@streamkeep/server/package.json')), 'dist', 'main.js');
  if (!existsSync(main)) {
    throw new Error(
      `${main} is missing: build it first (npx -y pnpm@10.34.9 --filter @streamkeep/server... run build)`,
    );
  }

  const runInfo = (): RunInfo => {
    let memory = '';
    try {
      memory =
        execFileSync('free', ['-h'], { encoding: 'utf8' }).split('\n')[1]?.trim().replace(/\s+/g, ' ') ?? '';
      memory = `\`${memory}\``;
    } catch {
      memory = 'unknown';
    }
    return {
      date: new Date().toISOString(),
      mode,
      command: `pnpm bench${mode === 'quick' ? '' : ` --${mode}`}`,
      nproc: cpus().length,
      cpu: cpus()[0]?.model ?? 'unknown CPU',
      memory,
      node: process.version,
      loadBefore,
      loadAfter: loadavg()
        .map((x) => x.toFixed(2))
        .join(' '),
      durationS: (performance.now() - started) / 1000,
      note: values.note ?? '',
      revision: gitRevision(),
    };
  };
  const writeReport = async (
    results: Results,
    final: boolean,
    info: RunInfo = runInfo(),
    runConfig: BenchConfig = config,
  ): Promise<void> => {
    const out = resolve(values.out ?? join(repoDir, 'docs', 'benchmarks.md'));
    const svgDir = join(dirname(out), 'benchmarks');
    const readOpt = async (p: string): Promise<string | undefined> =>
      existsSync(p) ? readFile(p, 'utf8') : undefined;
    const profiles = await readOpt(join(pkgDir, 'profiles', 'summary.md'));
    const analysis = await readOpt(join(pkgDir, 'analysis.md'));
    const report = buildReport(results, runConfig, info, {
      svgDir: 'benchmarks',
      ...(profiles ? { profile: profiles } : {}),
      ...(analysis ? { analysis } : {}),
    });
    await mkdir(svgDir, { recursive: true });
    for (const [name, svg] of report.svgs) await writeFile(join(svgDir, name), svg);
    await writeFile(out, report.markdown);
    process.stderr.write(
      `${final ? 'report' : 'partial report'} written to ${relative(process.cwd(), out)} (${report.svgs.size} charts)\n`,
    );
    if (!final) return;
    for (const g of report.goals) {
      process.stderr.write(
        `  ${g.met === undefined ? 'n/a ' : g.met ? 'MET ' : 'GAP '} ${g.goal}: ${g.ratio}\n`,
      );
    }
  };
  const loadBefore = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  const started = performance.now();
  if (values.render !== undefined) {
    const recorded = JSON.parse(await readFile(values.render, 'utf8')) as RecordedRun;
    if (recorded.config === undefined || recorded.info === undefined) {
      throw new Error(`--render: ${values.render} has no run details (recorded by an older harness)`);
    }
    await writeReport(Results.fromJSON(recorded), true, recorded.info, recorded.config);
    return;
  }
  const profDir = values.profile ? await mkdtemp(join(tmpdir(), 'sk-bench-prof-')) : undefined;
  process.stderr.write(`streamkeep bench: ${mode} mode, targets ${targets.join(', ')}\n`);
  const write = !values['no-write'] && !values.profile;
  const results = await runBench(config, {
    ...(profDir ? { cpuProfDir: profDir } : {}),
    ...(only ? { only } : {}),
    ...(write ? { onPartial: (r: Results) => writeReport(r, false) } : {}),
  });

  // A run written elsewhere (--out) keeps its raw figures next to its report, so it never touches the committed ones.
  const resultsDir = values.out ? dirname(resolve(values.out)) : join(pkgDir, 'results');
  await mkdir(resultsDir, { recursive: true });
  const info = runInfo();
  const recorded: RecordedRun = { ...results.toJSON(), config, info };
  await writeFile(
    join(resultsDir, `${mode}${values.profile ? '-profiled' : ''}.json`),
    `${JSON.stringify(recorded, null, 1)}\n`,
  );

  let profileText: string | undefined;
  if (profDir) {
    const parts: string[] = [];
    for (const f of (await readdir(profDir)).filter((n) => n.endsWith('.cpuprofile')).sort()) {
      const name = f.replace(/-\d+\.cpuprofile$/, '').replace(/\.cpuprofile$/, '');
      const labels = [...new Set(profileWindows.map((w) => w.label))];
      for (const label of labels) {
        const s = await summariseProfile(
          join(profDir, f),
          12,
          profileWindows.filter((w) => w.label === label),
        );
        if (s.totalMs > 0) parts.push(profileMarkdown(`${name}, while measuring ${label}`, s));
      }
      if (labels.length === 0)
        parts.push(profileMarkdown(name, await summariseProfile(join(profDir, f), 12)));
    }
    profileText = parts.join('\n');
    const profOut = join(pkgDir, 'profiles');
    await mkdir(profOut, { recursive: true });
    const header = `# CPU profiles: ${mode} mode${only ? `, scenarios ${only.join(', ')}` : ''} (${new Date().toISOString()})\n\n`;
    await writeFile(join(profOut, `${mode}${only ? `-${only.join('-')}` : ''}.md`), header + profileText);
    await rm(profDir, { recursive: true, force: true });
    process.stderr.write(`profile summaries written to ${relative(process.cwd(), profOut)}\n`);
  }

  if (write) await writeReport(results, true, info);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
