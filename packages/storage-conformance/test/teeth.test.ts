import { describe, expect, it } from 'vitest';
import {
  type ConformanceOptions,
  checkBudgetedReads,
  checkClosedStream,
  checkDurability,
  checkExpiry,
  checkFailedCommitHasNoEffect,
  checkIdempotentWritesNothing,
  checkModel,
  checkOffsetsMonotonic,
  checkParallelAppendersAndReaders,
  checkReopenPreservesState,
  checkStreamSeqOrder,
  checkSubscriberNeverMisses,
  checkSuffixReads,
  type StorageHarness,
} from '../src/index.js';
import * as broken from './broken.js';

// The kit must fail on each deliberately broken backend, through the model and through the law aimed at the bug,
// and must report fast-check's seed and a shrunk counterexample when it does.

const options: ConformanceOptions = { numRuns: 200 };
type Check = (harness: StorageHarness, options?: ConformanceOptions) => Promise<void>;

const cases: [string, StorageHarness, [string, Check][]][] = [
  [
    'offsets that do not advance',
    broken.offsetsDoNotAdvance,
    [
      ['model', checkModel],
      ['offsets law', checkOffsetsMonotonic],
      ['parallel appenders', checkParallelAppendersAndReaders],
    ],
  ],
  [
    'appends accepted after close',
    broken.appendsAcceptedAfterClose,
    [
      ['model', checkModel],
      ['closed-stream law', checkClosedStream],
      ['failed-commit law', checkFailedCommitHasNoEffect],
    ],
  ],
  [
    'producer duplicates applied twice',
    broken.producerDuplicatesAppliedTwice,
    [
      ['model', checkModel],
      ['idempotency law', checkIdempotentWritesNothing],
    ],
  ],
  [
    'a read that drops its first message',
    broken.readDropsFirstMessage,
    [
      ['model', checkModel],
      ['suffix law', checkSuffixReads],
      ['budget law', checkBudgetedReads],
    ],
  ],
  [
    'expired streams still readable',
    broken.expiredStreamsStillReadable,
    [
      ['model', checkModel],
      ['expiry law', checkExpiry],
    ],
  ],
  [
    'a Stream-Seq regression accepted',
    broken.streamSeqRegressionAccepted,
    [
      ['model', checkModel],
      ['Stream-Seq law', checkStreamSeqOrder],
      ['failed-commit law', checkFailedCommitHasNoEffect],
    ],
  ],
  ['listings in UTF-16 order', broken.listSortedByUtf16, [['model', checkModel]]],
  ['dropped wake-ups', broken.wakeUpsDropped, [['subscriber property', checkSubscriberNeverMisses]]],
  [
    'a reopen that forgets everything',
    broken.forgetfulReopen,
    [
      ['model with reopen', (h, o) => checkModel(h, { ...o, reopen: true })],
      ['reopen snapshot', checkReopenPreservesState],
    ],
  ],
];

describe('the kit fails on broken backends', () => {
  for (const [bug, harness, checks] of cases) {
    for (const [label, check] of checks) {
      it(`${bug}: caught by the ${label}`, async () => {
        await expect(check(harness, options)).rejects.toThrow(
          /Property failed after \d+ tests[\s\S]*seed: -?\d+/,
        );
      });
    }
  }

  it('prints the shrunk command sequence readably and replays it from seed and path', async () => {
    let message = '';
    try {
      await checkModel(broken.readDropsFirstMessage, options);
    } catch (err) {
      message = String(err);
    }
    expect(message).toMatch(/Counterexample: \[.*(createStream|createFork)\(/);
    const seed = Number(/seed: (-?\d+)/.exec(message)?.[1]);
    const path = /path: "([^"]+)"/.exec(message)?.[1];
    const replayPath = /replayPath="([^"]+)"/.exec(message)?.[1];
    expect(Number.isSafeInteger(seed) && path !== undefined && replayPath !== undefined).toBe(true);
    await expect(checkModel(broken.readDropsFirstMessage, { seed, path, replayPath })).rejects.toThrow(
      /Property failed after 1 tests/,
    );
  });
});

describe('the kit passes on correct backends', () => {
  it('MemoryStorage passes the durability checks when its reopen keeps the state', async () => {
    await checkDurability(broken.durableMemory, options);
  });

  it('checkDurability resolves without running for a non-durable backend', async () => {
    await checkDurability(broken.memory, options);
  });
});
