import { describeDifferential, type StorageHarness } from '@streamkeep/storage-conformance';
import { MemoryStorage } from '@streamkeep/storage-memory';

const memory: StorageHarness = {
  async create({ clock, limits }) {
    const storage = new MemoryStorage({ clock, ...limits });
    return { storage, teardown: () => storage.close() };
  },
};

// Put your backend's harness second: every result, error code and error detail must equal MemoryStorage's.
describeDifferential('MemoryStorage ↔ MemoryStorage', memory, memory, {
  numRuns: 100,
  parallel: 4,
  maxCommands: 10,
  seed: 42,
  knownDivergences: [],
});
