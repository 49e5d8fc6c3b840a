import { StorageError } from '../errors.js';
import { isValidOffset } from '../offsets.js';
import { compareUtf8 } from '../rules/names.js';
import type {
  SubscriptionConfig,
  SubscriptionMember,
  SubscriptionRecord,
  SubscriptionTail,
  SubscriptionWakeState,
} from './types.js';

// Records are plain JSON; a durable backend stores `JSON.stringify(record)` (or columns holding the same values) and
// decodes what it reads back with `parseSubscriptionRecord`, so that damaged state is refused, never served.

class Bad extends Error {}

function fail(where: string): never {
  throw new Bad(where);
}

function obj(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where);
  return v as Record<string, unknown>;
}

function str(v: unknown, where: string): string {
  return typeof v === 'string' ? v : fail(where);
}

function strOrNull(v: unknown, where: string): string | null {
  return v === null ? null : str(v, where);
}

function int(v: unknown, where: string): number {
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : fail(where);
}

function num(v: unknown, where: string): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fail(where);
}

function offset(v: unknown, where: string): string {
  const s = str(v, where);
  return isValidOffset(s) ? s : fail(where);
}

function sortedByPath<T extends { readonly path: string }>(items: T[], where: string): T[] {
  for (let i = 1; i < items.length; i++) {
    if (compareUtf8(items[i - 1]!.path, items[i]!.path) >= 0) fail(where);
  }
  return items;
}

function tails(v: unknown, where: string): SubscriptionTail[] {
  if (!Array.isArray(v)) fail(where);
  return sortedByPath(
    v.map((t, i) => {
      const o = obj(t, `${where}[${i}]`);
      return { path: str(o.path, `${where}[${i}].path`), offset: offset(o.offset, `${where}[${i}].offset`) };
    }),
    where,
  );
}

function config(v: unknown): SubscriptionConfig {
  const o = obj(v, 'config');
  const type = o.type === 'webhook' || o.type === 'pull-wake' ? o.type : fail('config.type');
  if (!Array.isArray(o.streams)) fail('config.streams');
  return {
    type,
    pattern: strOrNull(o.pattern, 'config.pattern'),
    streams: o.streams.map((s, i) => str(s, `config.streams[${i}]`)),
    webhookUrl: strOrNull(o.webhookUrl, 'config.webhookUrl'),
    wakeStream: strOrNull(o.wakeStream, 'config.wakeStream'),
    leaseTtlMs: int(o.leaseTtlMs, 'config.leaseTtlMs'),
    description: strOrNull(o.description, 'config.description'),
  };
}

function members(v: unknown): SubscriptionMember[] {
  if (!Array.isArray(v)) fail('members');
  return sortedByPath(
    v.map((m, i) => {
      const o = obj(m, `members[${i}]`);
      const explicit = o.explicit === true;
      const glob = o.glob === true;
      if (typeof o.explicit !== 'boolean' || typeof o.glob !== 'boolean' || !(explicit || glob)) {
        fail(`members[${i}] links`);
      }
      return {
        path: str(o.path, `members[${i}].path`),
        explicit,
        glob,
        ackedOffset: offset(o.ackedOffset, `members[${i}].ackedOffset`),
      };
    }),
    'members',
  );
}

function wake(v: unknown): SubscriptionWakeState {
  const o = obj(v, 'wake');
  const generation = int(o.generation, 'wake.generation');
  if (generation < 0) fail('wake.generation');
  const wakeId = strOrNull(o.wakeId, 'wake.wakeId');
  const leaseExpiresAt = o.leaseExpiresAt === null ? null : num(o.leaseExpiresAt, 'wake.leaseExpiresAt');
  if ((wakeId === null) !== (leaseExpiresAt === null)) fail('wake.leaseExpiresAt');
  return {
    generation,
    wakeId,
    holder: strOrNull(o.holder, 'wake.holder'),
    leaseExpiresAt,
    tails: tails(o.tails, 'wake.tails'),
  };
}

/**
 * Decodes a subscription record from parsed JSON (what a durable backend read back), checking every field's type
 * and the record's invariants (members and tails sorted by path, once each; a member linked at least one way;
 * version ≥ 1; a wake id exactly when a lease end is set).
 *
 * @throws StorageError `CORRUPTED` naming the first field that is wrong.
 */
export function parseSubscriptionRecord(value: unknown): SubscriptionRecord {
  try {
    const o = obj(value, 'record');
    const version = int(o.version, 'version');
    if (version < 1) fail('version');
    const status = o.status === 'active' || o.status === 'failed' ? o.status : fail('status');
    return {
      id: str(o.id, 'id'),
      version,
      config: config(o.config),
      createdAt: num(o.createdAt, 'createdAt'),
      status,
      members: members(o.members),
      wake: wake(o.wake),
    };
  } catch (err) {
    if (!(err instanceof Bad)) throw err;
    throw new StorageError('CORRUPTED', `stored subscription record is malformed at ${err.message}`);
  }
}
