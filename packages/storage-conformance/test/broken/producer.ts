import { type ProducerAppendRequest, StorageError } from '@streamkeep/storage';
import type { StorageHarness } from '../../src/index.js';
import { harnessOf, recovering } from './harness.js';

// Mutants of appendWithProducer: duplicates, epochs, sequence gaps and their error details.

/** A producer retry with messages is written again instead of being recognised as a duplicate. */
export const producerDuplicatesAppliedTwice: StorageHarness = harnessOf((inner) => ({
  appendWithProducer: async (n, r: ProducerAppendRequest) => {
    const result = await inner.appendWithProducer(n, r);
    if (!result.duplicate || r.messages.length === 0 || result.closed) return result;
    const again = await inner.append(n, { messages: r.messages, contentType: r.contentType });
    return { ...again, duplicate: false, epoch: r.producer.epoch, seq: r.producer.seq };
  },
}));

/** A stale epoch is answered as a duplicate instead of being fenced. */
export const staleEpochAsDuplicate: StorageHarness = harnessOf((inner) => ({
  appendWithProducer: (n, r) =>
    recovering(
      () => inner.appendWithProducer(n, r),
      'PRODUCER_EPOCH_FENCED',
      async (err) => {
        const h = await inner.head(n);
        return {
          startOffset: h.nextOffset,
          nextOffset: h.nextOffset,
          closed: h.closed,
          duplicate: true,
          epoch: err.details.currentEpoch ?? 0,
          seq: r.producer.seq,
        };
      },
    ),
}));

/** `PRODUCER_SEQ_GAP` reports the last accepted seq as the expected one (off by one). */
export const gapExpectsLastSeq: StorageHarness = harnessOf((inner) => ({
  appendWithProducer: (n, r) =>
    recovering(
      () => inner.appendWithProducer(n, r),
      'PRODUCER_SEQ_GAP',
      (err) => {
        throw new StorageError('PRODUCER_SEQ_GAP', err.message, {
          details: { ...err.details, expectedSeq: Math.max(0, (err.details.expectedSeq ?? 1) - 1) },
        });
      },
    ),
}));

/** A duplicate answers with the request's epoch and seq instead of the stored ones. */
export const duplicateEchoesRequest: StorageHarness = harnessOf((inner) => ({
  appendWithProducer: async (n, r) => {
    const result = await inner.appendWithProducer(n, r);
    return result.duplicate ? { ...result, epoch: r.producer.epoch, seq: r.producer.seq } : result;
  },
}));

/** `PRODUCER_EPOCH_FENCED` carries no `currentEpoch` (the server cannot send Producer-Epoch). */
export const fencedWithoutEpoch: StorageHarness = harnessOf((inner) => ({
  appendWithProducer: (n, r) =>
    recovering(
      () => inner.appendWithProducer(n, r),
      'PRODUCER_EPOCH_FENCED',
      () => {
        throw new StorageError('PRODUCER_EPOCH_FENCED', 'fenced');
      },
    ),
}));
