#!/usr/bin/env node
// Regenerates the catch matrix in README.md: runs the kit's mutant suite (test/teeth.test.ts), which writes the
// table between the catch-matrix markers when STREAMKEEP_WRITE_CATCH_MATRIX=1. Fails, like the test, when a mutant
// survives a seed. Usage (from packages/storage-conformance): node scripts/catch-matrix.mjs
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const result = spawnSync('npx', ['vitest', 'run', 'test/teeth.test.ts'], {
  cwd,
  stdio: 'inherit',
  env: { ...process.env, STREAMKEEP_WRITE_CATCH_MATRIX: '1' },
});
process.exit(result.status ?? 1);
