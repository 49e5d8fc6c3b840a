import { describeConformance } from './conformance.js';
import { freshSchema, startCluster, type TestCluster } from './postgres-cluster.js';

// One app instance on PostgresStorage over a throwaway cluster, started here and removed afterwards.
let cluster: TestCluster | undefined;
describeConformance('postgres', {
  async setup() {
    cluster = await startCluster();
    return { postgresUrl: cluster.url, postgresSchema: freshSchema('conformance') };
  },
  async teardown() {
    await cluster?.stop();
  },
});
