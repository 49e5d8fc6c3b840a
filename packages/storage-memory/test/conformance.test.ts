import { describeStorageConformance } from '@streamkeep/storage-conformance';
import { MemoryStorage } from '../src/index.js';

describeStorageConformance('MemoryStorage', {
  async create({ clock, limits }) {
    const storage = new MemoryStorage({ clock, ...limits });
    return { storage, teardown: () => storage.close() };
  },
});
