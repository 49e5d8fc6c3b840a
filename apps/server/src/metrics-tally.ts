import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';

/** What prom-client's registry reads of a histogram when it writes the text format (not in prom-client's types). */
interface ExportingHistogram<T extends string> extends PromClient.Histogram<T> {
  readonly name: string;
  getForPromString(): Promise<{ values: ExportedValue[] }>;
}

const require = createRequire(import.meta.url);
// See metrics.ts for why prom-client's modules are loaded one by one.
const Histogram = require('prom-client/lib/histogram') as new <T extends string>(
  config: PromClient.HistogramConfiguration<T>,
) => ExportingHistogram<T>;

/** One labelled series of a {@link TalliedHistogram}, observed without prom-client on the hot path. */
export class Tally {
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    (this.counts[i] as number)++;
    this.sum += value;
    this.count++;
  }

  /** Observations at or below `bound` (`+Inf`: all of them). */
  atOrBelow(le: string | number): number {
    if (le === '+Inf') return this.count;
    let n = 0;
    for (let i = 0; i < this.bounds.length && (this.bounds[i] as number) <= Number(le); i++) {
      n += this.counts[i] as number;
    }
    return n;
  }

  clear(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

interface ExportedValue {
  labels?: Record<string, string | number>;
  sharedLabels?: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/**
 * A prom-client histogram whose observations are counted in {@link Tally} objects and added to prom-client's figures
 * only when scraped: prom-client's `observe` builds a label hash, validates labels and looks the bucket up by a
 * string key on every call, a few µs per request on the append path. prom-client keeps the registration, the
 * (zeroed) series and the exposition format; the tallies are added to its exported values.
 */
export class TalliedHistogram<T extends string = string> extends Histogram<T> {
  readonly #bounds: readonly number[];
  readonly #labelNames: readonly string[];
  // Plain fields, not `#` ones: prom-client's constructor calls `reset`, before a subclass's fields exist.
  private readonly tallies: Map<string, Tally> = new Map();

  constructor(config: PromClient.HistogramConfiguration<T> & { buckets: number[] }) {
    super(config);
    this.#bounds = [...config.buckets].sort((a, b) => a - b);
    this.#labelNames = config.labelNames ?? [];
  }

  /** The tally of one series (created, and zeroed in prom-client so that it is exported, on first use). */
  tally(labels: Partial<Record<T, string | number>> = {}): Tally {
    const key = this.#key(labels);
    let t = this.tallies.get(key);
    if (t === undefined) {
      t = new Tally(this.#bounds);
      this.tallies.set(key, t);
      if (this.#labelNames.length > 0) this.zero(labels);
    }
    return t;
  }

  override async getForPromString(): Promise<{ values: ExportedValue[] }> {
    const data = await super.getForPromString();
    const bucketName = `${this.name}_bucket`;
    const sumName = `${this.name}_sum`;
    const countName = `${this.name}_count`;
    for (const v of data.values) {
      const t = this.tallies.get(this.#key(v.sharedLabels ?? {}));
      if (t === undefined) continue;
      if (v.metricName === bucketName) v.value += t.atOrBelow(v.labels?.le ?? '+Inf');
      else if (v.metricName === sumName) v.value += t.sum;
      else if (v.metricName === countName) v.value += t.count;
    }
    return data;
  }

  override reset(): void {
    super.reset();
    if (this.tallies === undefined) return; // called from prom-client's constructor
    // The tallies stay (their owners hold them), emptied, with their series zeroed again in prom-client.
    for (const [key, t] of this.tallies) {
      t.clear();
      this.zero(this.#labelsOf(key));
    }
  }

  #key(labels: Partial<Record<string, string | number>>): string {
    return this.#labelNames.map((n) => String(labels[n] ?? '')).join('\u0000');
  }

  #labelsOf(key: string): Partial<Record<T, string>> {
    const values = key.split('\u0000');
    return Object.fromEntries(this.#labelNames.map((n, i) => [n, values[i] ?? ''])) as Partial<
      Record<T, string>
    >;
  }
}
