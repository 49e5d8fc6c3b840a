import type { Clock, Storage } from '@streamkeep/storage';

/**
 * A clock the kit moves by hand. Pass it to the backend under test: every time-dependent rule (expiry, sliding TTL,
 * `createdAt` / `updatedAt`, producer pruning) must read it, so the kit can let time pass without sleeping.
 */
export class ManualClock implements Clock {
  #now: number;

  /** @param start epoch milliseconds; the default is a fixed instant so runs are reproducible. */
  constructor(start: number = ManualClock.DEFAULT_START) {
    this.#now = start;
  }

  /** 2026-01-01T00:00:00Z: the instant every kit run starts at. */
  static readonly DEFAULT_START = Date.UTC(2026, 0, 1);

  now(): number {
    return this.#now;
  }

  /** Moves time forward by `ms` (a clock never goes backwards). */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`cannot advance a clock by ${ms} ms`);
    this.#now += ms;
  }

  /** Jumps to the instant `ms`, which must not lie before the current one. */
  set(ms: number): void {
    if (!Number.isFinite(ms) || ms < this.#now) throw new RangeError(`cannot move a clock back to ${ms}`);
    this.#now = ms;
  }
}

/** What the kit hands to {@link StorageHarness.create} for each fresh instance. */
export interface HarnessContext {
  /** A {@link ManualClock} the kit controls; pass it to your backend. */
  readonly clock: Clock;
  /** Byte limits to configure; `{}` means unlimited. Only set when the backend declares `byteLimits`. */
  readonly limits: { readonly maxTotalBytes?: number; readonly maxStreamBytes?: number };
}

/** One fresh, isolated storage created by a harness. */
export interface HarnessInstance {
  readonly storage: Storage;
  /**
   * Durable backends: close the current storage and open a new one over the same persisted state (same clock and
   * limits); resolves to the new one.
   */
  reopen?(): Promise<Storage>;
  /** Close whichever storage is current and remove its state (temp dirs). */
  teardown?(): Promise<void>;
}

/**
 * How the kit obtains storages. `create` must return a fresh instance that shares no state with any other (a new
 * temporary directory per call for disk backends); the kit calls it once per property run, many times per test.
 */
export interface StorageHarness {
  create(context: HarnessContext): Promise<HarnessInstance>;
}

/** A created instance plus the bookkeeping the properties need: the clock and whichever storage is current. */
export interface Session {
  readonly clock: ManualClock;
  readonly limits: HarnessContext['limits'];
  readonly instance: HarnessInstance;
  /** The current storage (the latest one after {@link Session.reopen}). */
  storage: Storage;
  /** Whether {@link Session.reopen} is available. */
  readonly canReopen: boolean;
  reopen(): Promise<Storage>;
}

/** Creates an instance over a new {@link ManualClock}. */
export async function openSession(
  harness: StorageHarness,
  limits: HarnessContext['limits'] = {},
): Promise<Session> {
  const clock = new ManualClock();
  const instance = await harness.create({ clock, limits });
  const session: Session = {
    clock,
    limits,
    instance,
    storage: instance.storage,
    canReopen: typeof instance.reopen === 'function',
    async reopen() {
      if (instance.reopen === undefined) throw new Error('this harness provides no reopen()');
      session.storage = await instance.reopen();
      return session.storage;
    },
  };
  return session;
}

/** Runs `body` against a fresh session and always tears the instance down afterwards. */
export async function withSession<T>(
  harness: StorageHarness,
  limits: HarnessContext['limits'],
  body: (session: Session) => Promise<T>,
): Promise<T> {
  const session = await openSession(harness, limits);
  const teardown = async () => {
    if (session.instance.teardown !== undefined) await session.instance.teardown();
    else await session.storage.close();
  };
  let result: T;
  try {
    result = await body(session);
  } catch (err) {
    // A teardown failure must not hide the counterexample that caused it.
    await teardown().catch(() => {});
    throw err;
  }
  await teardown();
  return result;
}

/** Reads the capabilities of a storage the harness creates (one throwaway instance). */
export async function probeCapabilities(harness: StorageHarness): Promise<Storage['capabilities']> {
  return withSession(harness, {}, async (s) => ({ ...s.storage.capabilities }));
}
