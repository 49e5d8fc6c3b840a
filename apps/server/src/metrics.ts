import { subscribe } from 'node:diagnostics_channel';
import { createRequire } from 'node:module';
import type { CommitReport } from '@streamkeep/storage';
import type * as PromClient from 'prom-client';
import { TalliedHistogram, type Tally } from './metrics-tally.js';
import {
  type DeliveryReport,
  type RetryReport,
  WEBHOOK_DELIVERY_CHANNEL,
  WEBHOOK_RETRY_CHANNEL,
} from './webhooks/events.js';

// prom-client's modules one by one, not its index: the index also loads the Pushgateway client (and with it `https`,
// `tls` and `crypto`), Summary (tdigest) and the cluster aggregator, none of which the server uses. That was about
// 0.6 MB of resident heap, and a larger resident heap makes V8 collect the old generation several times as often
// under a stream of large appends (64 KiB appends to the memory backend: 14 mark-compacts instead of 5, measured).
// prom-client has no `exports` map, so these paths are part of what it publishes (`files: ["lib/"]`); the types are
// its index's. The operations tests scrape every metric, so a release that moves a file fails them.
const require = createRequire(import.meta.url);
const Registry = require('prom-client/lib/registry') as typeof PromClient.Registry;
const Counter = require('prom-client/lib/counter') as typeof PromClient.Counter;
const Gauge = require('prom-client/lib/gauge') as typeof PromClient.Gauge;
const Histogram = require('prom-client/lib/histogram') as typeof PromClient.Histogram;
type Registry = PromClient.Registry;
type Counter<T extends string = string> = PromClient.Counter<T>;
type Gauge = PromClient.Gauge;

/**
 * prom-client's default metrics minus its CPU counters, whose module loads OpenTelemetry's API (for exemplars, which
 * the server never enables): 35–75 ms to load, and ~1.3 MB of the server's RSS, measured. {@link cpuCounters} stands in
 * for them.
 */
const DEFAULT_METRICS = [
  'processStartTime',
  'osMemoryHeap',
  'processOpenFileDescriptors',
  'processMaxFileDescriptors',
  'eventLoopLag',
  // prom-client adds this one only where Node has `process.getActiveResourcesInfo` (every supported version does).
  ...(typeof process.getActiveResourcesInfo === 'function' ? ['processResources'] : []),
  'processHandles',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
  'gc',
];

type DefaultMetric = (
  registry: Registry,
  config: { prefix: string; eventLoopMonitoringPrecision: number },
) => void;

function collectDefaultMetrics(registry: Registry, prefix: string): void {
  for (const name of DEFAULT_METRICS) {
    (require(`prom-client/lib/metrics/${name}`) as DefaultMetric)(registry, {
      prefix,
      eventLoopMonitoringPrecision: 10,
    });
  }
  cpuCounters(registry, prefix);
}

/**
 * The process CPU counters of prom-client's default metrics (same names), counting the CPU time of the whole process
 * since it started: the process metrics are registered at the first scrape, and CPU spent before it counts too.
 */
function cpuCounters(registry: Registry, prefix: string): void {
  const registers = [registry];
  let last: NodeJS.CpuUsage = { user: 0, system: 0 };
  // This one's `collect` sets all three, as prom-client's does.
  new Counter({
    name: `${prefix}process_cpu_user_seconds_total`,
    help: 'Total user CPU time spent in seconds.',
    registers,
    collect() {
      const now = process.cpuUsage();
      const user = (now.user - last.user) / 1e6;
      const sys = (now.system - last.system) / 1e6;
      last = now;
      this.inc(user);
      system.inc(sys);
      total.inc(user + sys);
    },
  });
  const system = new Counter({
    name: `${prefix}process_cpu_system_seconds_total`,
    help: 'Total system CPU time spent in seconds.',
    registers,
  });
  const total = new Counter({
    name: `${prefix}process_cpu_seconds_total`,
    help: 'Total user and system CPU time spent in seconds.',
    registers,
  });
}

