import { StorageError } from '../errors.js';
import { compareOffsets, type Offset, parseOffset } from '../offsets.js';
import type { ForkInfo, ForkOptions, StreamConfig } from '../types.js';
import { notFound } from './access.js';
import { createMatchesExisting, isExpired, resolveForkConfig } from './config.js';
import { isJsonContentType } from './content-type.js';

/** What the lifecycle rules read of a stream that holds a name. Backends pass a view of their own entry or row. */
export interface LifecycleView {
  readonly config: StreamConfig;
  readonly closed: boolean;
  readonly tombstone: boolean;
  /** How many forks reference this stream as their source. */
  readonly refCount: number;
  readonly fork: ForkInfo | null;
}

/**
 * What a create or fork does with its name: `free` (nothing holds it: create), `replace` (an expired stream no fork
 * references holds it: create, and remove the expired stream in the same atomic step, once the create is known to
 * succeed — its bytes count as released for the limits, see `checkCreateLimits`), `existing` (an equal stream holds
 * it: answer `created: false` with its tail and closure, write nothing).
 */
export type NameClaim = 'free' | 'replace' | 'existing';

/**
 * Decides a create's or fork's name against the stream that holds it, if any: a tombstone, or an expired stream that
 * forks still reference, blocks the name; a live stream must be equal — same config and current closure
 * ({@link createMatchesExisting}) and the same lineage (`null` for `createStream`: a plain create never matches a
 * fork, and a fork matches only a fork of the same source, offset and sub-offset).
 *
 * @throws StorageError `PATH_BLOCKED`, `CONFIG_MISMATCH`.
 */
export function planNameClaim(
  name: string,
  existing: LifecycleView | undefined,
  requested: { readonly config: StreamConfig; readonly fork: ForkInfo | null },
  now: number,
): NameClaim {
  if (existing === undefined) return 'free';
  if (existing.tombstone) {
    throw new StorageError(
      'PATH_BLOCKED',
      `stream ${JSON.stringify(name)} is reserved by forks of a deleted stream`,
    );
  }
  if (isExpired(existing.config, now)) {
    if (existing.refCount > 0) {
      throw new StorageError(
        'PATH_BLOCKED',
        `expired stream ${JSON.stringify(name)} is still referenced by forks`,
      );
    }
    return 'replace';
  }
  if (!sameLineage(existing.fork, requested.fork) || !createMatchesExisting(existing, requested.config)) {
    throw new StorageError(
      'CONFIG_MISMATCH',
      `stream ${JSON.stringify(name)} exists with a different configuration`,
    );
  }
  return 'existing';
}

/** Two lineages are the same when both are root streams, or forks of one source at equal offsets and sub-offsets. */
export function sameLineage(a: ForkInfo | null, b: ForkInfo | null): boolean {
  if (a === null || b === null) return a === b;
  return a.source === b.source && compareOffsets(a.offset, b.offset) === 0 && a.subOffset === b.subOffset;
}

/** What the fork rules read of the source stream. */
export interface ForkSourceView {
  readonly config: StreamConfig;
  readonly tombstone: boolean;
  /** The source's tail. */
  readonly nextOffset: Offset;
}

/** A fork decided against its source, before its name is claimed. */
export interface ForkPlan {
  /** The lineage to store: source, concrete fork offset, sub-offset. */
  readonly fork: ForkInfo;
  /** The fork's resolved config. */
  readonly config: StreamConfig;
  /** Where the fork's own messages start: the fork offset's parts. */
  readonly baseSeq: number;
  readonly baseBytes: number;
  /**
   * How many of the source's messages after the fork offset the sub-offset prefix needs (`0`: none): read at most
   * this many (through the source's lineage) and pass them to {@link forkPrefix}.
   */
  readonly prefixMessages: number;
}

/**
 * Runs the fork rules that need the source, in the contract's order: missing → `NOT_FOUND`; tombstoned →
 * `FORK_FROM_TOMBSTONE`; expired → `EXPIRED`; fork offset (default: the source's tail) beyond the source's tail →
 * `FORK_OFFSET_BEYOND_TAIL`; then the config ({@link resolveForkConfig}: `CONTENT_TYPE_MISMATCH`). `requested` is
 * what `validateCreateFork` returned.
 *
 * @throws StorageError the codes above.
 */
