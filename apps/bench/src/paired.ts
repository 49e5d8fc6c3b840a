#!/usr/bin/env node
/**
 * Paired A/B of one append cell between Streamkeep server builds, for differences smaller than the noise between runs.
 *
 *   node dist/paired.js [--runs 8] [--cells 12] [--writers 64] [--size 100] [--sync] \
 *     old=…/apps/server/dist/main.js new=…/apps/server/dist/main.js nometrics=…/main.js:--metrics=false
 *
 * In each run every build is started (file backend, a temporary data directory each) and, cell by cell, the builds
 * take turns at the quick mode's append cell on their own fresh streams (`appendThroughput`: 80 ms warm-up, 250 ms
 * measured); every other run takes them in reverse order. Per run and build the figure is the median over the warm
 * cells (the first three of a server's life are left out). Printed: each build's ratio to the first, run by run, and
 * the median of all warm cells. Only ratios of runs made side by side are comparable: on a shared two-core machine
 * throughput moves by up to 2× between runs minutes apart.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from './client.js';
import { appendThroughput } from './scenarios.js';
import { median } from './stats.js';
import { type RunningTarget, startTarget, targetById } from './targets.js';

/** A server build under test: `label=path/to/main.js[:--flag=value,…]`. */
export interface Build {
  readonly label: string;
  readonly main: string;
  readonly flags: readonly string[];
}

export function parseBuild(spec: string): Build {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new Error(`not label=main.js[:flags]: ${spec}`);
  const [main = '', flags = ''] = spec.slice(eq + 1).split(':');
  return { label: spec.slice(0, eq), main, flags: flags === '' ? [] : flags.split(',') };
}

/** Warm cells a server runs before its figures count. */
const COLD_CELLS = 3;

/**
 * Per build: the median of all its warm cells, its ratio to the first build's, and its ratio run by run (each run's
 * median over warm cells, divided by the first build's in the same run).
 */
export function pairedSummary(
  builds: readonly string[],
  cells: ReadonlyMap<string, readonly (readonly number[])[]>,
): { label: string; median: number; ratio: number; runRatios: number[] }[] {
  const warm = (label: string) => (cells.get(label) ?? []).map((run) => run.slice(COLD_CELLS));
  const base = builds[0] as string;
  const baseRuns = warm(base).map((run) => median(run));
  const baseMedian = median(warm(base).flat());
  return builds.map((label) => {
    const runs = warm(label);
    const all = median(runs.flat());
    return {
      label,
      median: all,
      ratio: all / baseMedian,
      runRatios: runs.map((run, i) => median(run) / (baseRuns[i] as number)),
    };
  });
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      runs: { type: 'string', default: '8' },
      cells: { type: 'string', default: '12' },
      writers: { type: 'string', default: '64' },
      size: { type: 'string', default: '100' },
      sync: { type: 'boolean', default: false },
      'data-root': { type: 'string' },
    },
  });
  const cellsPerRun = Number(values.cells);
  if (positionals.length < 2 || !(cellsPerRun > COLD_CELLS)) {
    process.stderr.write(
      `usage: node dist/paired.js [--runs n] [--cells n>${COLD_CELLS}] [--writers n] [--size bytes] [--sync] label=main.js[:--flag=value,…] label=main.js …\n`,
    );
    process.exit(2);
  }
  const builds = positionals.map(parseBuild);
  const spec = targetById(values.sync ? 'sk-file-sync' : 'sk-file-nosync');
  const params = {
    size: Number(values.size),
    writers: Number(values.writers),
    layout: 'own' as const,
    durationMs: 250,
    warmupMs: 80,
  };
  const cells = new Map<string, number[][]>(builds.map((b) => [b.label, []]));
  for (let run = 0; run < Number(values.runs); run++) {
    const order = run % 2 === 0 ? builds : [...builds].reverse();
    const servers: { build: Build; target: RunningTarget; client: Client; rates: number[] }[] = [];
    for (const build of order) {
      const target = await startTarget(spec, {
        longPollTimeoutMs: 30_000,
        streamkeepMain: build.main,
        extraArgs: build.flags,
        ...(values['data-root'] === undefined ? {} : { dataRoot: values['data-root'] }),
      });
      servers.push({ build, target, client: new Client(target.url, params.writers), rates: [] });
    }
    for (let c = 0; c < cellsPerRun; c++) {
      for (const s of servers) s.rates.push((await appendThroughput(s.client, params)).perSec);
    }
    for (const s of servers) {
      await s.client.close();
      await s.target.dispose();
      cells.get(s.build.label)?.push(s.rates);
    }
    const figures = builds.map(
      (b) => `${b.label} ${Math.round(median(cells.get(b.label)?.at(-1)?.slice(COLD_CELLS) ?? []))}/s`,
    );
    process.stdout.write(`run ${run + 1}: ${figures.join(', ')}\n`);
  }
  const base = builds[0]?.label as string;
  for (const s of pairedSummary(
    builds.map((b) => b.label),
    cells,
  )) {
    process.stdout.write(
      `${s.label}: warm median ${Math.round(s.median)}/s (${s.ratio.toFixed(3)}× ${base}); paired run ratios ${s.runRatios.map((r) => r.toFixed(2)).join(' ')}\n`,
    );
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
