import { MemoryStorage } from '@streamkeep/storage-memory';
import { describeStorageConformance } from '../src/index.js';

describeStorageConformance('MemoryStorage', {
  async create({ clock, limits }) {
    const storage = new MemoryStorage({ clock, ...limits });
    return { storage, teardown: () => storage.close() };
  },
});
