import type { TargetId } from './targets.js';

/** One measured figure, with every repetition's value per target. */
export interface Figure {
  /** Stable key, e.g. `append/own/100/64/perSec`. */
  readonly key: string;
  /** Table the figure belongs to. */
  readonly group: string;
  /** Row label within the group. */
  readonly label: string;
  readonly unit: string;
  readonly better: 'higher' | 'lower';
  readonly values: Partial<Record<TargetId, number[]>>;
}

export class Results {
  readonly figures: Figure[] = [];
  readonly notes: string[] = [];

  record(
    meta: { key: string; group: string; label: string; unit: string; better: 'higher' | 'lower' },
    target: TargetId,
    value: number,
  ): void {
    let fig = this.figures.find((f) => f.key === meta.key);
    if (!fig) {
      fig = { ...meta, values: {} };
      this.figures.push(fig);
    }
    const list = fig.values[target] ?? [];
    list.push(value);
    fig.values[target] = list;
  }

  get(key: string): Figure | undefined {
    return this.figures.find((f) => f.key === key);
  }

  toJSON(): unknown {
    return { figures: this.figures, notes: this.notes };
  }
}
