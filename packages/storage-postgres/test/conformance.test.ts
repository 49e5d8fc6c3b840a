import { describeStorageConformance } from '@streamkeep/storage-conformance';
import { afterAll } from 'vitest';
import { PostgresStorage, type PostgresStorageOptions } from '../src/index.js';
import { adminQuery, dropSchema, freshSchema, pgUrl } from './support.js';

// The kit creates a fresh storage per property run (thousands per file). Each live instance owns a schema; a torn
// down instance's schema is emptied and handed to the next instance, which saves the DDL of a new schema per run.
const spare: string[] = [];
const all: string[] = [];

async function takeSchema(): Promise<string> {
  const reused = spare.pop();
  if (reused !== undefined) return reused;
  const schema = freshSchema('conf');
  all.push(schema);
  return schema;
}

async function emptySchema(schema: string): Promise<void> {
  const s = `"${schema}"`;
  await adminQuery(
    `DELETE FROM ${s}.messages; DELETE FROM ${s}.producers; DELETE FROM ${s}.streams; UPDATE ${s}.usage SET bytes = 0;
     DELETE FROM ${s}.subscriptions; DELETE FROM ${s}.subscription_members; DELETE FROM ${s}.secrets`,
  );
  spare.push(schema);
}

describeStorageConformance(
  'PostgresStorage',
  {
    async create({ clock, limits }) {
      const schema = await takeSchema();
      const options: PostgresStorageOptions = {
        connectionString: pgUrl(),
        schema,
        clock,
        ...limits,
        pool: { max: 4 },
      };
      let storage = await PostgresStorage.open(options);
      return {
        get storage() {
          return storage;
        },
        // Reopening is a new pool and a new LISTEN connection over the same schema: nothing survives but the database.
        reopen: async () => {
          await storage.close();
          storage = await PostgresStorage.open(options);
          return storage;
        },
        teardown: async () => {
          await storage.close();
          await emptySchema(schema);
        },
      };
    },
  },
  {
    // Every command is a round trip to PostgreSQL: on a loaded machine the model property alone takes ~2 minutes, so
    // the kit's default of 120 s would fail on speed, not on behaviour.
    timeout: 900_000,
  },
);

afterAll(async () => {
  for (const schema of all) await dropSchema(schema);
});
