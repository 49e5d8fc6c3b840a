import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { FsyncProbe } from './results.js';
import { percentile } from './stats.js';

// statfs(2) magic numbers of the file systems a benchmark machine is likely to have.
const FS_TYPES: Record<number, string> = {
  61267: 'ext4',
  1481003842: 'xfs',
  2435016766: 'btrfs',
  16914836: 'tmpfs',
  2035054128: 'overlayfs',
  801189825: 'zfs',
  26985: 'nfs',
};

/**
 * Times `iterations` rounds of "append 100 B to a file, then fdatasync" in a fresh temporary directory under `root`:
 * the floor under every acknowledgement that waits for the disk (Streamkeep's file + sync, the reference's file mode,
 * a durable PostgreSQL commit). Synchronous calls, so nothing else in the harness process interleaves; run it before
 * the servers start.
 */
export function probeFdatasync(root: string, iterations: number): FsyncProbe {
  const dir = mkdtempSync(join(root, 'sk-bench-fsync-'));
  const times: number[] = [];
  try {
    const fd = openSync(join(dir, 'probe.log'), 'a');
    try {
      const line = Buffer.alloc(100, 0x70);
      // A few untimed rounds: the first ones also allocate the file's first block and journal its metadata.
      for (let i = 0; i < iterations + 5; i++) {
        const t = performance.now();
        writeSync(fd, line);
        fdatasyncSync(fd);
        if (i >= 5) times.push(performance.now() - t);
      }
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  times.sort((a, b) => a - b);
  const magic = statfsSync(root).type;
  return {
    dir: root,
    fsType: FS_TYPES[magic] ?? `0x${magic.toString(16)}`,
    iterations,
    p50Ms: percentile(times, 50),
    p90Ms: percentile(times, 90),
    p99Ms: percentile(times, 99),
  };
}
