import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { TargetId } from './targets.js';

/** tmpfs when the machine has one (Linux), else the OS temporary directory. */
export const BULK_DATA_ROOT: string = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

export type Mode = 'smoke' | 'quick' | 'full';

export interface BenchConfig {
  readonly mode: Mode;
  readonly targets: readonly TargetId[];
  /** Repetitions of the append cells (at least 2); every rep visits every cell and target before the next. */
  readonly reps: number;
  /** `fdatasync` rounds of the disk probe run before the servers start. */
  readonly fsyncProbeIterations: number;
  readonly longPollTimeoutMs: number;
  /** Where file targets keep their data in the bulk-loading scenarios (catch-up, RSS, restart). */
  readonly bulkDataRoot: string;
  /** Mixed load sent to each server after it starts, before any measurement. */
  readonly serverWarmupMs: number;
  /**
   * Fan-out rounds (long-poll and SSE each, to `fanout.readers` readers) sent to each server before the live scenarios:
   * the first rounds at a new scale are slow on both ends (JIT, socket buffers), for every server alike. The fan-out
   * scenario adds one more unmeasured round per mode right before it measures.
   */
  readonly liveWarmupRounds: number;
  readonly append: {
    readonly sizes: readonly number[];
    readonly writers: readonly number[];
    readonly layouts: readonly ('own' | 'shared')[];
    readonly durationMs: number;
    readonly warmupMs: number;
  };
  readonly catchup: {
    readonly messages: number;
    readonly size: number;
    readonly loadConcurrency: number;
    readonly reps: number;
  };
  readonly latency: { readonly samples: number; readonly intervalMs: number; readonly reps: number };
  readonly fanout: { readonly readers: number; readonly settleMs: number; readonly reps: number };
  readonly rss: {
    readonly streams: number;
    readonly perStream: number;
    readonly size: number;
    readonly concurrency: number;
    /** Targets loaded for the RSS / restart scenario (a full load of every target may not fit the time). */
    readonly targets: readonly TargetId[];
    readonly restarts: number;
    /** Fresh loads per target (each on a new server). */
    readonly loads: number;
  };
  /**
   * Many streams: creates, appends spread over them, restart of a directory holding them, RSS per idle stream, and
   * bursts of live readers (see `many.ts`). Runs one target at a time, each on a fresh server.
   */
  readonly many: {
    /** Streams each target creates. */
    readonly streams: number;
    /** Streams of the PostgreSQL part (0: not run). */
    readonly pgStreams: number;
    /** Creates in flight. */
    readonly concurrency: number;
    /** Writers of the append comparisons (own streams vs spread over the N). */
    readonly writers: number;
    readonly size: number;
    readonly durationMs: number;
    readonly warmupMs: number;
    /** Runs of each append cell (own, spread), alternating. */
    readonly reps: number;
    /** Creating stops here; the rest of the scenario runs on the streams created so far. */
    readonly createTimeoutMs: number;
    /** Pause before reading RSS, so the server can collect its garbage. */
    readonly settleMs: number;
    /** Restarts of each persisting target, each paired with a restart of an empty data directory. */
    readonly restarts: number;
    /** Long-poll readers on one stream, woken by one append. */
    readonly burstReaders: number;
    /** Long-poll readers each on its own stream (one of the N), each woken by an append to it. */
    readonly streamReaders: number;
    /** How long the readers may take to connect, and to be served after the append(s). */
    readonly readerTimeoutMs: number;
    /**
     * Run Streamkeep with its own admission limits (sized by memory and `ulimit -n`) rather than the raised ones of
     * every other scenario, to see what its admission control refuses. Off by default.
     */
    readonly serverLimits: boolean;
    readonly targets: readonly TargetId[];
  };
  /**
   * Subscriptions (issue #13): wake latency (append → webhook received) with each count of webhook subscriptions, and
   * append throughput with `throughput.subscriptions` subscriptions vs none (see `subscriptions.ts`). One target at a
   * time, each on fresh servers.
   */
  readonly subscriptions: {
    /** Subscription counts of the wake-latency stages (each subscription on its own stream; the shared variant for > 1). */
    readonly counts: readonly number[];
    /** Wakes measured per run and count, one append at a time. */
    readonly samples: number;
    /** Appends per run of the shared variant (each wakes every subscription). */
    readonly sharedRounds: number;
    /** Runs of each wake-latency stage. */
    readonly reps: number;
    /** Pause between two measured wakes. */
    readonly intervalMs: number;
    /** A wake not received within this is counted as missed (4× for a round of the shared variant). */
    readonly wakeTimeoutMs: number;
    readonly throughput: {
      /** Subscriptions, each on its own stream; the unsubscribed server gets as many streams. */
      readonly subscriptions: number;
      readonly writers: number;
      readonly size: number;
      readonly durationMs: number;
      readonly warmupMs: number;
      /** Runs of each cell (with, without), alternating. */
      readonly reps: number;
    };
    readonly targets: readonly TargetId[];
  };
  /** One Streamkeep instance vs two on one PostgreSQL database (issue #7). */
  readonly postgres: {
    readonly size: number;
    readonly writers: readonly number[];
    readonly layouts: readonly ('own' | 'shared')[];
    readonly durationMs: number;
    readonly warmupMs: number;
    readonly reps: number;
    readonly latency: { readonly samples: number; readonly intervalMs: number; readonly reps: number };
    /** A cluster with `fsync` and `synchronous_commit` on (what a deployment runs), or both off. */
    readonly durable: boolean;
    /** Let `scripts/postgres/cluster.sh` install PostgreSQL from Debian's packages when it is missing. */
    readonly install: boolean;
  };
}

