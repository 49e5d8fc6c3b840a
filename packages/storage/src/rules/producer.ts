import { StorageError } from '../errors.js';
import type { Offset } from '../offsets.js';
import type { ProducerIdentity, ProducerState } from '../types.js';
import { streamClosed } from './access.js';

/** Producer state idle for longer than this (7 days) is forgotten. */
export const PRODUCER_STATE_TTL_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * The oldest `updatedAt` a producer entry may have at `now` and still count: entries last used before this instant
 * (more than {@link PRODUCER_STATE_TTL_MS} ago) are forgotten. Backends that prune in a query compare with it.
 */
export function producerStateCutoff(now: number): number {
  return now - PRODUCER_STATE_TTL_MS;
}

/** True while a stored producer entry counts (see {@link producerStateCutoff}). */
export function isProducerStateLive(state: ProducerState, now: number): boolean {
  return state.updatedAt >= producerStateCutoff(now);
}

/**
 * The producer entries a commit at `now` keeps: every entry still live, plus `updated` (the committing producer's
 * new state). Backends that store producer state replace it with this (or delete the entries it leaves out).
 */
export function prunedProducers(
  producers: ReadonlyMap<string, ProducerState>,
  updated: { readonly id: string; readonly state: ProducerState },
  now: number,
): Map<string, ProducerState> {
  const kept = new Map<string, ProducerState>();
  for (const [id, state] of producers) if (isProducerStateLive(state, now)) kept.set(id, state);
  kept.set(updated.id, updated.state);
  return kept;
}

/**
 * Validates producer identity values.
 *
 * @throws StorageError `INVALID_PRODUCER` for an empty id or an epoch / seq that is not a non-negative safe integer.
 */
export function validateProducerIdentity(producer: ProducerIdentity): void {
  if (typeof producer.id !== 'string' || producer.id.length === 0) {
    throw new StorageError('INVALID_PRODUCER', 'producer id must be a non-empty string');
  }
  for (const [field, value] of [
    ['epoch', producer.epoch],
    ['seq', producer.seq],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new StorageError(
        'INVALID_PRODUCER',
        `producer ${field} must be a non-negative safe integer, got ${value}`,
      );
    }
  }
}

/** The outcome of the producer rules. */
export type ProducerDecision =
  | { readonly kind: 'accept' }
  | { readonly kind: 'duplicate'; readonly epoch: number; readonly seq: number };

/**
 * The idempotent-producer state machine. `state` is the stored entry for this producer id, or `undefined`; an entry
 * idle for longer than {@link PRODUCER_STATE_TTL_MS} counts as absent.
 *
 * @throws StorageError `PRODUCER_EPOCH_FENCED`, `STREAM_CLOSED`, `PRODUCER_INVALID_EPOCH_SEQ`, `PRODUCER_SEQ_GAP`.
 */
export function decideProducer(
  state: ProducerState | undefined,
  producer: ProducerIdentity,
  closed: boolean,
  nextOffset: Offset,
  now: number,
): ProducerDecision {
  const known = state !== undefined && isProducerStateLive(state, now) ? state : undefined;
  if (known !== undefined) {
    if (producer.epoch < known.epoch) {
      throw new StorageError(
        'PRODUCER_EPOCH_FENCED',
        `producer ${JSON.stringify(producer.id)} epoch ${producer.epoch} is fenced by epoch ${known.epoch}`,
        { details: { currentEpoch: known.epoch, receivedEpoch: producer.epoch } },
      );
    }
    if (producer.epoch === known.epoch && producer.seq <= known.lastSeq) {
      return { kind: 'duplicate', epoch: known.epoch, seq: known.lastSeq };
    }
  }
  if (closed) throw streamClosed(nextOffset);
  if (known === undefined) {
    if (producer.seq !== 0) throw seqGap(0, producer.seq);
    return { kind: 'accept' };
  }
  if (producer.epoch > known.epoch) {
    if (producer.seq !== 0) {
      throw new StorageError(
        'PRODUCER_INVALID_EPOCH_SEQ',
        `a new producer epoch must start at seq 0, got ${producer.seq}`,
      );
    }
    return { kind: 'accept' };
  }
  if (producer.seq > known.lastSeq + 1) throw seqGap(known.lastSeq + 1, producer.seq);
  return { kind: 'accept' };
}

function seqGap(expected: number, received: number): StorageError {
  return new StorageError(
    'PRODUCER_SEQ_GAP',
    `producer sequence gap: expected ${expected}, got ${received}`,
    {
      details: { expectedSeq: expected, receivedSeq: received },
    },
  );
}
