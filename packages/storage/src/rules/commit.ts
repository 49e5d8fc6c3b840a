import { StorageError } from '../errors.js';
import type { Offset } from '../offsets.js';
import type {
  AppendRequest,
  AppendResult,
  ProducerAppendResult,
  ProducerIdentity,
  ProducerState,
  StreamConfig,
} from '../types.js';
import { checkAccess, streamClosed } from './access.js';
import { renewedDeadline } from './config.js';
import { normalizeContentType } from './content-type.js';
import { compareUtf8 } from './names.js';
import { decideProducer, validateProducerIdentity } from './producer.js';

/** The part of a stream's state the commit rules read. Backends pass a view of their own entry. */
export interface StreamStateView {
  readonly name: string;
  readonly config: StreamConfig;
  readonly closed: boolean;
  readonly tombstone: boolean;
  readonly lastSeq: string | null;
  /** Current tail, for `STREAM_CLOSED` details. */
  readonly nextOffset: Offset;
  /** The stored producer entries (at least the committing producer's), for producer appends. */
  readonly producers?: ReadonlyMap<string, ProducerState> | undefined;
}

/** An append, close or producer append as the commit rules see it. */
export type CommitRequest = AppendRequest & { readonly producer?: ProducerIdentity | undefined };

/**
 * The `Stream-Seq` rule: a supplied value must sort strictly after the last accepted one, by UTF-8 bytes.
 *
 * @throws StorageError `SEQ_CONFLICT`.
 */
export function checkStreamSeq(lastSeq: string | null, seq: string | undefined): void {
  if (seq === undefined || lastSeq === null) return;
  if (compareUtf8(seq, lastSeq) <= 0) {
    throw new StorageError(
      'SEQ_CONFLICT',
      `Stream-Seq ${JSON.stringify(seq)} is not after ${JSON.stringify(lastSeq)}`,
      {
        details: { lastSeq, receivedSeq: seq },
      },
    );
  }
}

/**
 * The value checks of an append's arguments, made before the stream is looked up: a non-producer append needs
 * messages or `close` (`EMPTY_APPEND`); producer identities must be well-formed (`INVALID_PRODUCER`). The type checks
 * are `validateAppend` / `validateProducerAppend`'s.
 */
export function validateAppendRequest(request: CommitRequest): void {
  if (request.producer !== undefined) validateProducerIdentity(request.producer);
  else if (request.messages.length === 0 && request.close !== true) {
    throw new StorageError(
      'EMPTY_APPEND',
      'an append needs at least one message unless it closes the stream',
    );
  }
}

/** What a commit changes besides the messages, computed before anything is written. */
export interface CommitPlan {
  readonly kind: 'commit';
  /** The closed flag after the commit. */
  readonly closed: boolean;
  readonly lastSeq: string | null;
  readonly expiresAt: number | null;
  readonly updatedAt: number;
  /** The producer entry to store, for producer appends. */
  readonly producer?: { readonly id: string; readonly state: ProducerState } | undefined;
}

/** A producer duplicate: nothing to write. */
export interface DuplicatePlan {
  readonly kind: 'duplicate';
  readonly epoch: number;
  readonly seq: number;
}

/**
 * Runs every rule of an append, close or producer append against a stream's current state, in the contract's order,
 * and returns what the commit must change — without changing anything, so a commit that later fails (limits, I/O)
 * leaves `Stream-Seq`, TTL, `updatedAt` and producer state untouched. The caller has already run
 * {@link validateAppendRequest} and found the entry (else `NOT_FOUND`), and still checks the byte limits
 * ({@link checkByteLimits}) while committing.
 *
 * @throws StorageError every rule code of `Storage.append` / `Storage.appendWithProducer` except the limits.
 */
export function planCommit(
  view: StreamStateView,
  request: CommitRequest,
  now: number,
): CommitPlan | DuplicatePlan {
  const { messages, producer } = request;
  const close = request.close === true;
  validateAppendRequest(request);
  checkAccess(view, now);

  let producerEntry: CommitPlan['producer'];
  if (producer !== undefined) {
    if (messages.length > 0) checkContentType(view, request.contentType);
    const decision = decideProducer(
      view.producers?.get(producer.id),
      producer,
      view.closed,
      view.nextOffset,
      now,
    );
    if (decision.kind === 'duplicate') return decision;
    producerEntry = {
      id: producer.id,
      state: { epoch: producer.epoch, lastSeq: producer.seq, updatedAt: now },
    };
  } else if (messages.length > 0) {
    if (view.closed) throw streamClosed(view.nextOffset);
    checkContentType(view, request.contentType);
  }
  checkStreamSeq(view.lastSeq, request.seq);
  return {
    kind: 'commit',
    closed: view.closed || close,
    lastSeq: request.seq ?? view.lastSeq,
    expiresAt: renewedDeadline(view.config, now),
    updatedAt: now,
    producer: producerEntry,
  };
}

function checkContentType(view: StreamStateView, contentType: string | undefined): void {
  if (contentType === undefined) {
    throw new StorageError('INVALID_CONTENT_TYPE', 'an append with messages needs a content type');
  }
  const actual = normalizeContentType(contentType);
  if (actual !== view.config.contentType) {
    throw new StorageError(
      'CONTENT_TYPE_MISMATCH',
      `content type ${actual} does not match the stream's ${view.config.contentType}`,
      { details: { expected: view.config.contentType, actual } },
    );
  }
}

/** The result of a producer duplicate: nothing written, the stored epoch and seq, both offsets at the tail. */
export function duplicateResult(plan: DuplicatePlan, tail: Offset, closed: boolean): ProducerAppendResult {
  return { duplicate: true, epoch: plan.epoch, seq: plan.seq, startOffset: tail, nextOffset: tail, closed };
}

/** The result of an accepted commit that began at `startOffset` and ended at `nextOffset`. */
export function committedResult(
  request: CommitRequest,
  plan: CommitPlan,
  startOffset: Offset,
  nextOffset: Offset,
): ProducerAppendResult {
  const epoch = request.producer?.epoch ?? 0;
  const seq = request.producer?.seq ?? 0;
  return { duplicate: false, epoch, seq, startOffset, nextOffset, closed: plan.closed };
}

/** The {@link AppendResult} part of a commit's result (what `append` and `closeStream` return). */
export function appendResultOf(result: AppendResult): AppendResult {
  return { startOffset: result.startOffset, nextOffset: result.nextOffset, closed: result.closed };
}
