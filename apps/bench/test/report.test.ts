import { describe, expect, it } from 'vitest';
import { configFor } from '../src/config.js';
import { MANY_GROUPS } from '../src/many.js';
import { evaluateGoals, nthWorst, postgresSection } from '../src/report.js';
import { manyGoals, manySection } from '../src/report-many.js';
import { Results } from '../src/results.js';
import type { SeriesId } from '../src/targets.js';

const meta = (key: string, better: 'higher' | 'lower' = 'higher') => ({
  key,
  group: 'g',
  label: key,
  unit: 'u',
  better,
});

function record(
  r: Results,
  key: string,
  values: Partial<Record<SeriesId, number[]>>,
  better?: 'higher' | 'lower',
) {
  for (const [t, vs] of Object.entries(values))
    for (const v of vs ?? []) r.record(meta(key, better), t as SeriesId, v);
}

describe('goal evaluation', () => {
  const config = configFor('full');

  it('uses medians and the stated thresholds', () => {
    const r = new Results();
    record(r, 'append/shared/100/64/perSec', {
      'sk-file-sync': [9_000, 11_000, 10_000],
      'ref-file': [1_000, 1_000],
    });
    record(r, 'append/own/100/64/perSec', { 'sk-file-sync': [4_000, 4_900], 'ref-file': [1_000, 1_000] });
    record(r, 'catchup/identity', { 'sk-file-sync': [10, 10], 'ref-file': [31, 29] }, 'lower');
    const goals = evaluateGoals(r, config);
    const shared = goals.find((g) => g.goal.includes('one stream'));
    const own = goals.find((g) => g.goal.includes('own streams'));
    const catchup = goals.find((g) => g.goal.startsWith('Catch-up'));
    expect(shared?.met).toBe(true);
    expect(shared?.ratio).toBe('10.0×');
    expect(own?.met).toBe(false);
    expect(catchup?.met).toBe(true);
    // Nothing measured: neither met nor gap.
    expect(goals.find((g) => g.goal.includes('RSS'))?.met).toBeUndefined();
  });

  it('the no-sync goal takes the worst cell across the matrix', () => {
    const r = new Results();
    record(r, 'append/own/100/1/perSec', { 'sk-file-nosync': [2_000], 'ref-memory': [1_000] });
    record(r, 'append/shared/65536/8/perSec', { 'sk-file-nosync': [900], 'ref-memory': [1_000] });
    const g = evaluateGoals(r, config).find((x) => x.goal.startsWith('File without sync'));
    expect(g?.met).toBe(false);
    expect(g?.ratio).toBe('0.900×');
    expect(g?.measured).toContain('shared stream');
  });

  it('live delivery: memory and file without sync in one row, file + sync in its own with the disk probe', () => {
    const r = new Results();
    r.fsyncProbe = { dir: '/tmp', fsType: 'ext4', iterations: 200, p50Ms: 0.5, p90Ms: 0.8, p99Ms: 2 };
    record(
      r,
      'latency/sse/p99',
      { 'sk-memory': [4, 4], 'sk-file-nosync': [5, 6], 'sk-file-sync': [9, 9], 'ref-memory': [5, 5] },
      'lower',
    );
    const goals = evaluateGoals(r, config);
    const fast = goals.find((g) =>
      g.goal.startsWith('Live delivery p99, sse: Streamkeep memory and file without'),
    );
    const sync = goals.find((g) => g.goal.startsWith('Live delivery p99, sse: Streamkeep file + sync'));
    // nosync's median is 5.5 > 5: a gap, even though memory is better than the reference.
    expect(fast?.met).toBe(false);
    expect(fast?.measured).toContain('SK file nosync 5.50');
    expect(sync?.met).toBe(false);
    expect(sync?.note).toContain('p99 2.00 ms');
    expect(goals.find((g) => g.goal.startsWith('Live delivery p99, long-poll'))?.met).toBeUndefined();
  });

  it('names the sample a nearest-rank p99 is', () => {
    expect(nthWorst(100)).toBe('2nd-worst');
    expect(nthWorst(1000)).toBe('11th-worst');
    expect(nthWorst(50)).toBe('worst');
    expect(nthWorst(5)).toBe('worst');
  });
});

