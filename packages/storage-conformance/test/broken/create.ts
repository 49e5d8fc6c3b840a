import type { StorageHarness } from '../../src/index.js';
import { harnessOf, recovering } from './harness.js';

// Mutants of createStream and createFork: closure, config matching, initial messages, TTLs, fork offsets and content
// types.

/** `closed: true` on a create is ignored: the stream starts open. */
export const createIgnoresClosed: StorageHarness = harnessOf((inner) => ({
  createStream: (n, o) => inner.createStream(n, { ...o, closed: false }),
}));

/** A re-create with a different config is answered as idempotent instead of `CONFIG_MISMATCH`. */
export const createMismatchAccepted: StorageHarness = harnessOf((inner) => ({
  createStream: (n, o) =>
    recovering(
      () => inner.createStream(n, o),
      'CONFIG_MISMATCH',
      async () => {
        const h = await inner.head(n);
        return { created: false, nextOffset: h.nextOffset, closed: h.closed };
      },
    ),
}));

/** Only the first initial message of a create is stored. */
export const createKeepsFirstMessageOnly: StorageHarness = harnessOf((inner) => ({
  createStream: (n, o) => inner.createStream(n, { ...o, messages: o.messages?.slice(0, 1) }),
}));

/** A sliding TTL is stored as a fixed deadline (never renewed, and `ttlSeconds` lost). */
export const ttlStoredAsDeadline: StorageHarness = harnessOf((inner, { clock }) => ({
  createStream: (n, o) =>
    o.ttlSeconds === undefined || o.expiresAt !== undefined
      ? inner.createStream(n, o)
      : inner.createStream(n, { ...o, ttlSeconds: undefined, expiresAt: clock.now() + o.ttlSeconds * 1000 }),
}));

/** The fork offset is ignored: every fork branches at the source's tail. */
export const forkIgnoresOffset: StorageHarness = harnessOf((inner) => ({
  createFork: (n, o) => inner.createFork(n, { ...o, offset: undefined }),
}));

/** The fork's sub-offset is ignored. */
export const forkIgnoresSubOffset: StorageHarness = harnessOf((inner) => ({
  createFork: (n, o) => inner.createFork(n, { ...o, subOffset: 0 }),
}));

/** A fork's explicit content type is never compared with the source's. */
export const forkContentTypeUnchecked: StorageHarness = harnessOf((inner) => ({
  createFork: (n, o) => inner.createFork(n, { ...o, contentType: undefined }),
}));
