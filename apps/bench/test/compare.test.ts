import { describe, expect, it } from 'vitest';
import { type Cell, compareReports, parseReport, poolReports } from '../src/compare.js';

const report = (skMem: string, refMem: string, skP99: string, refP99: string) => `
## Appends on own streams

| figure (appends/s, higher is better) | SK mem | Ref mem | SK mem / Ref mem |
|---|---:|---:|---:|
| 100 B × 1 writer | ${skMem} | ${refMem} | 1.00× |

## Appends on own streams: acknowledgement latency p99

| figure (ms, lower is better) | SK mem | Ref mem |
|---|---:|---:|
| 100 B × 1 writer | ${skP99} | ${refP99} |

## Server CPU per append, own streams

| figure (µs, lower is better) | SK mem |
|---|---:|
| 100 B × 1 writer | 99 |
`;

describe('compareReports', () => {
  it('parses values, k suffixes and spreads of the compared sections only', () => {
    const cells = parseReport(report('4.5k ±10%', '4000 ±5%', '0.36 ±35%', '0.39'));
    expect(cells.get('Appends on own streams | 100 B × 1 writer | SK mem')).toEqual({
      value: 4500,
      spread: 0.1,
      higherIsBetter: true,
    });
    expect(
      cells.get('Appends on own streams: acknowledgement latency p99 | 100 B × 1 writer | Ref mem'),
    ).toEqual({
      value: 0.39,
      spread: 0,
      higherIsBetter: false,
    });
    expect([...cells.keys()].some((k) => k.includes('CPU'))).toBe(false);
    expect([...cells.keys()].some((k) => k.includes(' / '))).toBe(false);
  });

  it('flags a cell worse beyond the spread only when it also fell against the reference', () => {
    const before = parseReport(report('1000 ±5%', '1000 ±2%', '1.00 ±5%', '1.00 ±2%'));
    // Throughput: we lost 30 % while the reference held; latency: we and the reference both doubled.
    const after = parseReport(report('700 ±5%', '1000 ±2%', '2.00 ±5%', '2.00 ±2%'));
    const byKey = new Map(compareReports(before, after).map((c) => [c.key, c]));
    expect(byKey.get('Appends on own streams | 100 B × 1 writer | SK mem')?.verdict).toBe('worse');
    expect(
      byKey.get('Appends on own streams: acknowledgement latency p99 | 100 B × 1 writer | SK mem')?.verdict,
    ).toBe('drift');
    // Reference cells are not judged.
    expect([...byKey.keys()].every((k) => k.endsWith('SK mem'))).toBe(true);
  });

  it('keeps a move inside the larger spread as the same, and a gain beyond it as better', () => {
    const before = parseReport(report('1000 ±20%', '1000', '1.00 ±5%', '1.00'));
    const after = parseReport(report('850 ±5%', '1000', '0.50 ±5%', '1.00'));
    const verdicts = compareReports(before, after).map((c) => c.verdict);
    expect(verdicts).toEqual(['same', 'better']);
  });

  it('pools runs: the median value, a spread covering the runs, a flag only beyond what runs vary by', () => {
    const runs = ['1000 ±2%', '800 ±4%', '900 ±2%'].map((sk) =>
      parseReport(report(sk, '1000', '1.00', '1.00')),
    );
    const pooled = poolReports(runs).get('Appends on own streams | 100 B × 1 writer | SK mem');
    // Median 900; half the range (1000 - 800) is 100, 11 % of it, more than the runs' own spreads.
    expect(pooled?.value).toBe(900);
    expect(pooled?.spread).toBeCloseTo(100 / 900, 10);
    // 820 against one run of 1000 ±2 % is a regression; against the pooled runs it is within their spread.
    const after = parseReport(report('820 ±2%', '1000', '1.00', '1.00'));
    const verdict = (before: Map<string, Cell>) =>
      compareReports(before, after).find((c) => c.key.startsWith('Appends on own streams |'))?.verdict;
    expect(verdict(runs[0] as Map<string, Cell>)).toBe('worse');
    expect(verdict(poolReports(runs))).toBe('same');
    // One run pools to itself.
    expect(poolReports([runs[1] as Map<string, Cell>])).toBe(runs[1]);
  });
});
