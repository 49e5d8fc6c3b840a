import fc from 'fast-check';
import { describe, it } from 'vitest';
import { limitsArb } from '../arbitraries.js';
import { auditAll } from '../commands.js';
import { commandArbitraries, createCommandArb } from '../generation.js';
import { probeCapabilities, type StorageHarness, withSession } from '../harness.js';
import { attachHistogram, OutcomeHistogram } from '../histogram.js';
import { StorageModel } from '../model.js';
import { type ConformanceOptions, fcParameters, resolveOptions } from '../options.js';

/** Extra switches of {@link checkModel}. */
export interface ModelCheckOptions extends ConformanceOptions {
  /** Mix `reopen()` into the command sequences (needs a durable backend whose harness provides `reopen`). */
  readonly reopen?: boolean | undefined;
  /** Counts every command's outcome into this histogram (with `verbose`, the kit prints it after the property). */
  readonly histogram?: OutcomeHistogram | undefined;
}

/**
 * Model-based property: random command sequences (create, fork, append, producer append, close, read, head, exists,
 * list, delete, cleanup, time passing, and with `reopen` a restart) run against the backend and the reference model;
 * after every command both must return the same value or reject with the same error code. Rejects with fast-check's
 * report (seed, path, shrunk command sequence) on the first disagreement.
 */
export async function checkModel(harness: StorageHarness, options: ModelCheckOptions = {}): Promise<void> {
  const resolved = resolveOptions(options);
  const capabilities = await probeCapabilities(harness);
  const reopen = options.reopen === true;
  const histogram = options.histogram ?? new OutcomeHistogram();
  const commands = fc.commands(commandArbitraries({ capabilities, reopen }), {
    maxCommands: resolved.maxCommands,
    size: 'max',
    ...(resolved.replayPath === undefined ? {} : { replayPath: resolved.replayPath }),
  });
  const limits = capabilities.byteLimits ? limitsArb : fc.constant({});
  // A few creates first, so that most runs spend their commands on existing streams rather than on NOT_FOUND.
  const prelude = fc.array(createCommandArb(capabilities), { minLength: 1, maxLength: 3 });
  const property = fc.asyncProperty(limits, prelude, commands, async (l, first, cmds) => {
    await withSession(harness, l, async (session) => {
      if (reopen && !session.canReopen) {
        throw new Error('the harness must provide reopen() to check durability');
      }
      const model = new StorageModel(session.clock, l, capabilities);
      attachHistogram(model, histogram);
      await fc.asyncModelRun(() => ({ model, real: session }), first);
      await fc.asyncModelRun(() => ({ model, real: session }), cmds);
      await auditAll(model, session);
    });
  });
  try {
    await fc.assert(property, fcParameters(resolved));
  } finally {
    if (resolved.verbose) console.log(`model run outcomes:\n${histogram.format()}`);
  }
}

/** Registers the model-based property as one vitest test. */
export function describeModel(name: string, harness: StorageHarness, options: ConformanceOptions = {}): void {
  const resolved = resolveOptions(options);
  describe(`${name}: model`, () => {
    it(
      'agrees with the reference model on every command sequence',
      () => checkModel(harness, options),
      resolved.timeout,
    );
  });
}
