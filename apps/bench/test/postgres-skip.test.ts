import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configFor } from '../src/config.js';
import { countPostgresSteps, postgresScenarios } from '../src/postgres.js';
import { Progress } from '../src/progress.js';
import { Results } from '../src/results.js';

// The scenario must never fail a run because PostgreSQL cannot be started: it records why and moves on.
describe('postgres scenario without PostgreSQL', () => {
  let dir: string | undefined;
  afterEach(async () => {
    delete process.env.STREAMKEEP_BENCH_PG_SCRIPT;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('is skipped with the cluster script’s own reason', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sk-bench-pg-skip-'));
    const script = join(dir, 'cluster.sh');
    await writeFile(script, '#!/usr/bin/env bash\necho "postgres-cluster: no initdb here" >&2\nexit 1\n');
    await chmod(script, 0o755);
    process.env.STREAMKEEP_BENCH_PG_SCRIPT = script;
    // install: true, so the (fake) script runs even where PostgreSQL is not installed.
    const smoke = configFor('smoke');
    const config = { ...smoke, postgres: { ...smoke.postgres, install: true } };
    const results = new Results();
    await postgresScenarios(config, results, new Progress(countPostgresSteps(config), true), {
      longPollTimeoutMs: 1_000,
    });
    expect(results.postgres?.skipped).toContain('no initdb here');
    expect(results.notes.join('\n')).toContain('PostgreSQL scenario skipped');
    expect(results.figures).toEqual([]);
  });

  it('is skipped when the script is missing', async () => {
    process.env.STREAMKEEP_BENCH_PG_SCRIPT = join(tmpdir(), 'sk-bench-no-such-dir', 'cluster.sh');
    const results = new Results();
    await postgresScenarios(configFor('smoke'), results, new Progress(1, true), { longPollTimeoutMs: 1_000 });
    expect(results.postgres?.skipped).toContain('is missing');
  });
});
