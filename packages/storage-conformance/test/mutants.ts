import type { StorageHarness } from '../src/index.js';
import * as broken from './broken.js';

// The kit's mutant suite: realistic backend bugs, each MemoryStorage behind a wrapper that breaks one rule, grouped by
// the method they break. `teeth.test.ts` requires the whole kit, with default settings, to catch every one of them
// under every seed in SEEDS; `STREAMKEEP_WRITE_CATCH_MATRIX=1` makes it write the catch matrix into the README.

export interface Mutant {
  readonly name: string;
  readonly method: string;
  readonly bug: string;
  readonly harness: StorageHarness;
}

/** Seeds every mutant must be caught under. Fixed, so the suite is deterministic. */
export const SEEDS: readonly number[] = [1, 2, 3, 4, 5];

export const MUTANTS: readonly Mutant[] = [
  {
    name: 'createIgnoresClosed',
    method: 'createStream',
    bug: '`closed: true` ignored',
    harness: broken.createIgnoresClosed,
  },
  {
    name: 'createMismatchAccepted',
    method: 'createStream',
    bug: 'a different config answered as idempotent',
    harness: broken.createMismatchAccepted,
  },
  {
    name: 'createKeepsFirstMessageOnly',
    method: 'createStream',
    bug: 'only the first initial message stored',
    harness: broken.createKeepsFirstMessageOnly,
  },
  {
    name: 'ttlStoredAsDeadline',
    method: 'createStream',
    bug: 'a sliding TTL stored as a fixed deadline',
    harness: broken.ttlStoredAsDeadline,
  },
  {
    name: 'forkIgnoresOffset',
    method: 'createFork',
    bug: 'every fork branches at the tail',
    harness: broken.forkIgnoresOffset,
  },
  {
    name: 'forkIgnoresSubOffset',
    method: 'createFork',
    bug: 'sub-offset ignored',
    harness: broken.forkIgnoresSubOffset,
  },
  {
    name: 'forkContentTypeUnchecked',
    method: 'createFork',
    bug: 'explicit content type never compared',
    harness: broken.forkContentTypeUnchecked,
  },
  {
    name: 'offsetsDoNotAdvance',
    method: 'append',
    bug: '`nextOffset` does not advance',
    harness: broken.offsetsDoNotAdvance,
  },
  {
    name: 'appendsAcceptedAfterClose',
    method: 'append',
    bug: 'appends to a closed stream acknowledged',
    harness: broken.appendsAcceptedAfterClose,
  },
  {
    name: 'streamSeqRegressionAccepted',
    method: 'append',
    bug: 'a non-increasing `Stream-Seq` accepted',
    harness: broken.streamSeqRegressionAccepted,
  },
  {
    name: 'appendCloseIgnored',
    method: 'append',
    bug: '`close` with messages ignored',
    harness: broken.appendCloseIgnored,
  },
  {
    name: 'appendContentTypeUnchecked',
    method: 'append',
    bug: 'content type not checked',
    harness: broken.appendContentTypeUnchecked,
  },
  {
    name: 'appendStartOffsetIsTail',
    method: 'append',
    bug: '`startOffset` reported as the new tail',
    harness: broken.appendStartOffsetIsTail,
  },
  {
    name: 'emptyMessagesDropped',
    method: 'append',
    bug: 'zero-length messages dropped',
    harness: broken.emptyMessagesDropped,
  },
  {
    name: 'streamLimitOffByOne',
    method: 'append',
    bug: 'per-stream limit checked with `>=`',
    harness: broken.streamLimitOffByOne,
  },
  {
    name: 'closedErrorWithoutTail',
    method: 'append',
    bug: '`STREAM_CLOSED` without `nextOffset`',
    harness: broken.closedErrorWithoutTail,
  },
  {
    name: 'seqConflictDetailsSwapped',
    method: 'append',
    bug: '`SEQ_CONFLICT` details swapped',
    harness: broken.seqConflictDetailsSwapped,
  },
  {
    name: 'limitRejectionPartiallyWrites',
    method: 'append',
    bug: 'a limit rejection leaves part of the batch',
    harness: broken.limitRejectionPartiallyWrites,
  },
  {
    name: 'closeNotIdempotent',
    method: 'closeStream',
    bug: 'closing a closed stream refused',
    harness: broken.closeNotIdempotent,
  },
  {
    name: 'closeIgnoresSeq',
    method: 'closeStream',
    bug: '`Stream-Seq` of a close dropped',
    harness: broken.closeIgnoresSeq,
  },
  {
    name: 'producerDuplicatesAppliedTwice',
    method: 'appendWithProducer',
    bug: 'a retry written again',
    harness: broken.producerDuplicatesAppliedTwice,
  },
  {
    name: 'staleEpochAsDuplicate',
    method: 'appendWithProducer',
    bug: 'a stale epoch answered as a duplicate',
    harness: broken.staleEpochAsDuplicate,
  },
  {
    name: 'gapExpectsLastSeq',
    method: 'appendWithProducer',
    bug: '`expectedSeq` off by one',
    harness: broken.gapExpectsLastSeq,
  },
  {
    name: 'duplicateEchoesRequest',
    method: 'appendWithProducer',
    bug: 'a duplicate echoes the request, not the stored state',
    harness: broken.duplicateEchoesRequest,
  },
  {
    name: 'fencedWithoutEpoch',
    method: 'appendWithProducer',
    bug: '`PRODUCER_EPOCH_FENCED` without `currentEpoch`',
    harness: broken.fencedWithoutEpoch,
  },
  {
    name: 'readDropsFirstMessage',
    method: 'read',
    bug: 'the first message of a read dropped',
    harness: broken.readDropsFirstMessage,
  },
  {
    name: 'expiredStreamsStillReadable',
    method: 'read',
    bug: 'expired streams still readable',
    harness: broken.expiredStreamsStillReadable,
  },
  { name: 'readBudgetIgnored', method: 'read', bug: '`maxBytes` ignored', harness: broken.readBudgetIgnored },
  {
    name: 'budgetedReadSkipsRest',
    method: 'read',
    bug: 'a cut-short read reports the tail',
    harness: broken.budgetedReadSkipsRest,
  },
  {
    name: 'negativeBudgetAccepted',
    method: 'read',
    bug: 'a negative budget read as 0',
    harness: broken.negativeBudgetAccepted,
  },
  {
    name: 'readsAfterClose',
    method: 'read',
    bug: 'reads answer after `close()`',
    harness: broken.readsAfterClose,
  },
  {
    name: 'updatedAtNeverSet',
    method: 'head',
    bug: '`updatedAt` never recorded',
    harness: broken.updatedAtNeverSet,
  },
  {
    name: 'forkBytesIncludeInherited',
    method: 'head',
    bug: "a fork's `totalBytes` counts inherited bytes",
    harness: broken.forkBytesIncludeInherited,
  },
  {
    name: 'emptyNameNotFound',
    method: 'head',
    bug: 'an empty name looked up (`NOT_FOUND`)',
    harness: broken.emptyNameNotFound,
  },
  {
    name: 'existsIgnoresExpiry',
    method: 'exists',
    bug: 'expired streams exist',
    harness: broken.existsIgnoresExpiry,
  },
  {
    name: 'deleteHidesTombstone',
    method: 'delete',
    bug: 'a soft delete reported as hard',
    harness: broken.deleteHidesTombstone,
  },
  {
    name: 'deleteChecksExpiry',
    method: 'delete',
    bug: 'deleting an expired stream refused',
    harness: broken.deleteChecksExpiry,
  },
  {
    name: 'subscribeToMissing',
    method: 'subscribe',
    bug: 'subscribing to a missing name succeeds',
    harness: broken.subscribeToMissing,
  },
  {
    name: 'wakeUpsDropped',
    method: 'subscribe',
    bug: 'every other wake-up dropped',
    harness: broken.wakeUpsDropped,
  },
  {
    name: 'listSortedByUtf16',
    method: 'listStreams',
    bug: 'sorted by UTF-16, not UTF-8',
    harness: broken.listSortedByUtf16,
  },
  {
    name: 'listIgnoresAfter',
    method: 'listStreams',
    bug: '`after` ignored',
    harness: broken.listIgnoresAfter,
  },
  {
    name: 'cleanupReportsZero',
    method: 'cleanupExpiredStreams',
    bug: 'always reports 0',
    harness: broken.cleanupReportsZero,
  },
  {
    name: 'forgetfulReopen',
    method: 'reopen',
    bug: 'a "durable" reopen comes back empty',
    harness: broken.forgetfulReopen,
  },
];
