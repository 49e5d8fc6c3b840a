import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

const SCRIPT = fileURLToPath(new URL('../../../scripts/postgres/cluster.sh', import.meta.url));

declare module 'vitest' {
  export interface ProvidedContext {
    /** Connection URL of the PostgreSQL server the tests use. */
    pgUrl: string;
  }
}

/**
 * Provides `pgUrl` to the tests: `STREAMKEEP_PG_URL` when set (an existing server; each test uses its own schemas),
 * otherwise a throwaway cluster started by the repository's script and removed afterwards.
 */
export default function setup(project: TestProject): () => void {
  const external = process.env.STREAMKEEP_PG_URL;
  if (external !== undefined && external !== '') {
    project.provide('pgUrl', external);
    return () => {};
  }
  const out = execFileSync('bash', [SCRIPT, 'start'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 15 * 60_000,
  });
  const field = (key: string) => {
    const line = out.split('\n').find((l) => l.startsWith(`${key}=`));
    if (line === undefined) throw new Error(`cluster.sh start printed no ${key}= line:\n${out}`);
    return line.slice(key.length + 1);
  };
  const dir = field('dir');
  project.provide('pgUrl', field('url'));
  return () => {
    execFileSync('bash', [SCRIPT, 'stop', dir], { stdio: 'inherit' });
  };
}