describe('postgres section', () => {
  const config = configFor('quick');

  it('reports the two-instance / one-instance ratios computed from the figures', () => {
    const r = new Results();
    r.postgres = { version: '15', durable: true, dir: '/tmp/x' };
    r.fsyncProbe = { dir: '/tmp', fsType: 'ext4', iterations: 200, p50Ms: 2, p90Ms: 3, p99Ms: 4 };
    record(r, 'pg/append/own/16/perSec', { 'pg-one': [400, 420], 'pg-two': [300, 320] });
    record(r, 'pg/append/shared/16/perSec', { 'pg-one': [200, 200], 'pg-two': [220, 220] });
    record(r, 'pg/latency/sse/p50', { 'pg-one': [2, 2], 'pg-two': [3, 3] }, 'lower');
    const text = postgresSection(r, config, 2).join('\n');
    expect(text).toContain('| pg/append/own/16/perSec | 410 ±2% | 310 ±3% | 0.756× |');
    expect(text).toContain('0.756× to 1.10×');
    // 1 / 2 ms = 500 commits/s; 410/s is close to it, so the disk is named as the bound.
    expect(text).toContain('caps them at about 500/s');
    expect(text).toContain("the disk's flush latency is the bound");
    expect(text).toContain('SSE +1.00 ms');
    expect(text).toContain(
      "faster beyond the spread of the runs (their slowest run above one instance's fastest) with pg/append/shared/16/perSec",
    );
    expect(text).toContain('slower beyond the spread with pg/append/own/16/perSec');
  });

  it('says why the scenario was skipped', () => {
    const r = new Results();
    r.postgres = { skipped: 'PostgreSQL is not installed', durable: false };
    expect(postgresSection(r, config, 2).join('\n')).toContain(
      'Not measured in this run: PostgreSQL is not installed',
    );
    expect(postgresSection(new Results(), config, 2)).toEqual([]);
  });
});

describe('recorded runs', () => {
  it('render the same goals after a JSON round trip (what --render reads back)', () => {
    const r = new Results();
    record(r, 'append/own/100/64/perSec', {
      'sk-file-nosync': [12_000, 11_000],
      'ref-memory': [10_000, 12_000],
    });
    record(r, 'append/own/100/64/cpu', { 'sk-file-nosync': [60, 62], 'ref-memory': [70, 75] }, 'lower');
    r.notes.push('a note');
    const back = Results.fromJSON(JSON.parse(JSON.stringify(r.toJSON())));
    const config = configFor('full');
    expect(evaluateGoals(back, config)).toEqual(evaluateGoals(r, config));
    expect(back.notes).toEqual(['a note']);
    const nosync = evaluateGoals(back, config).find((g) => g.goal.startsWith('File without sync'));
    expect(nosync?.met).toBe(true);
    // The aggregate and the CPU view are stated beside the per-cell verdict.
    expect(nosync?.measured).toContain('≥ 1× in 1 of 1 cells');
    expect(nosync?.measured).toContain('server CPU per append');
  });
});

