import { describeStorageConformance } from '@streamkeep/storage-conformance';
import { MemoryStorage } from '@streamkeep/storage-memory';

describeStorageConformance('MemoryStorage', {
  async create({ clock, limits }) {
    const storage = new MemoryStorage({ clock, ...limits });
    return { storage, teardown: () => storage.close() };
  },
});
