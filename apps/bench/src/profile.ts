import { readFile } from 'node:fs/promises';

interface CpuProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly CpuProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

/**
 * A time window in CLOCK_MONOTONIC microseconds: V8 stamps profile samples with that clock on Linux, and
 * `process.hrtime` reads the same clock, so the harness can mark the windows of each scenario.
 */
export interface ProfileWindow {
  readonly label: string;
  readonly startUs: number;
  readonly endUs: number;
}

/** Windows marked while the harness ran. */
export const profileWindows: ProfileWindow[] = [];

/** Runs `body` and records its time window under `label`. */
export async function marked<T>(label: string, body: () => Promise<T>): Promise<T> {
  const startUs = Number(process.hrtime.bigint() / 1000n);
  try {
    return await body();
  } finally {
    profileWindows.push({ label, startUs, endUs: Number(process.hrtime.bigint() / 1000n) });
  }
}

export interface SelfTime {
  readonly fn: string;
  readonly where: string;
  readonly ms: number;
  readonly percent: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  /** Sampled time outside "(idle)". */
  readonly busyMs: number;
  readonly top: SelfTime[];
  /** Self time per source file / package. */
  readonly byFile: SelfTime[];
}

/** Shortens a script URL to `pkg/path` (node_modules) or a repository-relative path. */
function shortUrl(url: string): string {
  if (url === '') return '(native / V8)';
  if (url.startsWith('node:')) return url;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length);
    return rest.replace(/^\.pnpm\/[^/]+\/node_modules\//, '');
  }
  const i = url.indexOf('/work/main/');
  return i >= 0 ? url.slice(i + '/work/main/'.length) : url.replace(/^file:\/\//, '');
}

/** Self time per function (ms and share of non-idle time), from a `node --cpu-prof` profile. */
export async function summariseProfile(
  path: string,
  top = 15,
  windows?: readonly ProfileWindow[],
): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(path, 'utf8')) as CpuProfile;
  let ts = profile.startTime;
  const byId = new Map<number, CpuProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i] as number;
    ts += profile.timeDeltas[i] as number;
    if (windows && !windows.some((w) => ts >= w.startUs && ts <= w.endUs)) continue;
    // timeDeltas[i] is the time before sample i; attribute the interval after it (the next delta, or the rest of the
    // profile for the last sample) to sample i.
    const next = profile.timeDeltas[i + 1];
    const dt = next ?? Math.max(0, profile.endTime - ts);
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  let total = 0;
  let idle = 0;
  const fns = new Map<string, { fn: string; where: string; us: number }>();
  const files = new Map<string, { fn: string; where: string; us: number }>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    total += us;
    const name = node.callFrame.functionName || '(anonymous)';
    if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') {
      if (name === '(idle)') {
        idle += us;
        continue;
      }
    }
    const where = shortUrl(node.callFrame.url);
    const key = `${name}@${where}:${node.callFrame.lineNumber}`;
    const e = fns.get(key) ?? { fn: name, where: `${where}:${node.callFrame.lineNumber + 1}`, us: 0 };
    e.us += us;
    fns.set(key, e);
    const fileKey = where;
    const f = files.get(fileKey) ?? { fn: '', where, us: 0 };
    f.us += us;
    files.set(fileKey, f);
  }
  const busy = total - idle;
  const rank = (m: Map<string, { fn: string; where: string; us: number }>): SelfTime[] =>
    [...m.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({
        fn: e.fn,
        where: e.where,
        ms: e.us / 1000,
        percent: busy > 0 ? (e.us / busy) * 100 : 0,
      }));
  return { totalMs: total / 1000, busyMs: busy / 1000, top: rank(fns), byFile: rank(files) };
}

export function profileMarkdown(title: string, s: ProfileSummary): string {
  const lines = [
    `### ${title}`,
    '',
    `Sampled ${(s.totalMs / 1000).toFixed(1)} s, of which ${(s.busyMs / 1000).toFixed(1)} s busy (not idle). Top self time:`,
    '',
    '| function | where | self ms | % of busy |',
    '|---|---|---:|---:|',
    ...s.top.map((t) => `| \`${t.fn}\` | ${t.where} | ${t.ms.toFixed(0)} | ${t.percent.toFixed(1)} |`),
    '',
    'By file / package:',
    '',
    '| file | self ms | % of busy |',
    '|---|---:|---:|',
    ...s.byFile.slice(0, 10).map((t) => `| ${t.where} | ${t.ms.toFixed(0)} | ${t.percent.toFixed(1)} |`),
    '',
  ];
  return lines.join('\n');
}
