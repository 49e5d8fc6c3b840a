import { describe, expect, it } from 'vitest';
import { type BenchConfig, configFor } from '../src/config.js';
import { countManySteps, manyScenarios } from '../src/many.js';
import { Progress } from '../src/progress.js';
import { manyGoals, manySection } from '../src/report-many.js';
import { Results } from '../src/results.js';
import type { TargetId } from '../src/targets.js';

function tiny(targets: TargetId[], many: Partial<BenchConfig['many']>): BenchConfig {
  const smoke = configFor('smoke');
  return {
    ...smoke,
    targets,
    many: {
      ...smoke.many,
      streams: 200,
      pgStreams: 0,
      reps: 1,
      restarts: 1,
      burstReaders: 50,
      streamReaders: 40,
      readerTimeoutMs: 10_000,
      targets,
      ...many,
    },
  };
}

const values = (r: Results, key: string, id: TargetId): number[] => r.get(`many/${key}`)?.values[id] ?? [];

// The many-streams scenario at a tiny scale, so it cannot rot: every part produces its figures, on a server that keeps
// its streams in memory (no restart) and on one that persists them (restart figures too). Never what the figures are.
describe('many-streams scenario', () => {
  it('measures every part at 200 streams', async () => {
    const config = tiny(['sk-memory', 'sk-file-nosync'], {});
    const results = new Results();
    await manyScenarios(config, results, new Progress(countManySteps(config), true), {
      longPollTimeoutMs: 10_000,
    });
    expect(results.many?.issues).toEqual({});
    expect(results.many?.streams).toEqual({ 'sk-memory': 200, 'sk-file-nosync': 200 });
    for (const id of ['sk-memory', 'sk-file-nosync'] as const) {
      expect(values(results, 'created', id)).toEqual([200]);
      expect(values(results, 'burst/served', id)).toEqual([50]);
      expect(values(results, 'burst/refused', id)).toEqual([0]);
      expect(values(results, 'readers/served', id)).toEqual([40]);
      for (const key of [
        'creates',
        'append/own',
        'append/spread',
        'rss/live0',
        'rss/livePerStream',
        'burst/last',
        'burst/ack',
        'readers/p99',
      ]) {
        const v = values(results, key, id);
        expect(v.length, `${key} on ${id}`).toBeGreaterThan(0);
        for (const x of v) expect(Number.isFinite(x), `${key} on ${id}: ${x}`).toBe(true);
      }
    }
    for (const key of ['stop', 'restart/ready0', 'restart/readyN', 'restart/readN', 'rss/restartPerStream']) {
      expect(values(results, key, 'sk-file-nosync').length, key).toBe(1);
      expect(values(results, key, 'sk-memory'), `${key} on memory`).toEqual([]);
    }
    const md = manySection(results, config, manyGoals(results, config)).join('\n');
    expect(md).toContain('## Many streams');
    for (const t of ['Creates and appends', 'Memory', 'Restart', 'Live readers'])
      expect(md).toContain(`### ${t}`);
    expect(md).toContain('| 50 long-poll readers on one stream, one append: served | readers | 50 | 50 |');
  }, 60_000);

  it('reports a create timeout in its cell and runs the rest on the streams created', async () => {
    const config = tiny(['sk-memory'], { streams: 50_000, createTimeoutMs: 150, burstReaders: 10 });
    const results = new Results();
    await manyScenarios(config, results, new Progress(countManySteps(config), true), {
      longPollTimeoutMs: 10_000,
    });
    const created = values(results, 'created', 'sk-memory')[0] ?? 0;
    expect(created).toBeGreaterThan(0);
    expect(created).toBeLessThan(50_000);
    expect(results.many?.issues['sk-memory']?.['many/creates']).toMatch(
      /^timed out after 0 s at [\d,]+ of 50,000 creates$/,
    );
    expect(values(results, 'burst/served', 'sk-memory')).toEqual([10]);
    const md = manySection(results, config, manyGoals(results, config)).join('\n');
    expect(md).toContain('of 50,000 creates)');
  }, 60_000);
});
