import { describe, expect, it } from 'vitest';
import { configFor } from '../src/config.js';
import { buildReport } from '../src/report.js';
import { runBench } from '../src/run.js';
import { TARGETS } from '../src/targets.js';

// Runs every scenario of the harness in a tiny configuration against all five server configurations, so the harness
// cannot rot. It asserts that every scenario produced a measurement for every target, never what the figures are.
describe('benchmark harness smoke run', () => {
  it('measures every scenario on every target and renders the report', async () => {
    const config = configFor('smoke');
    const results = await runBench(config, { quiet: true });
    const expected = [
      'append/own/100/1/perSec',
      'append/shared/100/8/perSec',
      // Server CPU per append (from /proc/<pid>/stat; 10 ms ticks, so 0 is possible in these tiny cells).
      'append/own/100/1/cpu',
      'catchup/identity',
      'catchup/gzip',
      'latency/long-poll/p99',
      'latency/sse/p99',
      'fanout/long-poll/all',
      'fanout/sse/all',
      'fanout/long-poll/ack',
    ];
    for (const key of expected) {
      const fig = results.get(key);
      expect(fig, key).toBeDefined();
      for (const t of TARGETS) {
        const values = fig?.values[t.id] ?? [];
        expect(values.length, `${key} on ${t.id}`).toBe(config.reps);
        for (const v of values) expect(Number.isFinite(v), `${key} on ${t.id}: ${v}`).toBe(true);
      }
    }
    expect(results.fsyncProbe?.iterations).toBe(config.fsyncProbeIterations);
    expect(Number.isFinite(results.fsyncProbe?.p99Ms)).toBe(true);
    // PostgreSQL: measured where it is installed; otherwise skipped with the reason (never a failure of this test).
    expect(results.postgres).toBeDefined();
    if (results.postgres?.skipped) {
      expect(results.notes.join('\n')).toContain('PostgreSQL scenario skipped');
    } else {
      for (const key of [
        'pg/append/own/1/perSec',
        'pg/append/shared/4/perSec',
        'pg/latency/long-poll/p99',
        'pg/latency/sse/p99',
      ]) {
        for (const id of ['pg-one', 'pg-two'] as const) {
          const values = results.get(key)?.values[id] ?? [];
          expect(values.length, `${key} on ${id}`).toBe(2);
          for (const v of values) expect(Number.isFinite(v), `${key} on ${id}: ${v}`).toBe(true);
        }
      }
    }
    // Many streams (also in test/many.test.ts): every configured target created its streams.
    for (const t of config.many.targets) {
      expect(results.get('many/created')?.values[t], `many/created on ${t}`).toEqual([config.many.streams]);
    }
    for (const key of ['rss/loaded', 'restart/firstRead']) {
      for (const t of config.rss.targets) {
        expect(results.get(key)?.values[t]?.length ?? 0, `${key} on ${t}`).toBeGreaterThan(0);
      }
    }

    {
      const report = buildReport(
        results,
        config,
        {
          date: 'now',
          mode: 'smoke',
          command: 'test',
          nproc: 1,
          cpu: 'cpu',
          memory: 'mem',
          node: process.version,
          loadBefore: '0',
          loadAfter: '0',
          durationS: 1,
          note: '',
        },
        { svgDir: 'benchmarks' },
      );
      expect(report.markdown).toContain('## Goals');
      expect(report.markdown).toContain('SK file+sync / Ref file');
      expect(report.goals.length).toBeGreaterThanOrEqual(11);
      expect(report.markdown).toContain('## PostgreSQL: one instance vs two instances');
      expect(report.markdown).toContain('## Many streams');
      expect(report.markdown).toContain('## Subscriptions');
      expect(report.markdown).toContain('Disk probe: `fdatasync`');
      expect([...report.svgs.keys()]).toContain('append-own-100.svg');
      for (const svg of report.svgs.values()) expect(svg.startsWith('<svg')).toBe(true);
    }
    // Generous: the run covers every scenario (the subscriptions one included) on a loaded machine.
  }, 300_000);
});
