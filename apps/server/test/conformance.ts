import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { afterAll, beforeAll, describe } from 'vitest';
import { type Backend, startTestServer } from './helpers.js';

/**
 * Registers the official suite (@durable-streams/server-conformance-tests, pinned) against a server on `backend`.
 * The options object starts without a URL: the suite reads `baseUrl` lazily, and `beforeAll` fills it in.
 */
export function describeConformance(backend: Backend): void {
  describe(`official conformance suite on the ${backend} backend`, () => {
    const options = { baseUrl: '', longPollTimeoutMs: 500, subscriptions: false };
    let stop: (() => Promise<void>) | undefined;
    beforeAll(async () => {
      const server = await startTestServer(backend, { longPollTimeoutMs: 500 });
      await server.storage;
      options.baseUrl = server.url;
      stop = server.stop;
    });
    afterAll(async () => {
      await stop?.();
    });
    runConformanceTests(options);
  });
}