describe('many-streams section', () => {
  const config = configFor('full');
  const rec = (r: Results, key: string, unit: string, vals: Partial<Record<SeriesId, number[]>>) => {
    for (const [t, vs] of Object.entries(vals))
      for (const v of vs ?? [])
        r.record(
          { key: `many/${key}`, group: MANY_GROUPS.writes, label: key, unit, better: 'lower' },
          t as SeriesId,
          v,
        );
  };
  const run = (): Results => {
    const r = new Results();
    r.many = {
      streams: { 'sk-file-sync': 100_000, 'ref-file': 100_000, 'sk-postgres': 10_000 },
      issues: { 'ref-file': { 'many/creates': 'timed out after 120 s at 31,000 of 100,000 creates' } },
      postgres: { version: '15', durable: true },
    };
    rec(r, 'created', 'streams', {
      'sk-file-sync': [100_000],
      'ref-file': [31_000],
      'sk-postgres': [10_000],
    });
    rec(r, 'creates', 'per s', { 'sk-file-sync': [3_000], 'ref-file': [258], 'sk-postgres': [400] });
    rec(r, 'append/own', 'per s', { 'sk-file-sync': [5_000, 5_200], 'ref-file': [300, 310] });
    rec(r, 'append/spread', 'per s', { 'sk-file-sync': [3_900, 4_100], 'ref-file': [290, 300] });
    rec(r, 'restart/ready0', 'ms', { 'sk-file-sync': [200, 220] });
    rec(r, 'restart/readyN', 'ms', { 'sk-file-sync': [330, 350] });
    rec(r, 'restart/read0', 'ms', { 'sk-file-sync': [5, 5] });
    rec(r, 'restart/readN', 'ms', { 'sk-file-sync': [30, 40] });
    rec(r, 'rss/livePerStream', 'bytes', { 'sk-file-sync': [900] });
    rec(r, 'rss/restartPerStream', 'bytes', { 'sk-file-sync': [1_500, 1_400] });
    return r;
  };

  it('evaluates the goals from the medians, on file + sync', () => {
    const goals = manyGoals(run(), config);
    const find = (s: string) => goals.find((g) => g.goal.includes(s));
    // 3,000 creates/s ÷ 5,100 appends/s.
    expect(find('creates/s')?.ratio).toBe('0.588×');
    expect(find('creates/s')?.met).toBe(true);
    // 4,000 ÷ 5,100 < 0.8.
    expect(find('random streams')?.met).toBe(false);
    // 340 ms ≤ 1.5 × 210 + 50 = 365 ms, and ≤ 1 s.
    expect(find('(start → ready)')?.met).toBe(true);
    expect(find('(start → ready)')?.measured).toContain('limit 365 ms');
    // 340 + 35 = 375 ms > 1.5 × 215 + 50 = 372.5 ms.
    expect(find('(start → first read')?.met).toBe(false);
    expect(find('after creating them')?.met).toBe(true);
    expect(find('after a restart')?.met).toBe(false);
    expect(goals.every((g) => g.goal.includes('SK file+sync'))).toBe(true);
    expect(goals.every((g) => g.note === undefined)).toBe(true);
  });

  it('renders the same after a JSON round trip, with what cut a figure short in its cell', () => {
    const r = run();
    const back = Results.fromJSON(JSON.parse(JSON.stringify(r.toJSON())));
    expect(manyGoals(back, config)).toEqual(manyGoals(r, config));
    const md = manySection(back, config, manyGoals(back, config)).join('\n');
    expect(md).toEqual(manySection(r, config, manyGoals(r, config)).join('\n'));
    expect(md).toContain(
      '| SK file+sync | Ref file | SK postgres (10,000 streams) | SK file+sync / Ref file |',
    );
    expect(md).toContain('| 258 (1 run) (timed out after 120 s at 31,000 of 100,000 creates) |');
    expect(md).toContain('| created | streams | 100,000 | 31,000 | 10,000 |  |');
    expect(md).toContain('- Ref file, creates: timed out after 120 s at 31,000 of 100,000 creates');
    expect(md).toContain('`fsync` and `synchronous_commit` on');
  });

  it('is absent from runs without the scenario, and scaled-down runs say so', () => {
    expect(manySection(new Results(), config, [])).toEqual([]);
    expect(manyGoals(new Results(), config)).toEqual([]);
    const r = run();
    r.many = { ...(r.many as NonNullable<Results['many']>), streams: { 'sk-file-sync': 10_000 } };
    const goals = manyGoals(r, configFor('quick'));
    expect(goals[0]?.note).toContain('scaled down to 10,000 streams');
  });
});