/**
 * What a storage backend reports about each commit group it makes durable, through the `onCommit` observer the
 * server passes in its options (`openStorage`); the contract's type.
 */
export type { CommitReport };

/** Load figures the app reads on each scrape. */
export type LoadProbe = () => {
  readonly inFlight: number;
  readonly queued: number;
  readonly liveReads: number;
  readonly shed: number;
  readonly storageOpen: boolean;
};

/** The route label of a request: what it asked for, never its stream name (unbounded label values). */
export type RouteLabel =
  | 'stream'
  | 'stream_long_poll'
  | 'stream_sse'
  | 'healthz'
  | 'readyz'
  | 'metrics'
  | 'preflight'
  | 'unknown';

/** Buckets, in seconds, from a cached read (~100 µs) to a long-poll's default wait (30 s). */
const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** Buckets, in seconds, of one webhook delivery: a receiver on loopback (~1 ms) to a long `--webhook-timeout`. */
const WEBHOOK_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Where a {@link ServerMetrics} takes the webhook reports of `webhooks/events.ts`. */
interface WebhookSink {
  delivery(report: DeliveryReport): void;
  retry(report: RetryReport): void;
}

/** Every live ServerMetrics' sink, weakly held: a ServerMetrics dropped by its owner is still collected. */
const webhookSinks = new Set<WeakRef<WebhookSink>>();
let listeningToWebhooks = false;

function listenToWebhooks(sink: WebhookSink): void {
  webhookSinks.add(new WeakRef(sink));
  if (listeningToWebhooks) return;
  listeningToWebhooks = true;
  const each = (deliver: (s: WebhookSink) => void) => {
    for (const ref of webhookSinks) {
      const s = ref.deref();
      if (s === undefined) webhookSinks.delete(ref);
      else deliver(s);
    }
  };
  subscribe(WEBHOOK_DELIVERY_CHANNEL, (m) => each((s) => s.delivery(m as DeliveryReport)));
  subscribe(WEBHOOK_RETRY_CHANNEL, (m) => each((s) => s.retry(m as RetryReport)));
}

/**
 * The server's Prometheus metrics, in a registry of their own (so several apps in one process do not collide).
 * Served at `/metrics` in the text exposition format.
 */
export class ServerMetrics {
  readonly #registry: Registry;
  /** Process metrics still to be registered (at the first scrape, see the constructor). */
  #processMetricsDue: boolean;
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly duration: TalliedHistogram<'route' | 'method' | 'status'>;
  /** Appends not yet added to their counters (see the constructor). */
  private readonly pendingAppends = { appends: 0, messages: 0, bytes: 0 };
  /** The labelled series of each (route, method, status) seen, with requests not yet added to their counter. */
  private readonly series: RequestSeries[] = [];
  /** The same series by route and method, then status: found per request without building a key. */
  private readonly seriesByRoute = new Map<RouteLabel, Map<string, Map<number, RequestSeries>>>();
  private readonly recovery: Gauge;
  private readonly commitEntries: Tally;
  private readonly commitBytes: Tally;
  private readonly syncSeconds: Tally;
  private probe: LoadProbe | undefined;
  /** Held here: the webhook channels hold it only weakly. */
  private readonly webhooks: WebhookSink;

