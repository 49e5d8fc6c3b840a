import type { StorageCapabilities } from '@streamkeep/storage';
import { describe, it } from 'vitest';
import { probeCapabilities, type StorageHarness } from '../harness.js';
import { type ConformanceOptions, resolveOptions } from '../options.js';
import { checkInvalidArguments } from './arguments.js';
import type { PropertyCheck } from './common.js';
import {
  checkFailedCommitHasNoEffect,
  checkFailedCreateHasNoEffect,
  checkIdempotentWritesNothing,
} from './laws/no-effect.js';
import {
  checkBudgetedReads,
  checkCoherentSnapshots,
  checkOffsetsMonotonic,
  checkSuffixReads,
} from './laws/reads.js';
import { checkClosedStream, checkExpiry, checkForkReads, checkStreamSeqOrder } from './laws/streams.js';

// The laws area: the registry of laws (their titles, order and capability gates) and its two entry points. The laws
// themselves live in `laws/reads.ts` (offsets and reads), `laws/no-effect.ts` (writes that must change nothing) and
// `laws/streams.ts` (closure, forks, expiry, Stream-Seq), and are re-exported from here.

export * from './laws/no-effect.js';
export * from './laws/reads.js';
export * from './laws/streams.js';

const needs =
  (flag: keyof StorageCapabilities) =>
  (caps: StorageCapabilities): string | undefined =>
    caps[flag] ? undefined : `needs the ${flag} capability`;

/** The laws, in registration order. */
export const LAWS: readonly PropertyCheck[] = [
  { title: 'offsets are unique and strictly increasing', run: checkOffsetsMonotonic },
  { title: 'reading from any returned offset yields exactly the suffix', run: checkSuffixReads },
  { title: 'reads are coherent snapshots of whole commits', run: checkCoherentSnapshots },
  { title: 'a failed commit has no effect', run: checkFailedCommitHasNoEffect },
  {
    title: 'a create or fork rejected by a byte limit has no effect',
    run: checkFailedCreateHasNoEffect,
    skip: needs('byteLimits'),
  },
  { title: 'an idempotent create or a producer duplicate writes nothing', run: checkIdempotentWritesNothing },
  { title: 'a closed stream rejects appends but stays readable', run: checkClosedStream },
  {
    title: 'a fork reads its inherited prefix, then its own messages',
    run: checkForkReads,
    skip: needs('forks'),
  },
  { title: 'byte budgets split reads without losing or repeating a message', run: checkBudgetedReads },
  { title: 'streams expire exactly at their deadline', run: checkExpiry, skip: needs('expiry') },
  { title: 'Stream-Seq values must increase in UTF-8 byte order', run: checkStreamSeqOrder },
  {
    title: 'every invalid argument gets the stated answer, whatever the stream, and changes nothing',
    run: checkInvalidArguments,
  },
];

/** Runs every applicable law; rejects with the first counterexample. */
export async function checkLaws(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  const caps = await probeCapabilities(harness);
  for (const law of LAWS) {
    if (law.skip?.(caps, { canReopen: false }) === undefined) await law.run(harness, options);
  }
}

/** Registers each law as a vitest test; laws whose capability is off are reported as skipped. */
export function describeLaws(name: string, harness: StorageHarness, options: ConformanceOptions = {}): void {
  const { timeout } = resolveOptions(options);
  describe(`${name}: laws`, async () => {
    const caps = await probeCapabilities(harness);
    for (const law of LAWS) {
      const reason = law.skip?.(caps, { canReopen: false });
      it.skipIf(reason !== undefined)(
        reason === undefined ? law.title : `${law.title} (${reason})`,
        () => law.run(harness, options),
        timeout,
      );
    }
  });
}
