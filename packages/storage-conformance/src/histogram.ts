import type { Outcome } from './model.js';

/**
 * How often each operation ended in each outcome (`ok`, a refinement such as `created` / `duplicate`, or an error
 * code) over the runs of one property. `verbose` prints it; the kit's own tests use it to show that a default run
 * reaches every outcome the contract defines.
 */
export class OutcomeHistogram {
  readonly #counts = new Map<string, number>();

  add(operation: string, outcome: Outcome<unknown>, refinement?: string): void {
    const key = `${operation} ${outcome.ok ? (refinement ?? 'ok') : outcome.code}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
  }

  /** `operation outcome` → count. */
  entries(): [string, number][] {
    return [...this.#counts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Every outcome seen, over all operations (`ok`, refinements and error codes). */
  outcomes(): Set<string> {
    return new Set(this.entries().map(([key]) => key.slice(key.indexOf(' ') + 1)));
  }

  /** One line per operation: `append: ok 812, STREAM_CLOSED 40, …`. */
  format(): string {
    const byOp = new Map<string, string[]>();
    for (const [key, n] of this.entries()) {
      const space = key.indexOf(' ');
      const op = key.slice(0, space);
      const list = byOp.get(op) ?? [];
      list.push(`${key.slice(space + 1)} ${n}`);
      byOp.set(op, list);
    }
    return [...byOp].map(([op, list]) => `  ${op}: ${list.join(', ')}`).join('\n');
  }
}

// The histogram a model is counted into. Commands reach it through their model, so a property can count the runs it
// makes without threading a collector through fast-check's model runner.
const current = new WeakMap<object, OutcomeHistogram>();

/** Counts the commands run against `model` into `histogram`. */
export function attachHistogram(model: object, histogram: OutcomeHistogram): void {
  current.set(model, histogram);
}

export function histogramOf(model: object): OutcomeHistogram | undefined {
  return current.get(model);
}
