import type { StorageCapabilities } from '@streamkeep/storage';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { limitsArb } from '../arbitraries.js';
import { auditAll, type Cmd, type Target } from '../commands.js';
import { ConformanceError } from '../compare.js';
import { commandArbitraries, createCommandArb } from '../generation.js';
import { openSession, probeCapabilities, type Session, type StorageHarness } from '../harness.js';
import { attachHistogram, OutcomeHistogram } from '../histogram.js';
import { StorageModel } from '../model.js';
import { type ConformanceOptions, fcParameters, resolveOptions } from '../options.js';

/**
 * A class of inputs on which two backends are known to disagree today, with the issue that tracks it. A
 * differential run that meets a disagreement this matches ends that sequence there (both backends' states may differ
 * from then on) instead of failing; every other disagreement fails.
 */
export interface KnownDivergence {
  /** What differs, in a few words. */
  readonly title: string;
  /** The issue or pull request that removes it. */
  readonly issue: string;
  /**
   * Whether a disagreement is this one: `command` is the command as the kit prints it (with its resolved choices),
   * `message` the whole disagreement (both outcomes).
   */
  matches(command: string, message: string): boolean;
}

/** Options of {@link checkDifferential}. */
export interface DifferentialOptions extends ConformanceOptions {
  /** Disagreements tolerated for now; keep this list short and name an issue for each entry. */
  readonly knownDivergences?: readonly KnownDivergence[] | undefined;
  /** Counts the first backend's outcomes (with `verbose`, printed after the property). */
  readonly histogram?: OutcomeHistogram | undefined;
  /** Called for every sequence a known divergence ended, with its title (to report how often each one occurs). */
  readonly onKnownDivergence?: ((title: string, message: string) => void) | undefined;
  /**
   * Sequences run at once per fast-check run (each against its own two fresh instances); the property runs
   * `numRuns × parallel` sequences. @default 1
   */
  readonly parallel?: number | undefined;
}

class KnownDivergenceMet extends Error {}

type Limits = Session['limits'];
type Paired = fc.AsyncCommand<StorageModel, readonly Target[]>;

/** Runs a command against both targets; a known divergence ends the sequence. */
function pairCommand(
  cmd: Cmd,
  known: readonly KnownDivergence[],
  seen: DifferentialOptions['onKnownDivergence'],
) {
  const wrapped: fc.AsyncCommand<StorageModel, readonly Target[]> = {
    check: () => true,
    async run(model, targets) {
      try {
        await (cmd as unknown as { runOn(m: StorageModel, t: readonly Target[]): Promise<void> }).runOn(
          model,
          targets,
        );
      } catch (err) {
        if (!(err instanceof ConformanceError)) throw err;
        const label = cmd.toString();
        const hit = known.find((k) => k.matches(label, err.message));
        if (hit === undefined) throw err;
        seen?.(hit.title, err.message);
        throw new KnownDivergenceMet(hit.title);
      }
    },
    toString: () => cmd.toString(),
  };
  return wrapped;
}

/**
 * Differential property: the same random command sequences — valid and invalid calls alike, the model property's
 * generator without reopen — run against two backends, which must agree after every command on the result, or on the
 * error code and its documented details, and on what every touched stream looks like right after each mutation. The
 * contract fixes offsets exactly (`(messages before, bytes before)`), so they are compared as they are. The model
 * only steers state-dependent choices here; whether both backends follow the contract is the model property's job.
 */
export async function checkDifferential(
  first: StorageHarness,
  second: StorageHarness,
  options: DifferentialOptions = {},
): Promise<void> {
  const resolved = resolveOptions({ maxCommands: 12, ...options });
  const [a, b] = [await probeCapabilities(first), await probeCapabilities(second)];
  // Only the capabilities its commands exercise must match: not durability or sharing, and not subscriptions (a
  // separate store the differential commands never call; the subscription checks cover it).
  const keys = new Set([...Object.keys(a), ...Object.keys(b)] as (keyof StorageCapabilities)[]);
  const differs = [...keys].filter(
    (k) =>
      k !== 'durable' &&
      k !== 'multiInstance' &&
      k !== 'subscriptions' &&
      (a[k] ?? false) !== (b[k] ?? false),
  );
  if (differs.length > 0)
    throw new Error(
      `the two backends declare different capabilities (${differs.join(', ')}); compare like with like`,
    );
  const capabilities = a;
  const histogram = options.histogram ?? new OutcomeHistogram();
  const parallel = options.parallel ?? 1;
  if (!Number.isSafeInteger(parallel) || parallel < 1)
    throw new RangeError(`parallel must be a positive integer, got ${parallel}`);
  const known = options.knownDivergences ?? [];
  const pair = (cmd: Cmd) => pairCommand(cmd, known, options.onKnownDivergence);
  const commands = fc.commands(
    commandArbitraries({ capabilities, reopen: false }).map((arb) => arb.map(pair)),
    {
      maxCommands: resolved.maxCommands,
      size: 'max',
      ...(resolved.replayPath === undefined ? {} : { replayPath: resolved.replayPath }),
    },
  );
  const limits = capabilities.byteLimits && b.byteLimits ? limitsArb : fc.constant({});
  const prelude = fc.array(createCommandArb(capabilities).map(pair), { minLength: 1, maxLength: 3 });
  const sequence = fc.tuple(limits, prelude, commands);
  const runSequence = async ([l, opening, cmds]: [Limits, Paired[], Iterable<Paired>]) => {
    const sessions: Session[] = [];
    let failure: unknown;
    try {
      sessions.push(await openSession(first, l), await openSession(second, l));
      const targets = sessions as readonly Target[];
      const model = new StorageModel(sessions[0]!.clock, l, capabilities);
      attachHistogram(model, histogram);
      await fc.asyncModelRun(() => ({ model, real: targets }), opening);
      await fc.asyncModelRun(() => ({ model, real: targets }), cmds);
      await auditAll(model, targets);
    } catch (err) {
      if (!(err instanceof KnownDivergenceMet)) failure = err;
    }
    // Tear down whatever was opened; a teardown failure must not hide the disagreement that caused it.
    for (const s of sessions) {
      try {
        await (s.instance.teardown !== undefined ? s.instance.teardown() : s.storage.close());
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== undefined) throw failure;
  };
  // Sequences are independent (each has its own pair of fresh instances), so several run at once: the backends spend
  // most of a short sequence opening and closing, waiting for I/O.
  const property = fc.asyncProperty(
    fc.array(sequence, { minLength: parallel, maxLength: parallel }),
    async (batch) => {
      await Promise.all(batch.map(runSequence));
    },
  );
  try {
    await fc.assert(property, fcParameters(resolved));
  } finally {
    if (resolved.verbose) console.log(`differential run outcomes:\n${histogram.format()}`);
  }
}

/** Registers {@link checkDifferential} as one vitest test. */
export function describeDifferential(
  name: string,
  first: StorageHarness,
  second: StorageHarness,
  options: DifferentialOptions = {},
): void {
  const resolved = resolveOptions(options);
  describe(`${name}: differential`, () => {
    it(
      'agrees with the other backend on every command sequence, valid and invalid',
      () => checkDifferential(first, second, options),
      resolved.timeout,
    );
  });
}
