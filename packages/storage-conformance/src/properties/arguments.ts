import {
  isStorageError,
  type Storage,
  type StorageCapabilities,
  type StorageErrorCode,
} from '@streamkeep/storage';
import { Base, type Step } from '../commands.js';
import { capture, ensure, project } from '../compare.js';
import { type StorageHarness, withSession } from '../harness.js';
import type { Outcome, StorageModel } from '../model.js';
import type { ConformanceOptions } from '../options.js';
import { ARGUMENT_CASES, type ArgumentAnswer, type ArgumentCase } from './argument-cases.js';

const CT = 'text/plain';
const ONE = [new Uint8Array([1])];

// The law for invalid arguments: the contract decides them before any stream is looked at — so the answer is the
// same for a live, missing, expired, closed or tombstoned name — and a rejected call leaves the storage exactly as it
// was. The cases themselves are in argument-cases.ts.

/** The states a named stream can be in; an invalid call must answer the same in each. */
export const NAME_STATES = ['live', 'closed', 'missing', 'expired', 'tombstone'] as const;

/** Sets up one stream per state (those the capabilities allow) and returns the name of each. */
async function setUp(storage: Storage, caps: StorageCapabilities, advance: (ms: number) => void) {
  const names: Partial<Record<(typeof NAME_STATES)[number], string>> = { missing: 'missing' };
  await storage.createStream('live', {
    contentType: CT,
    messages: ONE,
    ...(caps.expiry ? { ttlSeconds: 3600 } : {}),
  });
  names.live = 'live';
  await storage.createStream('closed', { contentType: CT, messages: ONE, closed: true });
  names.closed = 'closed';
  if (caps.expiry) {
    await storage.createStream('expired', {
      contentType: CT,
      messages: ONE,
      expiresAt: Date.UTC(2026, 0, 1) + 500,
    });
    names.expired = 'expired';
  }
  if (caps.forks) {
    await storage.createStream('tombstone', { contentType: CT, messages: ONE });
    await storage.createFork('tombstone-child', { source: 'tombstone' });
    await storage.delete('tombstone');
    names.tombstone = 'tombstone';
  }
  if (caps.producers)
    await storage.appendWithProducer('live', {
      producer: { id: 'p', epoch: 1, seq: 0 },
      messages: ONE,
      contentType: CT,
    });
  // Past the deadline of `expired`, and far enough that a wrongly renewed TTL would show in `head`.
  advance(1_000);
  return names;
}

/** Everything observable, read without renewing anything (`head`, `exists`, listings). */
async function observe(storage: Storage, caps: StorageCapabilities) {
  const names = [
    'live',
    'closed',
    'missing',
    'expired',
    'tombstone',
    'tombstone-child',
    'live-fork',
    'closed-fork',
  ];
  const out: unknown[] = [];
  for (const n of names) {
    out.push(await capture(() => storage.head(n), project.metadata));
    out.push(await capture(() => storage.exists(n), project.identity));
  }
  if (caps.listStreams) out.push(project.list(await storage.listStreams()));
  return JSON.stringify(out);
}

async function answerOf(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return 'resolved';
  } catch (err) {
    if (isStorageError(err)) return err.code;
    if (err instanceof TypeError) return 'TypeError';
    if (err instanceof RangeError) return 'RangeError';
    return `a ${(err as Error)?.name ?? typeof err}: ${String(err)}`;
  }
}

/**
 * Every invalid input class gets exactly the answer the contract states — the same for a live, closed, missing,
 * expired or tombstoned name — and changes nothing: no stream, message, TTL or producer state moves and no
 * subscriber is woken. Exhaustive (every class on every state), not sampled.
 */
export async function checkInvalidArguments(
  harness: StorageHarness,
  _options?: ConformanceOptions,
): Promise<void> {
  for (const state of NAME_STATES) {
    await withSession(harness, {}, async (session) => {
      const { storage } = session;
      const caps = storage.capabilities;
      const names = await setUp(storage, caps, (ms) => session.clock.advance(ms));
      const name = names[state];
      if (name === undefined) return; // the state needs a capability this backend does not have
      let hints = 0;
      const subscriptions = [];
      for (const n of ['live', 'closed']) subscriptions.push(await storage.subscribe(n, () => (hints += 1)));
      let before = await observe(storage, caps);
      for (const c of ARGUMENT_CASES) {
        const label = `${c.method}: ${c.title} (on a ${state} stream)`;
        const expected: ArgumentAnswer = c.needs !== undefined && !caps[c.needs] ? 'NOT_SUPPORTED' : c.answer;
        const actual = await answerOf(() => c.call(storage, name));
        ensure(actual === expected, () => `${label}: expected ${expected}, got ${actual}`);
        const after = await observe(storage, caps);
        ensure(after === before, () => `${label} changed the storage`);
        ensure(hints === 0, () => `${label} woke a subscriber`);
        before = after;
      }
      for (const s of subscriptions) s.unsubscribe();
    });
  }
}

/** The answer as an outcome: a code, or (for the plain `TypeError` / `RangeError`) a value naming the exception. */
function answerOutcome(answer: string): Outcome<unknown> {
  if (answer === 'resolved') return { ok: true, value: 'resolved' };
  if (answer === 'TypeError' || answer === 'RangeError') return { ok: true, value: `throws ${answer}` };
  if (answer.startsWith('a ')) return { ok: true, value: `throws ${answer}` };
  return { ok: false, code: answer as StorageErrorCode };
}

/**
 * One invalid call from {@link ARGUMENT_CASES} on one of the kit's names, mixed into model and differential runs: it
 * must get the stated answer and change nothing (the commands after it would notice).
 */
export class InvalidCallCommand extends Base {
  protected readonly operation: string;
  constructor(
    readonly index: number,
    readonly name: string,
  ) {
    super();
    this.operation = ARGUMENT_CASES[index % ARGUMENT_CASES.length]!.method;
  }
  get case(): ArgumentCase {
    return ARGUMENT_CASES[this.index % ARGUMENT_CASES.length]!;
  }
  protected describe(): string {
    return `${this.case.method}(${JSON.stringify(this.name)}, <${this.case.title}>)`;
  }
  protected prepare(model: StorageModel): Step<unknown> {
    const c = this.case;
    const off = c.needs !== undefined && model.capabilities?.[c.needs] === false;
    const name = this.name;
    return {
      expect: () => (off ? { ok: false, code: 'NOT_SUPPORTED' } : answerOutcome(c.answer)),
      call: async (storage) => {
        try {
          await c.call(storage, name);
          return answerOutcome('resolved');
        } catch (err) {
          if (isStorageError(err)) return { ok: false, code: err.code, details: err.details };
          return answerOutcome(await answerOf(() => Promise.reject(err)));
        }
      },
      refine: (v) => String(v),
    };
  }
}
