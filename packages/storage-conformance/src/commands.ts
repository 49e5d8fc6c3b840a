import type { Storage } from '@streamkeep/storage';
import type fc from 'fast-check';
import { type ExpiryChoice, type OffsetChoice, STREAM_NAMES } from './arbitraries.js';
import { assertSameOutcome, capture, project } from './compare.js';
import type { ManualClock } from './harness.js';
import { histogramOf } from './histogram.js';
import type { Outcome, StorageModel } from './model.js';

// The commands of the model-based and the differential properties. Each one resolves its state-dependent choices
// (a message boundary, the producer's next sequence number, an existing stream's config) against the model, so a
// shrunk sequence replays deterministically, then applies one operation to the model and to every target. In a model
// run the target must return what the model returns; in a differential run the targets must agree with each other.
// After every mutation the streams it touched are compared right away (read-your-writes).

/** A backend a command runs against: its current storage and the clock the kit moves for it. */
export interface Target {
  readonly storage: Storage;
  readonly clock: ManualClock;
}

/** A model-run command (fast-check's `AsyncCommand` over the model and one session). */
export type Cmd = fc.AsyncCommand<StorageModel, Target>;

/** One resolved call: the model's answer (computed once, it advances the model) and the backend call. */
export interface Step<P> {
  expect(): Outcome<P>;
  call(storage: Storage): Promise<Outcome<P>>;
  /** A finer name for a success in the outcome histogram (`created`, `duplicate`, …). */
  refine?(value: P): string;
}

/** Types a step by its own result, then hands it over untyped. */
export function step<P>(s: Step<P>): Step<unknown> {
  return s as Step<unknown>;
}

export function q(s: string | undefined): string {
  return s === undefined ? 'undefined' : JSON.stringify(s);
}

export function mapOutcome<T, P>(o: Outcome<T>, f: (v: T) => P): Outcome<P> {
  return o.ok ? { ok: true, value: f(o.value) } : o;
}

export function expiryText(e: ExpiryChoice): string {
  if (e.ttlSeconds !== undefined) return `, ttl=${e.ttlSeconds}s`;
  if (e.expiresAt !== undefined) return `, expiresAt=+${e.expiresAt - Date.UTC(2026, 0, 1)}ms`;
  return '';
}

/** The base of every command: resolve, apply to the model and the targets, compare, then check what it touched. */
export abstract class Base implements Cmd {
  /** What state-dependent choices resolved to in the latest run (shown by `toString`). */
  protected resolved = '';
  /** The operation's name in the outcome histogram. */
  protected abstract readonly operation: string;
  check(): boolean {
    return true;
  }
  protected abstract describe(): string;
  protected abstract prepare(model: StorageModel): Step<unknown>;
  /**
   * The names whose state the command may change, compared right after it; `'all'` for operations that may cascade
   * over lineages (delete, clean-up). Reads return `[]`.
   */
  protected touched(): readonly string[] | 'all' {
    return [];
  }
  /** A successful run of this command renewed the touched stream's TTL at this instant (so a read renews nothing). */
  protected renews(_value: unknown): boolean {
    return false;
  }
  toString(): string {
    return this.resolved === '' ? this.describe() : `${this.describe()} /* ${this.resolved} */`;
  }

  run(model: StorageModel, real: Target): Promise<void> {
    return this.runOn(model, [real]);
  }

  /**
   * Runs against one target (compared with the model) or two (compared with each other; the model then only steers
   * the choices and its answers are not judged).
   */
  async runOn(model: StorageModel, targets: readonly Target[]): Promise<void> {
    const step = this.prepare(model);
    const expected = step.expect();
    const outcomes: Outcome<unknown>[] = [];
    for (const t of targets) outcomes.push(await step.call(t.storage));
    const [first, second] = outcomes as [Outcome<unknown>, Outcome<unknown> | undefined];
    const counted = second === undefined ? expected : first;
    histogramOf(model)?.add(
      this.operation,
      counted,
      counted.ok && step.refine !== undefined ? step.refine(counted.value as never) : undefined,
    );
    if (second === undefined) assertSameOutcome(this.toString(), expected, first);
    else assertSameOutcome(`${this.toString()}\n  (first backend vs second backend)`, first, second);
    const touched = this.touched();
    if (touched === 'all' || touched.length > 0) {
      const written = counted.ok && this.renews(counted.value) ? counted.value : undefined;
      await verifyTouched(model, targets, touched === 'all' ? STREAM_NAMES : touched, written);
    }
  }
}

