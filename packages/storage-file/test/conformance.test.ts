import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Storage } from '@streamkeep/storage';
import { describeStorageConformance } from '@streamkeep/storage-conformance';
import { FileStorage } from '../src/index.js';

describeStorageConformance('FileStorage', {
  async create({ clock, limits }) {
    const dir = await mkdtemp(join(tmpdir(), 'sk-file-'));
    const open = () => FileStorage.open({ rootDir: dir, clock, syncOnAppend: false, ...limits });
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
});
