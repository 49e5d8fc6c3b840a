import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Storage } from '@streamkeep/storage';
import {
  describeDifferential,
  type KnownDivergence,
  type StorageHarness,
} from '@streamkeep/storage-conformance';
import { MemoryStorage } from '@streamkeep/storage-memory';
import { FileStorage } from '../src/index.js';

// The same random command sequences against MemoryStorage (the reference backend) and FileStorage: every result,
// error code and documented error detail must be identical. Short sequences, many of them; each FileStorage gets its
// own temporary directory and the fast options (no fsync per append).

const memory: StorageHarness = {
  async create({ clock, limits }) {
    const storage = new MemoryStorage({ clock, ...limits });
    return { storage, teardown: () => storage.close() };
  },
};

// A memory-backed temporary directory where there is one: FileStorage syncs every create, which costs a disk flush
// per sequence on a real disk and nothing on tmpfs, and the disk adds nothing this comparison looks at.
const scratch = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

const file: StorageHarness = {
  async create({ clock, limits }) {
    const rootDir = await mkdtemp(join(scratch, 'sk-diff-'));
    const storage: Storage = await FileStorage.open({ rootDir, clock, syncOnAppend: false, ...limits });
    return {
      storage,
      teardown: async () => {
        await storage.close();
        await rm(rootDir, { recursive: true, force: true, maxRetries: 5 });
      },
    };
  },
};

/** Disagreements known today, each removed by the contract rewrite's planners (issue #12). */
export const KNOWN_DIVERGENCES: readonly KnownDivergence[] = [];

describeDifferential('MemoryStorage ↔ FileStorage', memory, file, {
  // 2,250 runs × 4 sequences at once = 9,000 sequences; the postgres differential run makes another 1,000.
  numRuns: 2_250,
  parallel: 4,
  maxCommands: 10,
  seed: 1_712,
  timeout: 600_000,
  knownDivergences: KNOWN_DIVERGENCES,
});