export function planFork(
  options: ForkOptions,
  requested: { readonly offset: Offset | undefined; readonly subOffset: number },
  source: ForkSourceView | undefined,
  now: number,
): ForkPlan {
  if (source === undefined) notFound(options.source);
  if (source.tombstone) {
    throw new StorageError(
      'FORK_FROM_TOMBSTONE',
      `cannot fork deleted stream ${JSON.stringify(options.source)}`,
    );
  }
  if (isExpired(source.config, now)) {
    throw new StorageError('EXPIRED', `stream ${JSON.stringify(options.source)} has expired`);
  }
  const offset = requested.offset ?? source.nextOffset;
  if (compareOffsets(offset, source.nextOffset) > 0) {
    throw new StorageError(
      'FORK_OFFSET_BEYOND_TAIL',
      `fork offset ${offset} lies beyond the source tail ${source.nextOffset}`,
    );
  }
  const config = resolveForkConfig(options, source.config, now);
  // `validateCreateFork` turned `-1` into (0, 0) and `now` stays beyond every tail, so `offset` is concrete here.
  const position = parseOffset(offset);
  const [baseSeq, baseBytes] =
    position.kind === 'position' ? [position.readSeq, position.byteOffset] : [0, 0];
  const { subOffset } = requested;
  const prefixMessages = subOffset === 0 ? 0 : isJsonContentType(config.contentType) ? subOffset : 1;
  return { fork: { source: options.source, offset, subOffset }, config, baseSeq, baseBytes, prefixMessages };
}

/**
 * The local messages a fork starts with from its sub-offset: for `application/json`, the first `subOffset` whole
 * messages after the fork point; for every other type, the first `subOffset` bytes of the first message after it.
 * `after` holds (at least) the {@link ForkPlan.prefixMessages} messages that follow the fork offset.
 *
 * @throws StorageError `FORK_SUB_OFFSET_OUT_OF_RANGE` when not enough data follows.
 */
export function forkPrefix(plan: ForkPlan, after: readonly Uint8Array[]): Uint8Array[] {
  const { subOffset } = plan.fork;
  if (subOffset === 0) return [];
  const outOfRange = () =>
    new StorageError(
      'FORK_SUB_OFFSET_OUT_OF_RANGE',
      `sub-offset ${subOffset} exceeds the data after the fork offset`,
    );
  if (isJsonContentType(plan.config.contentType)) {
    if (after.length < subOffset) throw outOfRange();
    return after.slice(0, subOffset);
  }
  const first = after[0];
  if (first === undefined || first.byteLength < subOffset) throw outOfRange();
  // A copy: `after` may be views into a backend's buffers (for a Node Buffer, `slice` would be one too).
  return [new Uint8Array(first.subarray(0, subOffset))];
}

/** What removing a stream means: a `tombstone` while forks reference it, else `remove` (with its data). */
export type Removal = 'tombstone' | 'remove';

/**
 * The delete rule: missing → `NOT_FOUND`, already a tombstone → `GONE`; otherwise a tombstone while forks reference
 * the stream, a removal if not. Expiry is not checked.
 *
 * @throws StorageError `NOT_FOUND`, `GONE`.
 */
export function planDelete(
  name: string,
  entry: Pick<LifecycleView, 'tombstone' | 'refCount'> | undefined,
): Removal {
  if (entry === undefined) notFound(name);
  if (entry.tombstone) throw new StorageError('GONE', `stream ${JSON.stringify(name)} was deleted`);
  return entry.refCount > 0 ? 'tombstone' : 'remove';
}

/**
 * The expiry sweep's rule for one stream: `undefined` to keep it (not expired, or already a tombstone), else what
 * `delete` would do. Each stream so removed or tombstoned counts once in `cleanupExpiredStreams`'s result.
 */
export function planExpiry(
  entry: Pick<LifecycleView, 'config' | 'tombstone' | 'refCount'>,
  now: number,
): Removal | undefined {
  if (entry.tombstone || !isExpired(entry.config, now)) return undefined;
  return entry.refCount > 0 ? 'tombstone' : 'remove';
}

/**
 * The lineage clean-up after a fork is removed: its source loses one reference, and is removed in turn when it is a
 * tombstone left without references (then the same applies to *its* source, and so on up the lineage).
 */
export function afterForkRemoved(source: Pick<LifecycleView, 'tombstone' | 'refCount'>): {
  readonly refCount: number;
  readonly remove: boolean;
} {
  const refCount = Math.max(0, source.refCount - 1);
  return { refCount, remove: orphanedTombstone({ tombstone: source.tombstone, refCount }) };
}

/**
 * True for a tombstone no fork references any more: it is removed (the lineage clean-up of a delete, and what a
 * backend finishes after a crash interrupted one).
 */
export function orphanedTombstone(entry: Pick<LifecycleView, 'tombstone' | 'refCount'>): boolean {
  return entry.tombstone && entry.refCount === 0;
}
