import { StorageError } from '../errors.js';

/** Configured byte limits; `Infinity` (the default) means unlimited. */
export interface ByteLimits {
  /** Payload bytes across all streams. */
  readonly maxTotalBytes: number;
  /** Payload bytes stored locally by one stream. */
  readonly maxStreamBytes: number;
}

/** The payload size of a batch. */
export function batchBytes(messages: readonly Uint8Array[]): number {
  let n = 0;
  for (const m of messages) n += m.byteLength;
  return n;
}

/**
 * Checks a commit of `bytes` against the limits, the storage-wide one first.
 *
 * @throws StorageError `STORAGE_LIMIT_EXCEEDED`, then `STREAM_LIMIT_EXCEEDED`.
 */
export function checkByteLimits(
  limits: ByteLimits,
  totalBytes: number,
  streamBytes: number,
  bytes: number,
): void {
  if (bytes === 0) return;
  if (totalBytes + bytes > limits.maxTotalBytes) {
    throw new StorageError(
      'STORAGE_LIMIT_EXCEEDED',
      `storage limit of ${limits.maxTotalBytes} bytes exceeded`,
    );
  }
  if (streamBytes + bytes > limits.maxStreamBytes) {
    throw new StorageError(
      'STREAM_LIMIT_EXCEEDED',
      `stream limit of ${limits.maxStreamBytes} bytes exceeded`,
    );
  }
}

/**
 * Validates and defaults byte limits given as options.
 *
 * @throws RangeError for a limit that is not a non-negative number.
 */
export function resolveByteLimits(options: {
  maxTotalBytes?: number | undefined;
  maxStreamBytes?: number | undefined;
}): ByteLimits {
  const check = (name: string, v: number | undefined): number => {
    if (v === undefined) return Number.POSITIVE_INFINITY;
    if (typeof v !== 'number' || Number.isNaN(v) || v < 0)
      throw new RangeError(`${name} must be a non-negative number`);
    return v;
  };
  return {
    maxTotalBytes: check('maxTotalBytes', options.maxTotalBytes),
    maxStreamBytes: check('maxStreamBytes', options.maxStreamBytes),
  };
}

/**
 * The byte-limit check of a create or fork that replaces an expired stream: the limits are checked as if the
 * replaced stream's bytes were already released (it is removed only when the create succeeds).
 *
 * @throws StorageError `STORAGE_LIMIT_EXCEEDED`, then `STREAM_LIMIT_EXCEEDED`.
 */
export function checkCreateLimits(
  limits: ByteLimits,
  totalBytes: number,
  replacedBytes: number,
  messages: readonly Uint8Array[],
): void {
  checkByteLimits(limits, totalBytes - replacedBytes, 0, batchBytes(messages));
}
