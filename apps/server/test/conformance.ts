import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { supportsSubscriptions } from '@streamkeep/storage';
import { pino } from 'pino';
import { afterAll, beforeAll, describe } from 'vitest';
import { openStorage } from '../src/server.js';
import { DEFAULT_SERVER_CONFIG, type ServerConfig } from '../src/settings/index.js';
import { type Backend, startTestServer } from './helpers.js';

/**
 * Registers the official suite (@durable-streams/server-conformance-tests, pinned) against a server on `backend`.
 * The options object starts without a URL: the suite reads `baseUrl` lazily, and `beforeAll` fills it in.
 * `setup` runs first and returns server settings (the postgres backend's URL); `teardown` runs after the server stops,
 * even when `setup` or the server failed.
 *
 * The suite's subscription tests (protocol §6–7) run when the backend declares the `subscriptions` capability: the
 * suite decides what to register when it is called, so the backend is opened once during collection (vitest awaits an
 * async `describe`) to read its capabilities, and closed again.
 */
export function describeConformance(
  backend: Backend,
  hooks: { setup?: () => Promise<Partial<ServerConfig>>; teardown?: () => Promise<void> } = {},
): void {
  describe(`official conformance suite on the ${backend} backend`, async () => {
    let settings: Partial<ServerConfig> = {};
    let setupError: unknown;
    let subscriptions = false;
    try {
      settings = (await hooks.setup?.()) ?? {};
      subscriptions = await declaresSubscriptions(backend, settings);
    } catch (err) {
      setupError = err;
    }
    const options = { baseUrl: '', longPollTimeoutMs: 500, subscriptions };
    let stop: (() => Promise<void>) | undefined;
    beforeAll(async () => {
      if (setupError !== undefined) throw setupError;
      const server = await startTestServer(backend, { ...settings, longPollTimeoutMs: 500 });
      stop = server.stop;
      await server.storage;
      options.baseUrl = server.url;
    }, 300_000);
    afterAll(async () => {
      try {
        await stop?.();
      } finally {
        await hooks.teardown?.();
      }
    }, 60_000);
    runConformanceTests(options);
  });
}

/** Opens the backend as the server would (a scratch directory for the file backend) and reads its capability. */
async function declaresSubscriptions(backend: Backend, settings: Partial<ServerConfig>): Promise<boolean> {
  const dataDir = backend === 'file' ? await mkdtemp(join(tmpdir(), 'streamkeep-probe-')) : './unused';
  try {
    const storage = await openStorage(
      { ...DEFAULT_SERVER_CONFIG, storage: backend, dataDir, syncOnAppend: false, ...settings },
      pino({ level: 'silent' }),
    );
    try {
      return supportsSubscriptions(storage);
    } finally {
      await storage.close();
    }
  } finally {
    if (backend === 'file') await rm(dataDir, { recursive: true, force: true });
  }
}
