import { describe, expect, it } from 'vitest';
import { configFor } from '../src/config.js';
import { evaluateGoals } from '../src/report.js';
import { Results } from '../src/results.js';
import type { TargetId } from '../src/targets.js';

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
  values: Partial<Record<TargetId, number[]>>,
  better?: 'higher' | 'lower',
) {
  for (const [t, vs] of Object.entries(values))
    for (const v of vs ?? []) r.record(meta(key, better), t as TargetId, v);
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
});
