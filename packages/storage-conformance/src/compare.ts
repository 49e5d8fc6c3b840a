import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import {
  type AppendResult,
  type CreateStreamResult,
  isStorageError,
  type ProducerAppendResult,
  type ReadResult,
  type StorageErrorCode,
  type StorageErrorDetails,
  type StreamMetadata,
} from '@streamkeep/storage';
import type { Outcome } from './model.js';

// Results are projected onto the contract's fields before comparing, so a backend may return richer objects, and
// payloads become hex strings so that failure messages stay readable.

export function hex(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex');
}

/** A payload as failure messages show it: hex up to 32 bytes, longer ones by size and a digest. */
export function digest(data: Uint8Array): string {
  if (data.byteLength <= 32) return hex(data);
  const sha = createHash('sha256').update(data).digest('hex').slice(0, 16);
  return `<${data.byteLength} B ${sha}>`;
}

export function formatMessages(messages: readonly Uint8Array[]): string {
  return `[${messages.map((m) => (m.byteLength === 0 ? '""' : digest(m))).join(',')}]`;
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
    messages: r.messages.map(digest),
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
    if (isStorageError(err)) return { ok: false, code: err.code, details: err.details };
    throw new Error(`expected a result or a StorageError, got ${String(err)}`, { cause: err });
  }
  return { ok: true, value: projection(value) };
}

/**
 * The `details` the contract documents per code (`StorageErrorDetails`); the server turns them into protocol headers
 * (`Stream-Next-Offset`, `Producer-Epoch`, `Producer-Expected-Seq`, …), so they are compared like results. A backend
 * may add other keys.
 */
export const DOCUMENTED_DETAILS: Readonly<
  Partial<Record<StorageErrorCode, readonly (keyof StorageErrorDetails)[]>>
> = {
  STREAM_CLOSED: ['nextOffset'],
  PRODUCER_SEQ_GAP: ['expectedSeq', 'receivedSeq'],
  PRODUCER_EPOCH_FENCED: ['currentEpoch', 'receivedEpoch'],
  SEQ_CONFLICT: ['lastSeq', 'receivedSeq'],
  CONTENT_TYPE_MISMATCH: ['expected', 'actual'],
};

/** The documented details of a rejection (`{}` for codes without any), in a fixed key order. */
export function documentedDetails(outcome: Outcome<unknown>): Record<string, unknown> {
  if (outcome.ok) return {};
  const out: Record<string, unknown> = {};
  for (const key of DOCUMENTED_DETAILS[outcome.code] ?? []) out[key] = outcome.details?.[key];
  return out;
}

export function show(outcome: Outcome<unknown>): string {
  if (outcome.ok) return JSON.stringify(outcome.value);
  const details = documentedDetails(outcome);
  return Object.keys(details).length === 0
    ? `rejects ${outcome.code}`
    : `rejects ${outcome.code} ${JSON.stringify(details)}`;
}

/** Same value, or same code with the same documented details. */
export function sameOutcome(expected: Outcome<unknown>, actual: Outcome<unknown>): boolean {
  if (expected.ok) return actual.ok && isDeepStrictEqual(actual.value, expected.value);
  return (
    !actual.ok &&
    actual.code === expected.code &&
    isDeepStrictEqual(documentedDetails(actual), documentedDetails(expected))
  );
}

/** A disagreement between the backend and the model or a law. Its message names the command and both outcomes. */
export class ConformanceError extends Error {
  override readonly name = 'ConformanceError';
}

/**
 * Throws a {@link ConformanceError} unless both outcomes agree: the same value, or the same error code with the same
 * documented details.
 */
export function assertSameOutcome<T>(label: string, expected: Outcome<T>, actual: Outcome<unknown>): void {
  if (!sameOutcome(expected, actual)) {
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
