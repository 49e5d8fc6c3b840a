import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Storage } from '@streamkeep/storage';
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { type RunningServer, startServer } from '../src/server.js';
import { DEFAULT_SERVER_CONFIG, parseServerConfig, type ServerConfig } from '../src/settings/index.js';

/** `postgres` needs `postgresUrl` (and usually a fresh `postgresSchema`) in the overrides. */
export type Backend = 'memory' | 'file' | 'postgres';

/** A server on a free port over a fresh backend (a temporary directory for the file backend). */
export async function startTestServer(
  backend: Backend,
  overrides: Partial<ServerConfig> = {},
  storage?: Storage | Promise<Storage>,
  logger?: Logger,
): Promise<RunningServer & { dataDir: string | undefined; stop(): Promise<void> }> {
  const dataDir =
    overrides.dataDir ??
    (backend === 'file' ? await mkdtemp(join(tmpdir(), 'streamkeep-server-')) : undefined);
  const running = await startServer(
    {
      ...DEFAULT_SERVER_CONFIG,
      port: 0,
      storage: backend,
      dataDir: dataDir ?? './unused',
      syncOnAppend: false,
      longPollTimeoutMs: 500,
      shutdownTimeoutMs: 2_000,
      ...overrides,
    },
    { ...(storage === undefined ? {} : { storage }), ...(logger === undefined ? {} : { logger }) },
  );
  return {
    ...running,
    dataDir,
    async stop() {
      await running.close();
      if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Compiles the `streamkeep` binary into `outDir` (inside the package, so that its dependencies resolve) and returns
 * the path of `main.js`. A private directory per test file, so that no test races the package's own build.
 */
export function compileCli(outDir: string): string {
  const pkgDir = resolve(import.meta.dirname, '..');
  const tsc = join(pkgDir, 'node_modules', 'typescript', 'bin', 'tsc');
  const args = [
    '-p',
    'tsconfig.build.json',
    '--outDir',
    outDir,
    '--declaration',
    'false',
    '--declarationMap',
    'false',
  ];
  spawnSync(process.execPath, [tsc, ...args], { cwd: pkgDir, stdio: 'ignore' });
  const bin = join(outDir, 'main.js');
  if (!existsSync(bin)) throw new Error('could not compile the CLI');
  return bin;
}

/**
 * {@link parseServerConfig} with `env` as the whole environment (commander reads `process.env`, so it is swapped for
 * the synchronous parse).
 */
export function parseConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = {},
  configure?: (cmd: Command) => void,
): ServerConfig {
  const saved = process.env;
  process.env = { ...env };
  try {
    return parseServerConfig(argv, configure);
  } finally {
    process.env = saved;
  }
}
