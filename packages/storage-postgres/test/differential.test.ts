import type { Storage } from '@streamkeep/storage';
import {
  describeDifferential,
  type KnownDivergence,
  type StorageHarness,
} from '@streamkeep/storage-conformance';
import { MemoryStorage } from '@streamkeep/storage-memory';
import { afterAll } from 'vitest';
import { PostgresStorage } from '../src/index.js';
import { adminQuery, dropSchema, freshSchema, pgUrl } from './support.js';

// The same random command sequences against MemoryStorage (the reference backend) and PostgresStorage: every
// result, error code and documented error detail must be identical. Short sequences, several at once; a torn-down
// instance's schema is emptied and handed to the next one (creating a schema per sequence would dominate the run).

const memory: StorageHarness = {
  async create({ clock, limits }) {
    const storage = new MemoryStorage({ clock, ...limits });
    return { storage, teardown: () => storage.close() };
  },
};

const spare: string[] = [];
const all: string[] = [];

const postgres: StorageHarness = {
  async create({ clock, limits }) {
    let schema = spare.pop();
    if (schema === undefined) {
      schema = freshSchema('diff');
      all.push(schema);
    }
    const storage: Storage = await PostgresStorage.open({
      connectionString: pgUrl(),
      schema,
      clock,
      ...limits,
      pool: { max: 2 },
    });
    return {
      storage,
      teardown: async () => {
        await storage.close();
        const s = `"${schema}"`;
        await adminQuery(
          `DELETE FROM ${s}.messages; DELETE FROM ${s}.producers; DELETE FROM ${s}.streams; UPDATE ${s}.usage SET bytes = 0`,
        );
        spare.push(schema);
      },
    };
  },
};

/** Disagreements known today, each removed by the contract rewrite's planners (issue #12). */
export const KNOWN_DIVERGENCES: readonly KnownDivergence[] = [];

describeDifferential('MemoryStorage ↔ PostgresStorage', memory, postgres, {
  // 125 runs × 8 sequences at once = 1,000 sequences (about 2 minutes on a loaded 2-core machine: opening an instance
  // and each call cost milliseconds here); the file backend's differential run makes the other 9,000.
  numRuns: 125,
  parallel: 8,
  maxCommands: 8,
  seed: 2_024,
  timeout: 600_000,
  knownDivergences: KNOWN_DIVERGENCES,
});

afterAll(async () => {
  for (const schema of all) await dropSchema(schema);
});
