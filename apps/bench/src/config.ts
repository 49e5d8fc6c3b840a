import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { TargetId } from './targets.js';

/** tmpfs when the machine has one (Linux), else the OS temporary directory. */
export const BULK_DATA_ROOT: string = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

export type Mode = 'smoke' | 'quick' | 'full';

export interface BenchConfig {
  readonly mode: Mode;
  readonly targets: readonly TargetId[];
  /** Repetitions of every scenario (at least 2). */
  readonly reps: number;
  readonly longPollTimeoutMs: number;
  /** Where file targets keep their data in the bulk-loading scenarios (catch-up, RSS, restart). */
  readonly bulkDataRoot: string;
  /** Mixed load sent to each server after it starts, before any measurement. */
  readonly serverWarmupMs: number;
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
  readonly latency: { readonly samples: number; readonly intervalMs: number };
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
}

const ALL: readonly TargetId[] = ['sk-memory', 'sk-file-sync', 'sk-file-nosync', 'ref-memory', 'ref-file'];

export function configFor(mode: Mode): BenchConfig {
  switch (mode) {
    case 'smoke':
      return {
        mode,
        targets: ALL,
        reps: 2,
        longPollTimeoutMs: 30_000,
        bulkDataRoot: BULK_DATA_ROOT,
        serverWarmupMs: 100,
        append: { sizes: [100], writers: [1, 8], layouts: ['own', 'shared'], durationMs: 60, warmupMs: 20 },
        catchup: { messages: 200, size: 100, loadConcurrency: 8, reps: 2 },
        latency: { samples: 5, intervalMs: 5 },
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
      };
    case 'quick':
      return {
        mode,
        targets: ALL,
        reps: 2,
        longPollTimeoutMs: 60_000,
        bulkDataRoot: BULK_DATA_ROOT,
        serverWarmupMs: 600,
        append: {
          sizes: [100, 65536],
          writers: [1, 64],
          layouts: ['own', 'shared'],
          durationMs: 250,
          warmupMs: 80,
        },
        catchup: { messages: 10_000, size: 100, loadConcurrency: 64, reps: 5 },
        latency: { samples: 30, intervalMs: 10 },
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
      };
    case 'full':
      return {
        mode,
        targets: ALL,
        reps: 2,
        longPollTimeoutMs: 120_000,
        bulkDataRoot: BULK_DATA_ROOT,
        serverWarmupMs: 1_500,
        append: {
          sizes: [100, 4096, 65536],
          writers: [1, 8, 64],
          layouts: ['own', 'shared'],
          durationMs: 800,
          warmupMs: 200,
        },
        catchup: { messages: 100_000, size: 100, loadConcurrency: 64, reps: 5 },
        latency: { samples: 200, intervalMs: 10 },
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
      };
  }
}