const ALL: readonly TargetId[] = ['sk-memory', 'sk-file-sync', 'sk-file-nosync', 'ref-memory', 'ref-file'];

/** The subscriptions scenario's targets: the reference keeps subscriptions in memory only (its file mode included). */
const SUBSCRIPTION_TARGETS: readonly TargetId[] = ['sk-memory', 'sk-file-sync', 'ref-memory'];

export function configFor(mode: Mode): BenchConfig {
  switch (mode) {
    case 'smoke':
      return {
        mode,
        targets: ALL,
        reps: 2,
        fsyncProbeIterations: 20,
        longPollTimeoutMs: 30_000,
        bulkDataRoot: BULK_DATA_ROOT,
        serverWarmupMs: 100,
        liveWarmupRounds: 1,
        append: { sizes: [100], writers: [1, 8], layouts: ['own', 'shared'], durationMs: 60, warmupMs: 20 },
        catchup: { messages: 200, size: 100, loadConcurrency: 8, reps: 2 },
        latency: { samples: 5, intervalMs: 5, reps: 2 },
        fanout: { readers: 10, settleMs: 50, reps: 2 },
        rss: {
          streams: 3,
          perStream: 20,
          size: 100,
          concurrency: 8,
          targets: ['sk-file-nosync', 'ref-file'],
          restarts: 2,
          loads: 1,
        },
        many: {
          streams: 100,
          // The PostgreSQL part runs in quick and full mode (CI's smoke run covers the cluster in its own scenario).
          pgStreams: 0,
          concurrency: 8,
          writers: 8,
          size: 100,
          durationMs: 60,
          warmupMs: 20,
          reps: 2,
          createTimeoutMs: 20_000,
          settleMs: 100,
          restarts: 1,
          burstReaders: 20,
          streamReaders: 20,
          readerTimeoutMs: 20_000,
          serverLimits: false,
          targets: ['sk-memory', 'sk-file-nosync', 'ref-file'],
        },
        subscriptions: {
          counts: [1, 10],
          samples: 5,
          sharedRounds: 2,
          reps: 2,
          intervalMs: 5,
          // Generous: a smoke run shares the machine with every other test.
          wakeTimeoutMs: 30_000,
          throughput: { subscriptions: 20, writers: 8, size: 100, durationMs: 60, warmupMs: 20, reps: 2 },
          targets: SUBSCRIPTION_TARGETS,
        },
        // Runs only where PostgreSQL is already installed: CI must not depend on installing it.
        postgres: {
          size: 100,
          writers: [1, 4],
          layouts: ['own', 'shared'],
          durationMs: 60,
          warmupMs: 20,
          reps: 2,
          latency: { samples: 5, intervalMs: 5, reps: 2 },
          durable: false,
          install: false,
        },
      };
    case 'quick':
      return {
        mode,
        targets: ALL,
        reps: 2,
        fsyncProbeIterations: 200,
        longPollTimeoutMs: 60_000,
        bulkDataRoot: BULK_DATA_ROOT,
        serverWarmupMs: 600,
        liveWarmupRounds: 1,
        append: {
          sizes: [100, 65536],
          writers: [1, 64],
          layouts: ['own', 'shared'],
          durationMs: 250,
          warmupMs: 80,
        },
        catchup: { messages: 10_000, size: 100, loadConcurrency: 64, reps: 5 },
        latency: { samples: 100, intervalMs: 5, reps: 2 },
        fanout: { readers: 200, settleMs: 150, reps: 3 },
        rss: {
          streams: 10,
          perStream: 1_000,
          size: 100,
          concurrency: 64,
          targets: ALL,
          restarts: 2,
          loads: 2,
        },
        many: {
          streams: 10_000,
          pgStreams: 10_000,
          concurrency: 64,
          writers: 64,
          size: 100,
          durationMs: 500,
          warmupMs: 100,
          reps: 2,
          createTimeoutMs: 60_000,
          settleMs: 1_000,
          restarts: 3,
          burstReaders: 10_000,
          streamReaders: 1_000,
          readerTimeoutMs: 60_000,
          serverLimits: false,
          targets: ALL,
        },
        subscriptions: {
          counts: [1, 100, 1_000],
          samples: 100,
          sharedRounds: 5,
          reps: 2,
          intervalMs: 5,
          wakeTimeoutMs: 10_000,
          throughput: {
            subscriptions: 1_000,
            writers: 64,
            size: 100,
            durationMs: 500,
            warmupMs: 100,
            reps: 4,
          },
          targets: SUBSCRIPTION_TARGETS,
        },
        postgres: {
          size: 100,
          writers: [1, 16, 64],
          layouts: ['own', 'shared'],
          durationMs: 250,
          warmupMs: 80,
          reps: 2,
          latency: { samples: 100, intervalMs: 5, reps: 2 },
          durable: true,
          install: true,
        },
      };
    case 'full':
      return {
        mode,
        targets: ALL,
        reps: 3,
        fsyncProbeIterations: 200,
        longPollTimeoutMs: 120_000,
        bulkDataRoot: BULK_DATA_ROOT,
        serverWarmupMs: 1_500,
        liveWarmupRounds: 1,
        append: {
          sizes: [100, 4096, 65536],
          writers: [1, 8, 64],
          layouts: ['own', 'shared'],
          durationMs: 2_000,
          warmupMs: 200,
        },
        catchup: { messages: 100_000, size: 100, loadConcurrency: 64, reps: 5 },
        latency: { samples: 1_000, intervalMs: 5, reps: 3 },
        fanout: { readers: 1_000, settleMs: 400, reps: 3 },
        rss: {
          streams: 100,
          perStream: 10_000,
          size: 100,
          concurrency: 128,
          targets: ['sk-file-nosync', 'ref-memory', 'ref-file'],
          restarts: 2,
          loads: 1,
        },
        many: {
          streams: 100_000,
          pgStreams: 10_000,
          concurrency: 64,
          writers: 64,
          size: 100,
          durationMs: 2_000,
          warmupMs: 200,
          reps: 3,
          createTimeoutMs: 180_000,
          settleMs: 2_000,
          restarts: 5,
          burstReaders: 10_000,
          streamReaders: 1_000,
          readerTimeoutMs: 60_000,
          serverLimits: false,
          targets: ALL,
        },
        subscriptions: {
          counts: [1, 100, 1_000],
          samples: 500,
          sharedRounds: 20,
          reps: 3,
          intervalMs: 5,
          wakeTimeoutMs: 10_000,
          throughput: {
            subscriptions: 1_000,
            writers: 64,
            size: 100,
            durationMs: 2_000,
            warmupMs: 200,
            reps: 6,
          },
          targets: SUBSCRIPTION_TARGETS,
        },
        postgres: {
          size: 100,
          writers: [1, 16, 64],
          layouts: ['own', 'shared'],
          durationMs: 1_500,
          warmupMs: 200,
          reps: 3,
          latency: { samples: 500, intervalMs: 5, reps: 2 },
          durable: true,
          install: true,
        },
      };
  }
}
