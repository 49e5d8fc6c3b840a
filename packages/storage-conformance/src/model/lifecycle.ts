import {
  type CreateStreamOptions,
  type CreateStreamResult,
  type DeleteResult,
  type ForkOptions,
  formatOffset,
  parseOffset,
  type StreamConfig,
} from '@streamkeep/storage';
import { contentTypeOf, fail, identityOf, type ModelState, sameConfig, sizeOf } from './state.js';

// The model's stream lifecycle: create, fork (inherited prefix, config inheritance, name claims), delete (soft while
// forks reference the stream) and the expiry sweep. Each function runs inside `ModelState.run` and changes the state
// only once every check has passed.

export function createStream(
  state: ModelState,
  name: string,
  options: CreateStreamOptions,
): CreateStreamResult {
  const now = state.now();
  const contentType = contentTypeOf(options.contentType);
  if (options.ttlSeconds !== undefined && options.expiresAt !== undefined) fail('CONFLICTING_EXPIRY');
  if (
    state.capabilities?.expiry === false &&
    (options.ttlSeconds !== undefined || options.expiresAt !== undefined)
  ) {
    fail('NOT_SUPPORTED');
  }
  const config: StreamConfig = {
    contentType,
    ttlSeconds: options.ttlSeconds ?? null,
    expiresAt:
      options.ttlSeconds !== undefined ? now + options.ttlSeconds * 1000 : (options.expiresAt ?? null),
    createdClosed: options.closed === true,
  };
  const existing = state.existing(name);
  if (existing.kind === 'live') {
    const s = existing.s;
    // A root create matches only an existing root stream with an equal config: an existing fork has a lineage
    // the create does not ask for, so it is a mismatch whatever its config.
    if (s.fork !== null || !sameConfig(identityOf(s), config)) fail('CONFIG_MISMATCH');
    return { created: false, nextOffset: state.tail(s), closed: s.closed };
  }
  const messages = options.messages ?? [];
  const released = existing.kind === 'replace' ? existing.old.localBytes : 0;
  state.checkLimits(sizeOf(messages), state.totalBytes() - released, 0);
  if (existing.kind === 'replace') state.remove(existing.old);
  const s = state.newStream(name, config, 0, 0, null);
  state.push(s, messages);
  return { created: true, nextOffset: state.tail(s), closed: s.closed };
}

export function createFork(state: ModelState, name: string, options: ForkOptions): CreateStreamResult {
  const now = state.now();
  if (state.capabilities?.forks === false) fail('NOT_SUPPORTED');
  if (options.ttlSeconds !== undefined && options.expiresAt !== undefined) fail('CONFLICTING_EXPIRY');
  const source = state.streams.get(options.source);
  if (source === undefined) fail('NOT_FOUND');
  if (source.tombstone) fail('FORK_FROM_TOMBSTONE');
  if (state.expired(source)) fail('EXPIRED');
  const sourceTail = state.tail(source);
  let offset: string;
  if (options.offset === undefined) offset = sourceTail;
  else {
    const parsed = parseOffset(options.offset);
    offset =
      parsed.kind === 'start'
        ? formatOffset(0, 0)
        : parsed.kind === 'now'
          ? 'now'
          : formatOffset(parsed.readSeq, parsed.byteOffset);
  }
  if (offset > sourceTail) fail('FORK_OFFSET_BEYOND_TAIL');
  if (options.contentType !== undefined) {
    const actual = contentTypeOf(options.contentType);
    if (actual !== source.contentType)
      fail('CONTENT_TYPE_MISMATCH', { expected: source.contentType, actual });
  }
  const subOffset = options.subOffset ?? 0;
  const prefix: Uint8Array[] = [];
  if (subOffset > 0) {
    const after = state.logical(source).filter((m) => m.offset >= offset);
    if (source.contentType === 'application/json') {
      if (after.length < subOffset) fail('FORK_SUB_OFFSET_OUT_OF_RANGE');
      for (const m of after.slice(0, subOffset)) prefix.push(m.data);
    } else {
      const first = after[0];
      if (first === undefined || first.data.byteLength < subOffset) fail('FORK_SUB_OFFSET_OUT_OF_RANGE');
      prefix.push(first.data.slice(0, subOffset));
    }
  }
  let ttlSeconds: number | null = null;
  let expiresAt: number | null = null;
  if (options.ttlSeconds !== undefined) {
    ttlSeconds = options.ttlSeconds;
    expiresAt = now + options.ttlSeconds * 1000;
  } else if (options.expiresAt !== undefined) expiresAt = options.expiresAt;
  else if (source.ttlSeconds !== null) {
    ttlSeconds = source.ttlSeconds;
    expiresAt = now + source.ttlSeconds * 1000;
  } else expiresAt = source.expiresAt;
  const config: StreamConfig = {
    contentType: source.contentType,
    ttlSeconds,
    expiresAt,
    createdClosed: options.closed === true,
  };
  const existing = state.existing(name);
  if (existing.kind === 'live') {
    const s = existing.s;
    const sameLineage =
      s.fork !== null &&
      s.fork.source === options.source &&
      s.fork.offset === offset &&
      s.fork.subOffset === subOffset;
    if (!sameLineage || !sameConfig(identityOf(s), config)) fail('CONFIG_MISMATCH');
    return { created: false, nextOffset: state.tail(s), closed: s.closed };
  }
  const local = [...prefix, ...(options.messages ?? [])];
  const released = existing.kind === 'replace' ? existing.old.localBytes : 0;
  state.checkLimits(sizeOf(local), state.totalBytes() - released, 0);
  if (existing.kind === 'replace') state.remove(existing.old);
  const at = parseOffset(offset);
  if (at.kind !== 'position') throw new Error('unreachable: a fork offset is concrete');
  const s = state.newStream(name, config, at.readSeq, at.byteOffset, {
    source: options.source,
    offset,
    subOffset,
  });
  state.push(s, local);
  // The replaced entry may have been a fork of the same source; the new reference is taken afterwards.
  const stillSource = state.streams.get(options.source);
  if (stillSource !== undefined) stillSource.refCount += 1;
  return { created: true, nextOffset: state.tail(s), closed: s.closed };
}

export function deleteStream(state: ModelState, name: string): DeleteResult {
  const s = state.streams.get(name);
  if (s === undefined) fail('NOT_FOUND');
  if (s.tombstone) fail('GONE');
  if (s.refCount > 0) {
    s.tombstone = true;
    return { softDeleted: true };
  }
  state.remove(s);
  return { softDeleted: false };
}

/** Removes every expired stream, or turns it into a tombstone while forks reference it; returns how many. */
export function cleanupExpiredStreams(state: ModelState): number {
  const due = [...state.streams.values()].filter((s) => !s.tombstone && state.expired(s));
  let count = 0;
  for (const s of due) {
    if (state.streams.get(s.name) !== s) continue;
    count += 1;
    if (s.refCount > 0) s.tombstone = true;
    else state.remove(s);
  }
  return count;
}
