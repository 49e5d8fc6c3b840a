import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Storage } from '@streamkeep/storage';
import { describeStorageConformance } from '@streamkeep/storage-conformance';
import { FileStorage, type FileStorageOptions } from '../src/index.js';

function harness(extra: Partial<FileStorageOptions>) {
  return {
    async create({
      clock,
      limits,
    }: {
      clock: FileStorageOptions['clock'];
      limits: Partial<FileStorageOptions>;
    }) {
      const dir = await mkdtemp(join(tmpdir(), 'sk-file-'));
      const open = () => FileStorage.open({ rootDir: dir, clock, syncOnAppend: false, ...limits, ...extra });
      let storage: Storage = await open();
      return {
        get storage() {
          return storage;
        },
        reopen: async () => {
          await storage.close();
          storage = await open();
          return storage;
        },
        teardown: async () => {
          await storage.close();
          await rm(dir, { recursive: true, force: true, maxRetries: 5 });
        },
      };
    },
  };
}

// The defaults: tail cache on, small writes inline.
describeStorageConformance('FileStorage', harness({}));
// Every read from the log, every write through the thread pool.
describeStorageConformance(
  'FileStorage (tail cache off, thread-pool writes)',
  harness({ tailCacheBytes: 0, inlineWriteBytes: 0 }),
  { numRuns: 40 },
);
// A cache so small that nearly every append evicts something.
describeStorageConformance(
  'FileStorage (tiny tail cache)',
  harness({ tailCacheBytes: 2000, tailCacheStreamBytes: 700 }),
  { numRuns: 40 },
);
// At most two streams loaded: nearly every operation drops a stream and loads another from its log again.
describeStorageConformance(
  'FileStorage (two streams loaded)',
  harness({ maxLoadedStreams: 2, maxOpenFiles: 1 }),
  {
    numRuns: 40,
  },
);
// Synced, every group through the journal: lifecycle changes and group writes share its rounds.
describeStorageConformance(
  'FileStorage (sync, journal always)',
  harness({ syncOnAppend: true, journal: 'always' }),
  {
    numRuns: 25,
  },
);