  /**
   * `processMetrics`: add prom-client's process and Node.js figures (CPU, memory, event-loop lag, GC, handles),
   * prefixed `streamkeep_`. In a registry of its own they are registered at the first scrape
   * ({@link ServerMetrics.text} or the first read of {@link ServerMetrics.registry}), not here: their collectors (an
   * event-loop delay histogram sampled every 10 ms, a GC observer) cost about 1.5 MB of RSS and a timer, which a
   * server nobody scrapes need not pay. The CPU counters count from the start of the process all the same; GC and
   * event-loop figures count from the first scrape. In a `registry` passed in (which its owner may scrape directly)
   * they are registered at once.
   */
  constructor(options: { registry?: Registry; processMetrics?: boolean } = {}) {
    const registry = options.registry ?? new Registry();
    this.#registry = registry;
    this.#processMetricsDue = options.processMetrics === true;
    if (options.registry !== undefined) this.#registerProcessMetrics();
    const registers = [registry];
    // Counters on the request path are tallied in plain numbers and added to prom-client's counters when scraped
    // (`collect`): an `inc` hashes its labels and allocates on every call, which showed in the CPU per request.
    const series = this.series;
    this.requests = new Counter({
      name: 'streamkeep_http_requests_total',
      help: 'HTTP requests answered, by route, method and status',
      labelNames: ['route', 'method', 'status'],
      registers,
      collect() {
        for (const s of series) {
          if (s.pending > 0) s.count.inc(s.pending);
          s.pending = 0;
        }
      },
    });
    this.duration = new TalliedHistogram({
      name: 'streamkeep_http_request_duration_seconds',
      help: 'Time from request to the end of its response (long-polls and SSE include their wait)',
      labelNames: ['route', 'method', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const pending = this.pendingAppends;
    new Counter({
      name: 'streamkeep_appends_total',
      help: 'Successful appends (POST requests that wrote or closed)',
      registers,
      collect() {
        if (pending.appends > 0) this.inc(pending.appends);
        pending.appends = 0;
      },
    });
    new Counter({
      name: 'streamkeep_appended_messages_total',
      help: 'Messages appended',
      registers,
      collect() {
        if (pending.messages > 0) this.inc(pending.messages);
        pending.messages = 0;
      },
    });
    new Counter({
      name: 'streamkeep_appended_bytes_total',
      help: 'Payload bytes appended',
      registers,
      collect() {
        if (pending.bytes > 0) this.inc(pending.bytes);
        pending.bytes = 0;
      },
    });
    const probe = (): ReturnType<LoadProbe> | undefined => this.probe?.();
    new Gauge({
      name: 'streamkeep_live_reads',
      help: 'Long-poll and SSE requests open now',
      registers,
      collect() {
        this.set(probe()?.liveReads ?? 0);
      },
    });
    new Gauge({
      name: 'streamkeep_requests_in_flight',
      help: 'Requests inside their storage calls now (see --max-in-flight)',
      registers,
      collect() {
        this.set(probe()?.inFlight ?? 0);
      },
    });
    new Gauge({
      name: 'streamkeep_requests_queued',
      help: 'Requests waiting for a storage slot or for storage to open now (see --max-queued)',
      registers,
      collect() {
        this.set(probe()?.queued ?? 0);
      },
    });
    let shedSeen = 0;
    new Counter({
      name: 'streamkeep_requests_shed_total',
      help: 'Requests refused with 503 OVERLOADED by the admission queue',
      registers,
      collect() {
        // The queue keeps its own running total; the counter catches up with it on each scrape.
        const shed = probe()?.shed ?? shedSeen;
        if (shed > shedSeen) this.inc(shed - shedSeen);
        shedSeen = shed;
      },
    });
    new Gauge({
      name: 'streamkeep_storage_open',
      help: '1 once storage is open and until shutdown, else 0',
      registers,
      collect() {
        this.set(probe()?.storageOpen ? 1 : 0);
      },
    });
    this.recovery = new Gauge({
      name: 'streamkeep_storage_recovery_seconds',
      help: 'How long opening the storage took at start-up (recovery included)',
      registers,
    });
    // Observed once per commit group (per append on the memory backend): tallied, added to prom-client when scraped.
    this.commitEntries = new TalliedHistogram({
      name: 'streamkeep_storage_commit_entries',
      help: 'Appends per commit group (reported by backends that offer onCommit)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    }).tally();
    this.commitBytes = new TalliedHistogram({
      name: 'streamkeep_storage_commit_bytes',
      help: 'Payload bytes per commit group (reported by backends that offer onCommit)',
      buckets: [256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216],
      registers,
    }).tally();
    this.syncSeconds = new TalliedHistogram({
      name: 'streamkeep_storage_sync_seconds',
      help: 'Time to make one commit group durable (reported by backends that offer onCommit)',
      buckets: LATENCY_BUCKETS,
      registers,
    }).tally();
    // Webhook delivery, reported on diagnostics channels by `webhooks/` (process-wide; see `webhooks/events.ts`).
    const attempts = new Counter({
      name: 'streamkeep_webhook_delivery_attempts_total',
      help: 'Webhook POSTs made, by outcome: the answer status class (2xx … 5xx), timeout, answer_too_large or connection_error',
      labelNames: ['outcome'],
      registers,
    });
    const deliverySeconds = new Histogram({
      name: 'streamkeep_webhook_delivery_duration_seconds',
      help: 'Time from a webhook POST to the last byte of its answer (or to its failure), by outcome',
      labelNames: ['outcome'],
      buckets: WEBHOOK_BUCKETS,
      registers,
    });
    const retries = new Counter({
      name: 'streamkeep_webhook_retries_total',
      help: 'Failed webhook deliveries scheduled again after their backoff',
      registers,
    });
    this.webhooks = {
      delivery({ outcome, seconds }) {
        attempts.inc({ outcome });
        deliverySeconds.observe({ outcome }, seconds);
      },
      retry() {
        retries.inc();
      },
    };
    listenToWebhooks(this.webhooks);
  }

  /** The registry every series is in (the process metrics, when asked for, from this first read on). */
  get registry(): Registry {
    this.#registerProcessMetrics();
    return this.#registry;
  }

  #registerProcessMetrics(): void {
    if (!this.#processMetricsDue) return;
    this.#processMetricsDue = false;
    collectDefaultMetrics(this.#registry, 'streamkeep_');
  }

  /** The content type of {@link ServerMetrics.text}. */
  get contentType(): string {
    return this.#registry.contentType;
  }

  /** Where scrapes read the load figures from (the app sets it). */
  watch(probe: LoadProbe): void {
    this.probe = probe;
  }

  request(route: RouteLabel, method: string, status: number, seconds: number): void {
    const m = KNOWN_METHODS.has(method) ? method : 'other';
    let byMethod = this.seriesByRoute.get(route);
    if (byMethod === undefined) {
      byMethod = new Map();
      this.seriesByRoute.set(route, byMethod);
    }
    let byStatus = byMethod.get(m);
    if (byStatus === undefined) {
      byStatus = new Map();
      byMethod.set(m, byStatus);
    }
    let series = byStatus.get(status);
    if (series === undefined) {
      // Labelled children resolved once per (route, method, status), not a label object per request.
      const labels = { route, method: m, status: String(status) };
      series = { count: this.requests.labels(labels), duration: this.duration.tally(labels), pending: 0 };
      byStatus.set(status, series);
      this.series.push(series);
    }
    series.pending++;
    series.duration.observe(seconds);
  }

  appended(messages: number, bytes: number): void {
    const pending = this.pendingAppends;
    pending.appends++;
    pending.messages += messages;
    pending.bytes += bytes;
  }

  storageOpened(seconds: number): void {
    this.recovery.set(seconds);
  }

  /** The `onCommit` observer handed to backends that offer one. */
  readonly commit = (report: CommitReport): void => {
    this.commitEntries.observe(report.entries);
    this.commitBytes.observe(report.bytes);
    this.syncSeconds.observe(report.syncMs / 1000);
  };

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** One (route, method, status) series of the request metrics. */
interface RequestSeries {
  readonly count: { inc(value?: number): void };
  readonly duration: { observe(value: number): void };
  /** Requests answered since the last scrape, not yet in `count`. */
  pending: number;
}

/** Methods kept as label values; anything else is `other`, so a client cannot mint label values. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS']);
