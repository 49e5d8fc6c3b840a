import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { afterAll, beforeAll, describe } from 'vitest';
import type { ServerConfig } from '../src/settings/index.js';
import { type Backend, startTestServer } from './helpers.js';

/**
 * Registers the official suite (@durable-streams/server-conformance-tests, pinned) against a server on `backend`.
 * The options object starts without a URL: the suite reads `baseUrl` lazily, and `beforeAll` fills it in.
 * `setup` runs first and returns server settings (the postgres backend's URL); `teardown` runs after the server stops,
 * even when `setup` or the server failed.
 */
export function describeConformance(
  backend: Backend,
  hooks: { setup?: () => Promise<Partial<ServerConfig>>; teardown?: () => Promise<void> } = {},
): void {
  describe(`official conformance suite on the ${backend} backend`, () => {
    const options = { baseUrl: '', longPollTimeoutMs: 500, subscriptions: false };
    let stop: (() => Promise<void>) | undefined;
    beforeAll(async () => {
      const settings = (await hooks.setup?.()) ?? {};
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
