import { isStorageError, type StorageCapabilities, type StreamConfig } from '../src/index.js';

/** What `fn` throws: a StorageError's code, the class name of a plain error, or `undefined` when it returns. */
export function outcomeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (isStorageError(err)) return err.code;
    if (err instanceof Error) return err.constructor.name;
    throw err;
  }
}

export const ALL_CAPABILITIES: StorageCapabilities = {
  durable: true,
  forks: true,
  expiry: true,
  producers: true,
  listStreams: true,
  byteLimits: true,
  multiInstance: true,
};

export const NO_CAPABILITIES: StorageCapabilities = {
  durable: false,
  forks: false,
  expiry: false,
  producers: false,
  listStreams: false,
  byteLimits: false,
  multiInstance: false,
};

export const textConfig: StreamConfig = {
  contentType: 'text/plain',
  ttlSeconds: null,
  expiresAt: null,
  createdClosed: false,
};
