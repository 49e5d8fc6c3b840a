import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';

/** What the default limits are sized from. */
export interface MachineResources {
  /** Memory the process may use: the smallest of the V8 heap limit, the cgroup limit and physical memory. */
  readonly memoryBytes: number;
  /** The soft limit on open file descriptors (`ulimit -n`); `undefined` where it cannot be read or is unlimited. */
  readonly fileDescriptors: number | undefined;
}

/** Limits derived from {@link MachineResources} (see {@link sizeLimits}). */
export interface SizedLimits {
  readonly maxLiveReads: number;
  readonly maxInFlight: number;
  readonly maxQueued: number;
}

/**
 * Memory one open long-poll or SSE connection costs, with room to spare: measured at about 9 KiB of heap and 14 KiB
 * of resident memory per waiting long-poll (10,000 on one stream), plus the kernel's socket buffers.
 */
export const LIVE_READ_BYTES = 32 * 1024;

/** Descriptors kept back from live reads for other connections, storage files, pools and logs. */
function reservedDescriptors(limit: number): number {
  return Math.max(512, Math.ceil(limit / 10));
}

/**
 * Sizes the connection and admission limits from memory and descriptors, so that a large machine serves large
 * crowds by default and a small one sheds before it runs out:
 *
 * - live reads: a quarter of memory at {@link LIVE_READ_BYTES} each, and never more than the descriptors left after a
 *   reserve (past the descriptor limit the kernel refuses connections instead of the server answering 503);
 * - requests inside storage: a quarter of memory at `maxReadBytes` each (the most one catch-up read materialises),
 *   between 64 and 4,096. Generous on purpose: with a fast backend a slot is held for about one event-loop turn, so
 *   a burst of cheap requests (thousands of long-polls arriving at once) should fit in the slots of a turn or two
 *   rather than queue behind them;
 * - the admission queue: a quarter of memory at {@link LIVE_READ_BYTES} per waiting request, at least the live reads,
 *   so that a burst of permitted readers can always queue.
 */
export function sizeLimits(machine: MachineResources, maxReadBytes: number): SizedLimits {
  const quarter = machine.memoryBytes / 4;
  let maxLiveReads = Math.max(64, Math.floor(quarter / LIVE_READ_BYTES));
  const fds = machine.fileDescriptors;
  if (fds !== undefined) maxLiveReads = Math.min(maxLiveReads, Math.max(64, fds - reservedDescriptors(fds)));
  const maxInFlight = Math.min(4096, Math.max(64, Math.floor(quarter / Math.max(1, maxReadBytes))));
  const maxQueued = Math.max(maxLiveReads, Math.floor(quarter / LIVE_READ_BYTES));
  return { maxLiveReads, maxInFlight, maxQueued };
}

/** Reads this process's memory and descriptor limits. */
export function machineResources(): MachineResources {
  let memoryBytes = Math.min(getHeapStatistics().heap_size_limit, totalmem());
  // `constrainedMemory` is the cgroup limit, or a huge number (or 0) when there is none.
  const constrained = process.constrainedMemory?.() ?? 0;
  if (constrained > 0 && constrained < memoryBytes) memoryBytes = constrained;
  return { memoryBytes, fileDescriptors: openFileLimit() };
}

/** The soft `RLIMIT_NOFILE`, from `/proc/self/limits` (Linux); Node has no portable API for it. */
function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}
