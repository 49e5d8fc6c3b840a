import type { SeriesId } from './targets.js';

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
  readonly values: Partial<Record<SeriesId, number[]>>;
}

/** `fdatasync` of a small append on the disk the file targets write to, timed in the harness process. */
export interface FsyncProbe {
  readonly dir: string;
  /** File-system type of `dir` (ext4, xfs, tmpfs, …), or a hexadecimal magic number. */
  readonly fsType: string;
  readonly iterations: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
}

/** How the PostgreSQL scenario ran, or why it did not. */
export interface PostgresInfo {
  /** Set when the scenario was skipped: the reason. */
  readonly skipped?: string;
  /** Server major version (`PG_VERSION`). */
  readonly version?: string;
  /** `fsync` and `synchronous_commit` on (a durable cluster) or off. */
  readonly durable: boolean;
  /** Where the cluster keeps its data. */
  readonly dir?: string;
  /** Seconds from `cluster.sh start` to a running cluster (includes installing PostgreSQL when it was missing). */
  readonly startS?: number;
}

/** How the many-streams scenario ran: what each server was asked for, and what cut a figure short. */
export interface ManyInfo {
  /** Streams each series was asked to create. */
  readonly streams: Partial<Record<SeriesId, number>>;
  /** Per series: figure key → why it is missing or what cut it short (shown in that cell of the report). */
  readonly issues: Partial<Record<SeriesId, Record<string, string>>>;
  /** The PostgreSQL part: how it ran, or why it was skipped. */
  postgres?: PostgresInfo;
}

/** How the subscriptions scenario ran: what failed per target. */
export interface SubscriptionsInfo {
  /** Per target: part of the scenario (`wake`, `throughput`) → why it has no figures (shown in the report). */
  readonly issues: Partial<Record<SeriesId, Record<string, string>>>;
  /** Per target: webhook deliveries whose body was not a wake the receiver could read. */
  malformed?: Partial<Record<SeriesId, number>>;
}

/** The recorded figures of a run, as written to `results/<mode>.json`. */
export interface ResultsJson {
  readonly figures: Figure[];
  readonly notes: string[];
  readonly fsyncProbe: FsyncProbe | undefined;
  readonly postgres: PostgresInfo | undefined;
  /** Absent in runs recorded before the many-streams scenario existed. */
  readonly many?: ManyInfo | undefined;
  /** Absent in runs recorded before the subscriptions scenario existed. */
  readonly subscriptions?: SubscriptionsInfo | undefined;
}

export class Results {
  readonly figures: Figure[] = [];
  readonly notes: string[] = [];
  fsyncProbe: FsyncProbe | undefined;
  postgres: PostgresInfo | undefined;
  many: ManyInfo | undefined;
  subscriptions: SubscriptionsInfo | undefined;

  record(
    meta: { key: string; group: string; label: string; unit: string; better: 'higher' | 'lower' },
    target: SeriesId,
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

  toJSON(): ResultsJson {
    return {
      figures: this.figures,
      notes: this.notes,
      fsyncProbe: this.fsyncProbe,
      postgres: this.postgres,
      many: this.many,
      subscriptions: this.subscriptions,
    };
  }

  /** The inverse of {@link Results.toJSON}, for re-rendering a recorded run. */
  static fromJSON(json: ResultsJson): Results {
    const r = new Results();
    r.figures.push(...json.figures);
    r.notes.push(...json.notes);
    r.fsyncProbe = json.fsyncProbe;
    r.postgres = json.postgres;
    r.many = json.many;
    r.subscriptions = json.subscriptions;
    return r;
  }
}
