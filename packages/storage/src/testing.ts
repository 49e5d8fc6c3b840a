import { isStorageError, type StorageError, type StorageErrorCode } from './errors.js';
import type { Clock } from './types.js';

// `@streamkeep/storage/testing`: the backend-neutral helpers that every backend's own tests otherwise write again —
// a clock moved by hand and the code a call rejects with. They live in the contract package (not in the conformance
// kit) so that any package can use them, including `@streamkeep/storage-memory`, which the kit itself tests against
// and therefore cannot depend on. The kit's `./helpers` re-exports them unchanged.
//
// No test runner is imported here (no vitest, no fast-check): the helpers throw plain `Error`s, which every runner
// reports as a failure. Nothing in this module is reached from the package's main entry, so production code that
// imports `@streamkeep/storage` never loads it.

/**
 * A {@link Clock} moved by hand. Pass it to the backend under test: every time-dependent rule (expiry, sliding TTL,
 * `createdAt` / `updatedAt`, producer-state pruning) must read it, so a test can let time pass without sleeping.
 *
 * @remarks
 * Time only moves forward, as the contract assumes of a clock: {@link ManualClock.advance} by a negative or
 * non-finite amount and {@link ManualClock.set} to an earlier instant throw `RangeError` (a test bug, not a
 * storage outcome). Nothing moves it but those two calls.
 *
 * @example
 * ```ts
 * const clock = new ManualClock();
 * const storage = new MemoryStorage({ clock });
 * await storage.createStream('s', { contentType: 'text/plain', ttlSeconds: 60 });
 * clock.advance(60_000); // the stream is now expired
 * ```
 */
export class ManualClock implements Clock {
  #now: number;

  /** @param start epoch milliseconds; the default is a fixed instant so runs are reproducible. */
  constructor(start: number = ManualClock.DEFAULT_START) {
    this.#now = start;
  }

  /** 2026-01-01T00:00:00Z: the instant a clock starts at unless told otherwise (every conformance-kit run does). */
  static readonly DEFAULT_START: number = Date.UTC(2026, 0, 1);

  /** The current instant, in epoch milliseconds. */
  now(): number {
    return this.#now;
  }

  /**
   * Moves time forward by `ms`.
   *
   * @throws `RangeError` when `ms` is negative or not finite (a clock never goes backwards).
   */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`cannot advance a clock by ${ms} ms`);
    this.#now += ms;
  }

  /**
   * Jumps to the instant `ms` (epoch milliseconds).
   *
   * @throws `RangeError` when `ms` lies before the current instant or is not finite.
   */
  set(ms: number): void {
    if (!Number.isFinite(ms) || ms < this.#now) throw new RangeError(`cannot move a clock back to ${ms}`);
    this.#now = ms;
  }
}

/**
 * What the helpers accept: a promise already made, or a function to call. Pass a function when the call may throw
 * synchronously (a programmer error such as a `TypeError`), so that the throw is captured like a rejection.
 */
type Call = Promise<unknown> | (() => unknown);

/** Awaits a call and reports whether it resolved or what it threw. */
async function settle(call: Call): Promise<{ ok: true } | { ok: false; err: unknown }> {
  try {
    await (typeof call === 'function' ? call() : call);
    return { ok: true };
  } catch (err) {
    return { ok: false, err };
  }
}

/**
 * The {@link StorageErrorCode} a call rejects with, or `undefined` when it resolves.
 *
 * @remarks
 * Recognises errors through {@link isStorageError} (the brand, not `instanceof`), so errors from another copy of this
 * package or from a third-party backend count. Anything thrown that is not a `StorageError` is rethrown as is: a
 * plain `Error` where a code was due is a bug to see, not a code to compare.
 *
 * @example
 * ```ts
 * expect(await codeOf(storage.head('missing'))).toBe('NOT_FOUND');
 * expect(await codeOf(storage.head('present'))).toBeUndefined();
 * ```
 */
export async function codeOf(call: Call): Promise<StorageErrorCode | undefined> {
  const outcome = await settle(call);
  if (outcome.ok) return undefined;
  if (isStorageError(outcome.err)) return outcome.err.code;
  throw outcome.err;
}

/**
 * Asserts that a call rejects with a `StorageError` of `code`, and returns that error (to check its `details`).
 *
 * @throws `Error` naming the expected code and what happened instead (it resolved, it rejected with another code, or
 * it threw something that is not a `StorageError`), with the original error as `cause`.
 *
 * @example
 * ```ts
 * const err = await expectCode(storage.append('s', { messages: [] }), 'EMPTY_APPEND');
 * ```
 */
export async function expectCode(call: Call, code: StorageErrorCode): Promise<StorageError> {
  const outcome = await settle(call);
  if (!outcome.ok && isStorageError(outcome.err, code)) return outcome.err;
  const got = outcome.ok
    ? 'it resolved'
    : isStorageError(outcome.err)
      ? `it rejected with ${outcome.err.code}`
      : `it threw ${String(outcome.err)}`;
  throw new Error(
    `expected a rejection with ${code}, but ${got}`,
    outcome.ok ? undefined : { cause: outcome.err },
  );
}
