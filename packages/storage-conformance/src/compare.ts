import { isDeepStrictEqual } from 'node:util';
import {
  type AppendResult,
  type CreateStreamResult,
  isStorageError,
  type ProducerAppendResult,
  type ReadResult,
  type StreamMetadata,
} from '@streamkeep/storage';
import type { Outcome } from './model.js';

// Results are projected onto the contract's fields before comparing, so a backend may return richer objects, and
// payloads become hex strings so that failure messages stay readable.

export function hex(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex');
}

export function formatMessages(messages: readonly Uint8Array[]): string {
  return `[${messages.map((m) => (m.byteLength === 0 ? '""' : hex(m))).join(',')}]`;
}

export const project = {
  create: (r: CreateStreamResult) => ({ created: r.created, nextOffset: r.nextOffset, closed: r.closed }),
  append: (r: AppendResult) => ({ startOffset: r.startOffset, nextOffset: r.nextOffset, closed: r.closed }),
  producer: (r: ProducerAppendResult) => ({
    startOffset: r.startOffset,
    nextOffset: r.nextOffset,
    closed: r.closed,
    duplicate: r.duplicate,
    epoch: r.epoch,
    seq: r.seq,
  }),
  read: (r: ReadResult) => ({
    messages: r.messages.map(hex),
    nextOffset: r.nextOffset,
    upToDate: r.upToDate,
    closed: r.closed,
  }),
  metadata: (m: StreamMetadata) => ({
    name: m.name,
    config: {
      contentType: m.config.contentType,
      ttlSeconds: m.config.ttlSeconds,
      expiresAt: m.config.expiresAt,
      createdClosed: m.config.createdClosed,
    },
    nextOffset: m.nextOffset,
    closed: m.closed,
    totalBytes: m.totalBytes,
    messageCount: m.messageCount,
    createdAt: m.createdAt,
    updatedAt: m.updatedAt,
    lastSeq: m.lastSeq,
    fork:
      m.fork === null ? null : { source: m.fork.source, offset: m.fork.offset, subOffset: m.fork.subOffset },
  }),
  list: (l: readonly StreamMetadata[]) => l.map(project.metadata),
  delete: (r: { softDeleted: boolean }) => ({ softDeleted: r.softDeleted }),
  identity: <T>(v: T) => v,
};

/** Runs a backend call and turns a `StorageError` into an outcome; any other exception is a conformance failure. */
export async function capture<T, P>(call: () => Promise<T>, projection: (v: T) => P): Promise<Outcome<P>> {
  let value: T;
  try {
    value = await call();
  } catch (err) {
    if (isStorageError(err)) return { ok: false, code: err.code };
    throw new Error(`expected a result or a StorageError, got ${String(err)}`, { cause: err });
  }
  return { ok: true, value: projection(value) };
}

function show(outcome: Outcome<unknown>): string {
  return outcome.ok ? JSON.stringify(outcome.value) : `rejects ${outcome.code}`;
}

/** A disagreement between the backend and the model or a law. Its message names the command and both outcomes. */
export class ConformanceError extends Error {
  override readonly name = 'ConformanceError';
}

/** Throws a {@link ConformanceError} unless both outcomes agree (same value, or same error code). */
export function assertSameOutcome<T>(label: string, expected: Outcome<T>, actual: Outcome<unknown>): void {
  const same = expected.ok
    ? actual.ok && isDeepStrictEqual(actual.value, expected.value)
    : !actual.ok && actual.code === expected.code;
  if (!same) {
    throw new ConformanceError(`${label}\n  expected: ${show(expected)}\n  actual:   ${show(actual)}`);
  }
}

/** Throws a {@link ConformanceError} with `message` unless `condition` holds. */
export function ensure(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new ConformanceError(typeof message === 'string' ? message : message());
}

/** Expects `call` to reject with a `StorageError` of `code`. */
export async function expectCode(label: string, code: string, call: () => Promise<unknown>): Promise<void> {
  const outcome = await capture(call, (v) => v);
  ensure(
    !outcome.ok && outcome.code === code,
    () => `${label}: expected rejection ${code}, got ${show(outcome)}`,
  );
}
