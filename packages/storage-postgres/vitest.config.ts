import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    include: ['test/**/*.test.ts'],
    // Starts a throwaway PostgreSQL cluster (scripts/postgres/cluster.sh) unless STREAMKEEP_PG_URL names one.
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
