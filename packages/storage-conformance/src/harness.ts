import type { Clock, Storage } from '@streamkeep/storage';
import { ManualClock } from '@streamkeep/storage/testing';

// The clock the kit moves by hand lives in the contract package (`@streamkeep/storage/testing`), so that backends'
// own tests can use it without depending on the kit; it stays exported from here for the kit's users.
export { ManualClock };

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