/**
 * Read-your-writes: right after a mutation, `head` of every touched name; after a successful write, also a read of
 * what it wrote (from its `startOffset`, or the whole stream after a create). Such a write renewed any sliding TTL at
 * this very instant, so the read changes nothing; a full read after every write would cost a backend quadratic time
 * once streams hold megabytes (the end of every run reads everything once).
 */
async function verifyTouched(
  model: StorageModel,
  targets: readonly Target[],
  names: readonly string[],
  written: unknown,
): Promise<void> {
  for (const name of names) await new HeadCommand(name).runOn(model, targets);
  if (written === undefined || names.length !== 1 || model.streamOf(names[0]!)?.visible !== true) return;
  const start = (written as { startOffset?: unknown }).startOffset;
  const from: OffsetChoice = typeof start === 'string' ? { kind: 'raw', offset: start } : { kind: 'start' };
  await new ReadCommand(names[0]!, from, undefined).runOn(model, targets);
}

export class ReadCommand extends Base {
  protected readonly operation = 'read';
  constructor(
    readonly name: string,
    readonly from: OffsetChoice,
    readonly maxBytes: number | undefined,
  ) {
    super();
  }
  protected describe(): string {
    const from =
      this.from.kind === 'boundary'
        ? `boundary#${this.from.index}`
        : this.from.kind === 'raw'
          ? q(this.from.offset)
          : this.from.kind === 'start'
            ? '"-1"'
            : '"now"';
    return `read(${q(this.name)}, from=${from}${this.maxBytes === undefined ? '' : `, maxBytes=${this.maxBytes}`})`;
  }
  protected prepare(model: StorageModel): Step<unknown> {
    let from: string;
    if (this.from.kind === 'start') from = '-1';
    else if (this.from.kind === 'now') from = 'now';
    else if (this.from.kind === 'raw') from = this.from.offset;
    else {
      const b = model.boundariesOf(this.name);
      from = b[this.from.index % b.length]!;
      this.resolved = `from=${q(from)}`;
    }
    const options = this.maxBytes === undefined ? undefined : { maxBytes: this.maxBytes };
    const name = this.name;
    return step({
      expect: () => mapOutcome(model.read(name, from, options), project.read),
      call: (s) => capture(() => s.read(name, from, options), project.read),
    });
  }
}

export class HeadCommand extends Base {
  protected readonly operation = 'head';
  constructor(readonly name: string) {
    super();
  }
  protected describe(): string {
    return `head(${q(this.name)})`;
  }
  protected prepare(model: StorageModel): Step<unknown> {
    const name = this.name;
    return step({
      expect: () => mapOutcome(model.head(name), project.metadata),
      call: (s) => capture(() => s.head(name), project.metadata),
    });
  }
}

export class ExistsCommand extends Base {
  protected readonly operation = 'exists';
  constructor(readonly name: string) {
    super();
  }
  protected describe(): string {
    return `exists(${q(this.name)})`;
  }
  protected prepare(model: StorageModel): Step<unknown> {
    const name = this.name;
    return step({
      expect: () => model.exists(name),
      call: (s) => capture(() => s.exists(name), project.identity),
    });
  }
}

/** Subscribes and unsubscribes at once: only the access rule is compared (hints are the concurrency area's job). */
export class SubscribeCommand extends Base {
  protected readonly operation = 'subscribe';
  constructor(readonly name: string) {
    super();
  }
  protected describe(): string {
    return `subscribe(${q(this.name)})`;
  }
  protected prepare(model: StorageModel): Step<unknown> {
    const name = this.name;
    return step({
      expect: () => mapOutcome(model.head(name), () => true),
      call: (s) =>
        capture(
          () => s.subscribe(name, () => {}),
          (subscription) => {
            subscription.unsubscribe();
            return true;
          },
        ),
    });
  }
}

