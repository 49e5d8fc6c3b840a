import type { Figure } from './results.js';
import { type Summary, spreadPercent, summarise } from './stats.js';
import type { SeriesId, TargetId } from './targets.js';

/** Column headings of the targets. */
export const SHORT: Record<TargetId, string> = {
  'sk-memory': 'SK mem',
  'sk-file-sync': 'SK file+sync',
  'sk-file-nosync': 'SK file nosync',
  'ref-memory': 'Ref mem',
  'ref-file': 'Ref file',
};

/** A figure with three significant digits or so: 123k, 12.3k, 123, 12.3, 1.23. */
export function num(v: number): string {
  if (!Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a >= 100_000) return `${(v / 1000).toFixed(0)}k`;
  if (a >= 10_000) return `${(v / 1000).toFixed(1)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** Median ±spread of the runs, or the single run. */
export function cell(s: Summary | undefined): string {
  if (!s || !Number.isFinite(s.median)) return '—';
  if (s.runs < 2) return `${num(s.median)} (1 run)`;
  const sp = spreadPercent(s);
  return `${num(s.median)} ±${Number.isFinite(sp) ? sp.toFixed(0) : '?'}%`;
}

export function ratioText(r: number): string {
  if (!Number.isFinite(r)) return '—';
  return `${r >= 10 ? r.toFixed(1) : r >= 1 ? r.toFixed(2) : r.toFixed(3)}×`;
}

export function sum(f: Figure | undefined, t: SeriesId): Summary | undefined {
  const v = f?.values[t];
  return v && v.length > 0 ? summarise(v) : undefined;
}

/** Median of `a` / median of `b`. */
export function ratio(f: Figure | undefined, a: SeriesId, b: SeriesId): number {
  const x = sum(f, a)?.median;
  const y = sum(f, b)?.median;
  return x !== undefined && y !== undefined && y !== 0 ? x / y : Number.NaN;
}

/** The header and alignment rows of a markdown table whose first two columns (figure, unit) are text. */
export function tableHead(head: readonly string[]): string[] {
  return [
    `| ${head.join(' | ')} |`,
    `|---|---|${head
      .slice(2)
      .map(() => '---:')
      .join('|')}|`,
  ];
}
