/** Summary of repeated measurements of one figure. */
export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function summarise(values: readonly number[]): Summary {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0)
    return { median: Number.NaN, min: Number.NaN, max: Number.NaN, runs: values.length };
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), runs: finite.length };
}

/** Nearest-rank percentile of already sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

/** Half the range as a percentage of the median: the "±" shown next to every figure. */
export function spreadPercent(s: Summary): number {
  if (!Number.isFinite(s.median) || s.median === 0) return Number.NaN;
  return ((s.max - s.min) / 2 / Math.abs(s.median)) * 100;
}
