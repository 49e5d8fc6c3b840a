import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Area,
  AreaFailure,
  type ConformanceOptions,
  checkBudgetedReads,
  checkClosedStream,
  checkDurability,
  checkExpiry,
  checkFailedCommitHasNoEffect,
  checkIdempotentWritesNothing,
  checkModel,
  checkOffsetsMonotonic,
  checkStorageConformance,
  checkStreamSeqOrder,
  checkSubscriberNeverMisses,
  checkSuffixReads,
  type StorageHarness,
} from '../src/index.js';
import * as broken from './broken.js';
import { MUTANTS, SEEDS } from './mutants.js';

// The kit with default settings must catch every mutant under every seed; the catch matrix records which area caught
// it first. Some mutants also have a targeted law, checked on its own below.

const caughtBy = new Map<string, Area>();

describe('the whole kit, default settings, catches every mutant under every seed', () => {
  for (const mutant of MUTANTS) {
    for (const seed of SEEDS) {
      it(`${mutant.name} (${mutant.method}: ${mutant.bug}), seed ${seed}`, async () => {
        let failure: unknown;
        try {
          // Unshrunk: whether the kit fails does not depend on shrinking, and shrinking 215 failures takes minutes.
          await checkStorageConformance(mutant.harness, { seed, shrink: false });
        } catch (err) {
          failure = err;
        }
        expect(failure, `${mutant.name} survived seed ${seed}`).toBeInstanceOf(AreaFailure);
        expect(String(failure)).toMatch(/seed|expected|must|after close/i);
        caughtBy.set(`${mutant.name}@${seed}`, (failure as AreaFailure).area);
      }, 120_000);
    }
  }
});

const LETTER: Record<Area, string> = {
  model: 'M',
  concurrency: 'C',
  durability: 'D',
  capabilities: 'K',
  laws: 'L',
  subscriptions: 'S',
};

afterAll(() => {
  if (process.env.STREAMKEEP_WRITE_CATCH_MATRIX !== '1') return;
  const rows = MUTANTS.map((m) => {
    const cells = SEEDS.map((s) => {
      const area = caughtBy.get(`${m.name}@${s}`);
      return area === undefined ? '✗' : LETTER[area];
    });
    return `| \`${m.name}\` | ${m.method} | ${m.bug} | ${cells.join(' | ')} |`;
  });
  const table = [
    `| mutant | method | bug | ${SEEDS.map((s) => `seed ${s}`).join(' | ')} |`,
    `| --- | --- | --- | ${SEEDS.map(() => ':-:').join(' | ')} |`,
    ...rows,
  ].join('\n');
  const readme = new URL('../README.md', import.meta.url);
  const text = readFileSync(readme, 'utf8');
  const start = '<!-- catch-matrix:start -->';
  const end = '<!-- catch-matrix:end -->';
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i === -1 || j === -1) throw new Error('README.md has no catch-matrix markers');
  writeFileSync(readme, `${text.slice(0, i + start.length)}\n${table}\n${text.slice(j)}`);
});

const options: ConformanceOptions = { numRuns: 200 };
type Check = (harness: StorageHarness, options?: ConformanceOptions) => Promise<void>;

// Targeted laws: each must catch the bug it is aimed at on its own.
const targeted: [string, StorageHarness, [string, Check][]][] = [
  ['offsets that do not advance', broken.offsetsDoNotAdvance, [['offsets law', checkOffsetsMonotonic]]],
  [
    'appends accepted after close',
    broken.appendsAcceptedAfterClose,
    [
      ['closed-stream law', checkClosedStream],
      ['failed-commit law', checkFailedCommitHasNoEffect],
    ],
  ],
  [
    'producer duplicates applied twice',
    broken.producerDuplicatesAppliedTwice,
    [['idempotency law', checkIdempotentWritesNothing]],
  ],
  [
    'a read that drops its first message',
    broken.readDropsFirstMessage,
    [
      ['suffix law', checkSuffixReads],
      ['budget law', checkBudgetedReads],
    ],
  ],
  ['expired streams still readable', broken.expiredStreamsStillReadable, [['expiry law', checkExpiry]]],
  [
    'a Stream-Seq regression accepted',
    broken.streamSeqRegressionAccepted,
    [['Stream-Seq law', checkStreamSeqOrder]],
  ],
  ['dropped wake-ups', broken.wakeUpsDropped, [['subscriber property', checkSubscriberNeverMisses]]],
  [
    'a reopen that forgets everything',
    broken.forgetfulReopen,
    [['model with reopen', (h, o) => checkModel(h, { ...o, reopen: true })]],
  ],
];

describe('targeted laws catch the bug they are aimed at', () => {
  for (const [bug, harness, checks] of targeted) {
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

  it('MemoryStorage passes the whole kit', async () => {
    await checkStorageConformance(broken.memory, { seed: 7 });
  }, 120_000);
});
