import { describe, expect, it } from 'vitest';
import { pairedSummary, parseBuild } from '../src/paired.js';

describe('paired A/B', () => {
  it('parses label=main.js with optional flags', () => {
    expect(parseBuild('old=/a/main.js')).toEqual({ label: 'old', main: '/a/main.js', flags: [] });
    expect(parseBuild('nm=/b/main.js:--metrics=false,--x=1')).toEqual({
      label: 'nm',
      main: '/b/main.js',
      flags: ['--metrics=false', '--x=1'],
    });
    expect(() => parseBuild('/no/label.js')).toThrow(/label=main.js/);
  });

  it('leaves out the cold cells and pairs each run with the first build of the same run', () => {
    // Three cold cells (huge, ignored), then warm cells; run 2 is slow for both builds alike.
    const cells = new Map([
      [
        'old',
        [
          [1e9, 1e9, 1e9, 100, 100, 100],
          [1e9, 1e9, 1e9, 50, 50, 50],
        ],
      ],
      [
        'new',
        [
          [0, 0, 0, 90, 90, 90],
          [0, 0, 0, 45, 45, 45],
        ],
      ],
    ]);
    const [old, now] = pairedSummary(['old', 'new'], cells);
    expect(old?.runRatios).toEqual([1, 1]);
    expect(now?.runRatios.map((r) => r.toFixed(2))).toEqual(['0.90', '0.90']);
    expect(now?.median).toBe(67.5);
    expect(now?.ratio).toBeCloseTo(0.9);
  });
});
