import { StorageError } from '../errors.js';
import type { Offset } from '../offsets.js';
import type { StreamConfig } from '../types.js';
import { isExpired } from './config.js';

/**
 * Applies the access rule to an existing entry: tombstone → `GONE`, expired → `EXPIRED`.
 * (A missing entry is `NOT_FOUND`, which the backend decides before it has a view; see {@link checkFound}.)
 */
export function checkAccess(
  view: { readonly name: string; readonly config: StreamConfig; readonly tombstone: boolean },
  now: number,
): void {
  if (view.tombstone) throw gone(view.name);
  if (isExpired(view.config, now))
    throw new StorageError('EXPIRED', `stream ${JSON.stringify(view.name)} has expired`);
}

/**
 * The whole access rule for a lookup that may have found nothing: missing → `NOT_FOUND`, then {@link checkAccess}.
 * Returns the entry, narrowed, so backends write `const entry = checkFound(name, lookup(name), now)`.
 */
export function checkFound<T extends { readonly config: StreamConfig; readonly tombstone: boolean }>(
  name: string,
  entry: T | undefined,
  now: number,
): T {
  if (entry === undefined) notFound(name);
  checkAccess({ name, config: entry.config, tombstone: entry.tombstone }, now);
  return entry;
}

/** The answer of `exists`: the entry is there, not a tombstone, and not expired. */
export function isVisible(
  entry: { readonly config: StreamConfig; readonly tombstone: boolean } | undefined,
  now: number,
): boolean {
  return entry !== undefined && !entry.tombstone && !isExpired(entry.config, now);
}

/** Throws the `NOT_FOUND` error for `name`. */
export function notFound(name: string): never {
  throw new StorageError('NOT_FOUND', `stream ${JSON.stringify(name)} does not exist`);
}

/** The `GONE` error for a tombstoned `name`. */
export function gone(name: string): StorageError {
  return new StorageError('GONE', `stream ${JSON.stringify(name)} was deleted`);
}

/** The `STREAM_CLOSED` error, carrying the stream's final tail. */
export function streamClosed(nextOffset: Offset): StorageError {
  return new StorageError('STREAM_CLOSED', 'stream is closed', { details: { nextOffset } });
}
