#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { median } from './stats.js';

/**
 * Compares two reports written by the harness (`docs/benchmarks.md` or an `--out` file), cell by cell, for the
 * Streamkeep columns of the sections both have. A cell is worse **beyond the spread** only when it moved against us by
 * more than the larger spread of the two reports (at least 5 %) *and* also relative to the reference server's figure of
 * the same row in each report (so that a machine that got slower for everyone does not count as a regression): the
 * reference column is `Ref file` for `SK file+sync` and `Ref mem` otherwise, and the relative tolerance adds the
 * spreads of both columns. Used to compare a run with the 12-03 report, or two builds run back to back (A/B).
 *
 * Several runs of each side can be given, comma-separated (`old-1.md,old-2.md new-1.md,new-2.md`): each side's cells
 * are pooled first ({@link poolReports}), so that a cell's tolerance covers how much it moves from run to run, which
 * the spread within one run (two or three repetitions) understates.
 *
 * Usage: `node dist/compare.js <old.md>[,…] <new.md>[,…]`; prints one line per cell, then a summary line.
 */

/** The sections compared; others (CPU per append, profiles, many streams) have no counterpart in older reports. */
const SECTIONS = [
  'Appends on own streams',
  'Appends on own streams: acknowledgement latency p99',
  'Appends on one shared stream',
  'Appends on one shared stream: acknowledgement latency p99',
  'Live delivery latency',
  'Fan-out of one append to 1,000 readers',
  'Catch-up read',
  'Memory and restart after loading',
];

export interface Cell {
  readonly value: number;
  /** Half the range of the runs as a fraction of the median (0 when the report gives none). */
  readonly spread: number;
  readonly higherIsBetter: boolean;
}

export type Verdict = 'worse' | 'drift' | 'same' | 'better';

export interface Comparison {
  readonly key: string;
  readonly before: Cell;
  readonly after: Cell;
  /** > 1 means better, whichever way the figure points. */
  readonly change: number;
  readonly verdict: Verdict;
}

/** Every numeric cell of the compared sections, keyed `section | row | column`. */
export function parseReport(markdown: string): Map<string, Cell> {
  const cells = new Map<string, Cell>();
  let section: string | undefined;
  let columns: string[] | undefined;
  let higherIsBetter = true;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('## ')) {
      const title = line.slice(3).trim();
      section = SECTIONS.find((s) => title === s || (s.startsWith('Memory') && title.startsWith(s)));
      columns = undefined;
      continue;
    }
    if (section === undefined || !line.startsWith('|')) continue;
    const row = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const first = row[0] ?? '';
    if (first.startsWith('figure')) {
      columns = row;
      // "(appends/s, higher is better)", "(ms, lower is better)".
      higherIsBetter = !/lower is better/.test(first);
      continue;
    }
    if (columns === undefined || first.startsWith('---')) continue;
    for (let i = 1; i < row.length; i++) {
      const column = columns[i] ?? '';
      if (column.includes('/')) continue; // ratio columns
      const m = /^([\d.]+)(k)?(?: ±(\d+)%)?/.exec((row[i] ?? '').replace(/,/g, ''));
      if (m === null) continue;
      // RSS and restart figures sit in a table of mixed units: smaller is better for each of them.
      const higher = /RSS|restart/.test(first) ? false : higherIsBetter;
      cells.set(`${section} | ${first} | ${column}`, {
        value: Number(m[1]) * (m[2] === undefined ? 1 : 1000),
        spread: m[3] === undefined ? 0 : Number(m[3]) / 100,
        higherIsBetter: higher,
      });
    }
  }
  return cells;
}

/**
 * The cells of several runs of one build as one report: each cell's value is the median of the runs' values, its
 * spread the larger of the median spread within a run and half the range of the runs' values (as a fraction of the
 * median). Cells missing from some runs are pooled over the runs that have them.
 */
export function poolReports(reports: readonly Map<string, Cell>[]): Map<string, Cell> {
  if (reports.length === 1) return reports[0] as Map<string, Cell>;
  const out = new Map<string, Cell>();
  const keys = new Set(reports.flatMap((r) => [...r.keys()]));
  for (const key of keys) {
    const cells = reports.flatMap((r) => r.get(key) ?? []);
    const values = cells.map((c) => c.value);
    const value = median(values);
    const between = value === 0 ? 0 : (Math.max(...values) - Math.min(...values)) / 2 / value;
    out.set(key, {
      value,
      spread: Math.max(median(cells.map((c) => c.spread)), between),
      higherIsBetter: (cells[0] as Cell).higherIsBetter,
    });
  }
  return out;
}

function ratio(before: Cell, after: Cell): number {
  return before.higherIsBetter ? after.value / before.value : before.value / after.value;
}

/** Judges every Streamkeep cell present in both reports. */
export function compareReports(before: Map<string, Cell>, after: Map<string, Cell>): Comparison[] {
  const out: Comparison[] = [];
  for (const [key, b] of before) {
    const a = after.get(key);
    if (a === undefined || !/\| SK [^|]*$/.test(key)) continue;
    const change = ratio(b, a);
    const tolerance = Math.max(b.spread, a.spread, 0.05);
    const referenceColumn = key.endsWith('SK file+sync') ? 'Ref file' : 'Ref mem';
    const refKey = key.replace(/SK [^|]*$/, referenceColumn);
    const rb = before.get(refKey);
    const ra = after.get(refKey);
    let worseRelative = true;
    if (rb !== undefined && ra !== undefined) {
      const relative = change / ratio(rb, ra);
      const relativeTolerance = Math.max(b.spread, a.spread) + Math.max(rb.spread, ra.spread);
      worseRelative = relative < 1 - relativeTolerance;
    }
    let verdict: Verdict = 'same';
    if (change < 1 - tolerance) verdict = worseRelative ? 'worse' : 'drift';
    else if (change > 1 + tolerance) verdict = 'better';
    out.push({ key, before: b, after: a, change, verdict });
  }
  return out;
}

function main(argv: readonly string[]): void {
  const [oldPath, newPath] = argv;
  if (oldPath === undefined || newPath === undefined) {
    process.stderr.write('usage: node dist/compare.js <old.md>[,<old.md>…] <new.md>[,<new.md>…]\n');
    process.exit(2);
  }
  const load = (paths: string) =>
    poolReports(paths.split(',').map((path) => parseReport(readFileSync(path, 'utf8'))));
  const results = compareReports(load(oldPath), load(newPath));
  const order: Verdict[] = ['worse', 'drift', 'same', 'better'];
  results.sort((x, y) => order.indexOf(x.verdict) - order.indexOf(y.verdict) || x.change - y.change);
  const count = (v: Verdict) => results.filter((r) => r.verdict === v).length;
  for (const r of results) {
    const tol = Math.max(r.before.spread, r.after.spread, 0.05);
    process.stdout.write(
      `${r.verdict.padEnd(6)} ${r.change.toFixed(2)}x (±${(tol * 100).toFixed(0)}%)  ${r.key}: ${r.before.value} -> ${r.after.value}\n`,
    );
  }
  process.stdout.write(
    `worse beyond the spread (also relative to the reference): ${count('worse')}; worse only as the reference moved: ${count('drift')}; within the spread: ${count('same')}; better: ${count('better')}\n`,
  );
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1])
  main(process.argv.slice(2));
