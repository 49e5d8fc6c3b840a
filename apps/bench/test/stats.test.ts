import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { summariseProfile } from '../src/profile.js';
import { median, percentile, spreadPercent, summarise } from '../src/stats.js';

describe('stats', () => {
  it('median of odd and even counts, ignoring order', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(Number.isNaN(median([]))).toBe(true);
  });

  it('nearest-rank percentiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
  });

  it('summary and spread skip non-finite runs', () => {
    const s = summarise([10, Number.NaN, 12, 8]);
    expect(s).toEqual({ median: 10, min: 8, max: 12, runs: 3 });
    expect(spreadPercent(s)).toBeCloseTo(20);
  });
});

describe('profile summary', () => {
  it('attributes sample intervals to functions, leaves idle out of busy time, honours windows', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sk-bench-prof-test-'));
    try {
      const frame = (functionName: string, url = 'file:///work/main/apps/server/dist/x.js') => ({
        functionName,
        url,
        lineNumber: 9,
        scriptId: '1',
        columnNumber: 0,
      });
      const profile = {
        nodes: [
          { id: 1, callFrame: frame('(root)', ''), children: [2, 3, 4] },
          { id: 2, callFrame: frame('(idle)', '') },
          { id: 3, callFrame: frame('hot') },
          { id: 4, callFrame: frame('cold') },
        ],
        startTime: 1_000,
        endTime: 2_000,
        // Samples at t = 1000, 1100, 1200, 1300, 1400; each interval goes to the sample that starts it, the last
        // one's up to endTime (600 µs).
        samples: [3, 3, 2, 4, 3],
        timeDeltas: [0, 100, 100, 100, 100],
      };
      const path = join(dir, 'p.cpuprofile');
      await writeFile(path, JSON.stringify(profile));
      const all = await summariseProfile(path);
      expect(all.totalMs).toBeCloseTo(1);
      expect(all.busyMs).toBeCloseTo(0.9);
      expect(all.top[0]).toMatchObject({ fn: 'hot', where: 'apps/server/dist/x.js:10' });
      expect(all.top[0]?.ms).toBeCloseTo(0.8);
      expect(all.top[0]?.percent).toBeCloseTo((0.8 / 0.9) * 100);
      const late = await summariseProfile(path, 5, [{ label: 'late', startUs: 1_250, endUs: 1_350 }]);
      expect(late.top.map((t) => t.fn)).toEqual(['cold']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
