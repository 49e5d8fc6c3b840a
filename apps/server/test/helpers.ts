import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Storage } from '@streamkeep/storage';
import { DEFAULT_SERVER_CONFIG, type ServerConfig } from '../src/config.js';
import { type RunningServer, startServer } from '../src/server.js';

/** `postgres` needs `postgresUrl` (and usually a fresh `postgresSchema`) in the overrides. */
export type Backend = 'memory' | 'file' | 'postgres';

/** A server on a free port over a fresh backend (a temporary directory for the file backend). */
export async function startTestServer(
  backend: Backend,
  overrides: Partial<ServerConfig> = {},
  storage?: Storage | Promise<Storage>,
): Promise<RunningServer & { dataDir: string | undefined; stop(): Promise<void> }> {
  const dataDir = backend === 'file' ? await mkdtemp(join(tmpdir(), 'streamkeep-server-')) : undefined;
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
    storage === undefined ? {} : { storage },
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
