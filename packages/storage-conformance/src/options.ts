/** Options of every `describe*` and `check*` function. */
export interface ConformanceOptions {
  /**
   * fast-check runs per property. Overridden by the `STREAMKEEP_CONFORMANCE_RUNS` environment variable.
   * @default 200
   */
  readonly numRuns?: number | undefined;
  /**
   * Pins fast-check's seed (printed on every failure). `STREAMKEEP_CONFORMANCE_SEED` pins it when this option is not
   * given; an explicit seed wins, so a replay recipe (`seed` + `path` + `replayPath`) replays the same run whatever
   * the environment says.
   */
  readonly seed?: number | undefined;
  /** Replays one counterexample: the `path` fast-check prints next to the seed. Needs `seed`. */
  readonly path?: string | undefined;
  /**
   * Replays a shrunk model-run counterexample together with `seed` and `path`: the value of the
   * `/*replayPath="…"*\/` comment fast-check prints after the command sequence.
   */
  readonly replayPath?: string | undefined;
  /** Per-test timeout of the vitest `it`, in milliseconds. @default 120000 */
  readonly timeout?: number | undefined;
  /** Commands per model run (upper bound). @default 80 */
  readonly maxCommands?: number | undefined;
  /**
   * Print every generated value of a failing run, not only the shrunk one, and after each model or differential
   * property the histogram of outcomes (results and error codes per operation) it produced. @default false
   */
  readonly verbose?: boolean | undefined;
  /**
   * Shrink a failing input to a minimal counterexample before reporting it. `false` reports the first failing input
   * as found: whether a backend fails does not change, only the report (the kit's mutant suite uses it to save time).
   * @default true
   */
  readonly shrink?: boolean | undefined;
}

/** {@link ConformanceOptions} with defaults and environment overrides applied. */
export interface ResolvedOptions {
  readonly numRuns: number;
  readonly seed: number | undefined;
  readonly path: string | undefined;
  readonly replayPath: string | undefined;
  readonly timeout: number;
  readonly maxCommands: number;
  readonly verbose: boolean;
  readonly shrink: boolean;
}

export const RUNS_ENV = 'STREAMKEEP_CONFORMANCE_RUNS';
export const SEED_ENV = 'STREAMKEEP_CONFORMANCE_SEED';

function envInt(name: string): number | undefined {
  const raw = typeof process === 'undefined' ? undefined : process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value))
    throw new RangeError(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  return value;
}

/**
 * Applies defaults and the environment variables. `STREAMKEEP_CONFORMANCE_RUNS` wins over `numRuns`, so a CI job can
 * raise the run count without code changes; `STREAMKEEP_CONFORMANCE_SEED` only fills in a `seed` the options do not
 * give, so an explicit replay recipe is never silently run under another seed.
 */
export function resolveOptions(options: ConformanceOptions = {}): ResolvedOptions {
  const numRuns = envInt(RUNS_ENV) ?? options.numRuns ?? 200;
  if (numRuns < 1) throw new RangeError(`numRuns must be at least 1, got ${numRuns}`);
  if ((options.path !== undefined || options.replayPath !== undefined) && options.seed === undefined)
    throw new RangeError('replaying a counterexample (path, replayPath) needs the seed it was found with');
  return {
    numRuns,
    seed: options.seed ?? envInt(SEED_ENV),
    path: options.path,
    replayPath: options.replayPath,
    timeout: options.timeout ?? 120_000,
    maxCommands: options.maxCommands ?? 80,
    verbose: options.verbose ?? false,
    shrink: options.shrink ?? true,
  };
}

/** The fast-check parameters of one property; `runs` scales the run count for the heavier properties. */
export function fcParameters(options: ResolvedOptions, runs: number = options.numRuns) {
  return {
    numRuns: runs,
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.path === undefined ? {} : { path: options.path }),
    verbose: options.verbose ? 1 : 0,
    endOnFailure: !options.shrink,
  } as const;
}
