import { describe, expect, it } from 'vitest';
import { checkModel, OutcomeHistogram } from '../src/index.js';
import { memory } from './broken.js';

// A default run of the model property must reach every outcome the model can produce; otherwise whole rule groups
// would go untested. The seeds are fixed so the test is deterministic.

/** The error codes a model run can produce against a backend with every capability. */
const REACHABLE = [
  'NOT_FOUND',
  'EXPIRED',
  'GONE',
  'CONFIG_MISMATCH',
  'PATH_BLOCKED',
  'FORK_FROM_TOMBSTONE',
  'FORK_OFFSET_BEYOND_TAIL',
  'FORK_SUB_OFFSET_OUT_OF_RANGE',
  'STREAM_CLOSED',
  'CONTENT_TYPE_MISMATCH',
  'SEQ_CONFLICT',
  'PRODUCER_SEQ_GAP',
  'PRODUCER_EPOCH_FENCED',
  'PRODUCER_INVALID_EPOCH_SEQ',
  'EMPTY_APPEND',
  'INVALID_OFFSET',
  'INVALID_CONTENT_TYPE',
  'CONFLICTING_EXPIRY',
  'INVALID_TTL',
  'INVALID_STREAM_NAME',
  'throws TypeError',
  'throws RangeError',
  'INVALID_PRODUCER',
  'STORAGE_LIMIT_EXCEEDED',
  'STREAM_LIMIT_EXCEEDED',
  'created',
  'existing',
  'duplicate',
  'accepted',
  'tombstoned',
  'removed',
];

describe('outcome coverage of a default model run', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: every reachable outcome occurs`, async () => {
      const histogram = new OutcomeHistogram();
      await checkModel(memory, { seed, histogram });
      const seen = histogram.outcomes();
      const missing = REACHABLE.filter((o) => !seen.has(o));
      expect(missing, `histogram:\n${histogram.format()}`).toEqual([]);
    }, 120_000);
  }
});
