import { StorageError } from '@streamkeep/storage';
import type { Database } from './database.js';

// Named secrets shared by every instance over one schema (the server's signing key): created once, by whichever
// instance asks first, and never changed. Names and values are stored as JSON string literals, exact for every
// JavaScript string (NUL and lone surrogates included), as `Stream-Seq` values and producer ids are.

function decode(name: string, text: string): string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (typeof value !== 'string') {
    throw new StorageError('CORRUPTED', `stored secret ${JSON.stringify(name)} is not a JSON string`);
  }
  return value;
}

/**
 * The secret stored under `name`; when there is none, `create()`'s value, stored. Instances racing to create the same
 * name each call `create`, and the first INSERT wins: every caller resolves with that one value.
 *
 * @throws TypeError for a `name` that is not a non-empty string, a `create` that is not a function or that returns
 *   something other than a string; whatever `create` throws.
 */
export async function loadOrCreateSecret(db: Database, name: string, create: () => string): Promise<string> {
  if (typeof name !== 'string' || name.length === 0) {
    throw new TypeError(`name must be a non-empty string, got ${JSON.stringify(name) ?? typeof name}`);
  }
  if (typeof create !== 'function') throw new TypeError('create must be a function');
  const key = JSON.stringify(name);
  const select = `SELECT value FROM ${db.s}.secrets WHERE name = $1`;
  const [found] = await db.queryOnce<{ value: string }>(select, [key]);
  if (found !== undefined) return decode(name, found.value);
  const value = create();
  if (typeof value !== 'string') throw new TypeError(`create() must return a string, got ${typeof value}`);
  const [inserted] = await db.queryOnce<{ value: string }>(
    `INSERT INTO ${db.s}.secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value`,
    [key, JSON.stringify(value)],
  );
  if (inserted !== undefined) return value;
  // Another instance inserted first. Its row is committed (ON CONFLICT waited for it), and this new statement's
  // snapshot sees it.
  const [winner] = await db.queryOnce<{ value: string }>(select, [key]);
  if (winner === undefined) {
    throw new StorageError('INTERNAL', `secret ${JSON.stringify(name)} was created and then removed`);
  }
  return decode(name, winner.value);
}
