import { describe, expect, it } from 'vitest';
import { checkDifferential, type KnownDivergence } from '../src/index.js';
import * as broken from './broken.js';

// The differential harness itself: two identical backends agree; a backend with one bug disagrees with the reference,
// and a documented known divergence ends the sequences it affects instead of failing them.

describe('checkDifferential', () => {
  it('passes on two instances of the same backend', async () => {
    await checkDifferential(broken.memory, broken.memory, { seed: 11, numRuns: 100, parallel: 2 });
  }, 120_000);

  for (const [label, harness] of [
    ['zero-length messages dropped', broken.emptyMessagesDropped],
    ['STREAM_CLOSED without its tail', broken.closedErrorWithoutTail],
    ['listings that ignore `after`', broken.listIgnoresAfter],
  ] as const) {
    it(`catches a backend that differs: ${label}`, async () => {
      let failure: unknown;
      try {
        await checkDifferential(broken.memory, harness, { seed: 12, numRuns: 200, parallel: 2 });
      } catch (err) {
        failure = err;
      }
      expect(String(failure)).toMatch(/Property failed after \d+ tests/);
      expect(String((failure as Error).cause)).toMatch(/first backend vs second backend/);
    }, 120_000);
  }

  it('ends a sequence at a known divergence instead of failing, and reports it', async () => {
    const seen: string[] = [];
    const known: KnownDivergence[] = [
      {
        title: 'STREAM_CLOSED without nextOffset',
        issue: '#0 (test)',
        matches: (_command, message) => /STREAM_CLOSED/.test(message),
      },
    ];
    await checkDifferential(broken.memory, broken.closedErrorWithoutTail, {
      seed: 12,
      numRuns: 200,
      knownDivergences: known,
      onKnownDivergence: (title) => seen.push(title),
    });
    expect(seen.length).toBeGreaterThan(0);
  }, 120_000);
});