export class DeleteCommand extends Base {
  protected readonly operation = 'delete';
  constructor(readonly name: string) {
    super();
  }
  protected describe(): string {
    return `delete(${q(this.name)})`;
  }
  protected override touched(): 'all' {
    return 'all';
  }
  protected prepare(model: StorageModel): Step<unknown> {
    const name = this.name;
    return step({
      expect: () => mapOutcome(model.delete(name), project.delete),
      call: (s) => capture(() => s.delete(name), project.delete),
      refine: (v) => (v.softDeleted ? 'tombstoned' : 'removed'),
    });
  }
}

export class ListCommand extends Base {
  protected readonly operation = 'listStreams';
  constructor(readonly options: { prefix?: string; after?: string; limit?: number }) {
    super();
  }
  protected describe(): string {
    return `listStreams(${JSON.stringify(this.options)})`;
  }
  protected prepare(model: StorageModel): Step<unknown> {
    const options = this.options;
    return step({
      expect: () => mapOutcome(model.listStreams(options), project.list),
      call: (s) => capture(() => s.listStreams(options), project.list),
    });
  }
}

export class CleanupCommand extends Base {
  protected readonly operation = 'cleanupExpiredStreams';
  protected describe(): string {
    return 'cleanupExpiredStreams()';
  }
  protected override touched(): 'all' {
    return 'all';
  }
  protected prepare(model: StorageModel): Step<unknown> {
    return step({
      expect: () => model.cleanupExpiredStreams(),
      call: (s) => capture(() => s.cleanupExpiredStreams(), project.identity),
    });
  }
}

export class AdvanceTimeCommand extends Base {
  protected readonly operation = 'advanceTime';
  constructor(readonly ms: number) {
    super();
  }
  protected describe(): string {
    return `advanceTime(${this.ms}ms)`;
  }
  protected prepare(): Step<unknown> {
    throw new Error('unreachable: advanceTime overrides runOn');
  }
  override async runOn(model: StorageModel, targets: readonly Target[]): Promise<void> {
    // The model reads the first target's clock; every target's clock moves by the same step.
    const before = model.clock.now();
    for (const t of targets) if (t.clock.now() === before) t.clock.advance(this.ms);
    histogramOf(model)?.add(this.operation, { ok: true, value: undefined });
  }
}

/**
 * Compares every stream the kit can name, in full: head, the whole content from `-1`, and existence. Run after a
 * reopen and at the end of every sequence, so a divergence no random read happened to observe still fails.
 */
export async function auditAll(model: StorageModel, real: Target | readonly Target[]): Promise<void> {
  const targets = Array.isArray(real) ? (real as readonly Target[]) : [real as Target];
  for (const name of STREAM_NAMES) {
    await new HeadCommand(name).runOn(model, targets);
    await new ExistsCommand(name).runOn(model, targets);
    await new ReadCommand(name, { kind: 'start' }, undefined).runOn(model, targets);
  }
}

/**
 * Closes the storage and opens it again over the same state. A backend may sweep expired streams while opening;
 * whether it does is not observable by contract, so both sides are swept right after (the count is not compared).
 */
export class ReopenCommand extends Base {
  protected readonly operation = 'reopen';
  protected describe(): string {
    return 'reopen()';
  }
  protected prepare(): Step<unknown> {
    throw new Error('unreachable: reopen overrides run');
  }
  override async run(model: StorageModel, real: Target): Promise<void> {
    const session = real as Target & { reopen?: () => Promise<Storage> };
    if (session.reopen === undefined) throw new Error('reopen() needs a session whose harness can reopen');
    const storage = await session.reopen();
    model.cleanupExpiredStreams();
    await storage.cleanupExpiredStreams();
    await auditAll(model, real);
  }
  override runOn(model: StorageModel, targets: readonly Target[]): Promise<void> {
    if (targets.length !== 1) throw new Error('reopen() runs in model runs only');
    return this.run(model, targets[0]!);
  }
}
