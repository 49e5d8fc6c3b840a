import type { StorageCapabilities } from '@streamkeep/storage';
import { formatOffset } from '@streamkeep/storage';
import fc from 'fast-check';
import {
  CONTENT_TYPES,
  contentTypeArb,
  type ExpiryChoice,
  expiryArb,
  maxBytesArb,
  messagesArb,
  nonEmptyMessagesArb,
  type OffsetChoice,
  offsetChoiceArb,
  optionalStreamSeqArb,
  producerIdArb,
  STREAM_NAMES,
  streamNameArb,
  timeStepArb,
} from './arbitraries.js';
import { assertSameOutcome, capture, formatMessages, project } from './compare.js';
import type { Session } from './harness.js';
import type { Outcome, StorageModel } from './model.js';

// The commands of the model-based property. Each one applies an operation to the model and to the backend and
// requires the same value or the same error code. Choices that depend on the state (a message boundary, the producer's
// next sequence number) are stored as indexes or intents and resolved against the model at run time, so a shrunk
// sequence replays deterministically; `toString` prints the intent and, after a run, what it resolved to.

type Cmd = fc.AsyncCommand<StorageModel, Session>;

function q(s: string | undefined): string {
  return s === undefined ? 'undefined' : JSON.stringify(s);
}

function mapOutcome<T, P>(o: Outcome<T>, f: (v: T) => P): Outcome<P> {
  return o.ok ? { ok: true, value: f(o.value) } : o;
}

function expiryText(e: ExpiryChoice): string {
  if (e.ttlSeconds !== undefined) return `, ttl=${e.ttlSeconds}s`;
  if (e.expiresAt !== undefined) return `, expiresAt=+${e.expiresAt - Date.UTC(2026, 0, 1)}ms`;
  return '';
}

abstract class Base implements Cmd {
  /** What state-dependent choices resolved to in the latest run (shown by `toString`). */
  protected resolved = '';
  check(): boolean {
    return true;
  }
  abstract run(model: StorageModel, real: Session): Promise<void>;
  protected abstract describe(): string;
  toString(): string {
    return this.resolved === '' ? this.describe() : `${this.describe()} /* ${this.resolved} */`;
  }
}

/** How an append names its content type: the stream's own (maybe re-cased), none, or a given one. */
export type ContentTypeChoice =
  | { readonly kind: 'stream'; readonly upper: boolean }
  | { readonly kind: 'none' }
  | { readonly kind: 'raw'; readonly value: string };

function resolveContentType(
  model: StorageModel,
  name: string,
  choice: ContentTypeChoice,
): string | undefined {
  if (choice.kind === 'none') return undefined;
  if (choice.kind === 'raw') return choice.value;
  const ct = model.contentTypeOf(name) ?? 'text/plain';
  return choice.upper ? `${ct.toUpperCase()}; charset=utf-8` : ct;
}

function ctText(choice: ContentTypeChoice): string {
  if (choice.kind === 'none') return 'ct=none';
  if (choice.kind === 'raw') return `ct=${q(choice.value)}`;
  return choice.upper ? 'ct=STREAM' : 'ct=stream';
}

export class CreateCommand extends Base {
  constructor(
    readonly name: string,
    readonly contentType: string,
    readonly expiry: ExpiryChoice,
    readonly closed: boolean,
    readonly messages: Uint8Array[],
    readonly conflictingExpiry: boolean,
  ) {
    super();
  }
  protected describe(): string {
    return `createStream(${q(this.name)}, ct=${q(this.contentType)}${expiryText(this.expiry)}${
      this.conflictingExpiry ? ', ttl+expiresAt' : ''
    }${this.closed ? ', closed' : ''}, ${formatMessages(this.messages)})`;
  }
  async run(model: StorageModel, real: Session): Promise<void> {
    const options = {
      contentType: this.contentType,
      ...this.expiry,
      ...(this.conflictingExpiry ? { ttlSeconds: 1, expiresAt: Date.UTC(2026, 0, 2) } : {}),
      closed: this.closed,
      messages: this.messages,
    };
    const expected = mapOutcome(model.createStream(this.name, options), project.create);
    const actual = await capture(() => real.storage.createStream(this.name, options), project.create);
    assertSameOutcome(this.toString(), expected, actual);
  }
}

/** Where a fork branches: the default (source tail), `-1`, one of the source's boundaries, or beyond the tail. */
export type ForkOffsetChoice =
  | { readonly kind: 'default' }
  | { readonly kind: 'start' }
  | { readonly kind: 'boundary'; readonly index: number }
  | { readonly kind: 'beyond' }
  | { readonly kind: 'now' };

export class ForkCommand extends Base {
  constructor(
    readonly name: string,
    readonly source: string,
    readonly offset: ForkOffsetChoice,
    readonly subOffset: number,
    readonly contentType: 'inherit' | 'same' | 'other',
    readonly expiry: ExpiryChoice,
    readonly closed: boolean,
    readonly messages: Uint8Array[],
  ) {
    super();
  }
  protected describe(): string {
    const at = this.offset.kind === 'boundary' ? `boundary#${this.offset.index}` : this.offset.kind;
    return `createFork(${q(this.name)}, source=${q(this.source)}, offset=${at}, subOffset=${this.subOffset}, ct=${
      this.contentType
    }${expiryText(this.expiry)}${this.closed ? ', closed' : ''}, ${formatMessages(this.messages)})`;
  }
  async run(model: StorageModel, real: Session): Promise<void> {
    let offset: string | undefined;
    if (this.offset.kind === 'start') offset = '-1';
    else if (this.offset.kind === 'beyond') offset = formatOffset(99, 999);
    else if (this.offset.kind === 'now') offset = 'now';
    else if (this.offset.kind === 'boundary') {
      const b = model.boundariesOf(this.source);
      offset = b[this.offset.index % b.length];
    }
    const sourceType = model.contentTypeOf(this.source) ?? 'text/plain';
    const contentType =
      this.contentType === 'inherit'
        ? undefined
        : this.contentType === 'same'
          ? sourceType.toUpperCase()
          : (CONTENT_TYPES.find((t) => t !== sourceType) ?? 'text/plain');
    this.resolved = `offset=${q(offset)}, ct=${q(contentType)}`;
    const options = {
      source: this.source,
      offset,
      subOffset: this.subOffset,
      contentType,
      ...this.expiry,
      closed: this.closed,
      messages: this.messages,
    };
    const expected = mapOutcome(model.createFork(this.name, options), project.create);
    const actual = await capture(() => real.storage.createFork(this.name, options), project.create);
    assertSameOutcome(this.toString(), expected, actual);
  }
}

export class AppendCommand extends Base {
  constructor(
    readonly name: string,
    readonly messages: Uint8Array[],
    readonly contentType: ContentTypeChoice,
    readonly seq: string | undefined,
    readonly close: boolean,
  ) {
    super();
  }
  protected describe(): string {
    return `append(${q(this.name)}, ${formatMessages(this.messages)}, ${ctText(this.contentType)}${
      this.seq === undefined ? '' : `, seq=${q(this.seq)}`
    }${this.close ? ', close' : ''})`;
  }
  async run(model: StorageModel, real: Session): Promise<void> {
    const request = {
      messages: this.messages,
      contentType: resolveContentType(model, this.name, this.contentType),
      seq: this.seq,
      close: this.close,
    };
    const expected = mapOutcome(model.append(this.name, request), project.append);
    const actual = await capture(() => real.storage.append(this.name, request), project.append);
    assertSameOutcome(this.toString(), expected, actual);
  }
}

export class CloseCommand extends Base {
  constructor(
    readonly name: string,
    readonly seq: string | undefined,
  ) {
    super();
  }
  protected describe(): string {
    return `closeStream(${q(this.name)}${this.seq === undefined ? '' : `, seq=${q(this.seq)}`})`;
  }
  async run(model: StorageModel, real: Session): Promise<void> {
    const options = this.seq === undefined ? undefined : { seq: this.seq };
    const expected = mapOutcome(model.closeStream(this.name, options), project.append);
    const actual = await capture(() => real.storage.closeStream(this.name, options), project.append);
    assertSameOutcome(this.toString(), expected, actual);
  }
}

/** A producer's sequence number: the next expected one, a retry of the last accepted one, or a given number. */
export type ProducerSeqChoice =
  | { readonly kind: 'next' }
  | { readonly kind: 'retry' }
  | { readonly kind: 'raw'; readonly seq: number };

export class ProducerAppendCommand extends Base {
  constructor(
    readonly name: string,
    readonly id: string,
    readonly epoch: { readonly kind: 'stored' } | { readonly kind: 'raw'; readonly epoch: number },
    readonly producerSeq: ProducerSeqChoice,
    readonly messages: Uint8Array[],
    readonly contentType: ContentTypeChoice,
    readonly seq: string | undefined,
    readonly close: boolean,
  ) {
    super();
  }
  protected describe(): string {
    const epoch = this.epoch.kind === 'stored' ? 'stored' : String(this.epoch.epoch);
    const pseq = this.producerSeq.kind === 'raw' ? String(this.producerSeq.seq) : this.producerSeq.kind;
    return `appendWithProducer(${q(this.name)}, producer=${q(this.id)}/epoch=${epoch}/seq=${pseq}, ${formatMessages(
      this.messages,
    )}, ${ctText(this.contentType)}${this.seq === undefined ? '' : `, seq=${q(this.seq)}`}${this.close ? ', close' : ''})`;
  }
  async run(model: StorageModel, real: Session): Promise<void> {
    const state = model.producerOf(this.name, this.id);
    const epoch = this.epoch.kind === 'raw' ? this.epoch.epoch : (state?.epoch ?? 0);
    const seq =
      this.producerSeq.kind === 'raw'
        ? this.producerSeq.seq
        : this.producerSeq.kind === 'next'
          ? state === undefined
            ? 0
            : state.lastSeq + 1
          : (state?.lastSeq ?? 0);
    this.resolved = `epoch=${epoch}, seq=${seq}`;
    const request = {
      producer: { id: this.id, epoch, seq },
      messages: this.messages,
      contentType: resolveContentType(model, this.name, this.contentType),
      seq: this.seq,
      close: this.close,
    };
    const expected = mapOutcome(model.appendWithProducer(this.name, request), project.producer);
    const actual = await capture(() => real.storage.appendWithProducer(this.name, request), project.producer);
    assertSameOutcome(this.toString(), expected, actual);
  }
}

export class ReadCommand extends Base {
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
  async run(model: StorageModel, real: Session): Promise<void> {
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
    const expected = mapOutcome(model.read(this.name, from, options), project.read);
    const actual = await capture(() => real.storage.read(this.name, from, options), project.read);
    assertSameOutcome(this.toString(), expected, actual);
  }
}

export class HeadCommand extends Base {
  constructor(readonly name: string) {
    super();
  }
  protected describe(): string {
    return `head(${q(this.name)})`;
  }
  async run(model: StorageModel, real: Session): Promise<void> {
    const expected = mapOutcome(model.head(this.name), project.metadata);
    const actual = await capture(() => real.storage.head(this.name), project.metadata);
    assertSameOutcome(this.toString(), expected, actual);
  }
}

export class ExistsCommand extends Base {
  constructor(readonly name: string) {
    super();
  }
  protected describe(): string {
    return `exists(${q(this.name)})`;
  }
  async run(model: StorageModel, real: Session): Promise<void> {
    const actual = await capture(() => real.storage.exists(this.name), project.identity);
    assertSameOutcome(this.toString(), model.exists(this.name), actual);
  }
}

/** Subscribes and unsubscribes at once: only the access rule is compared (hints are the concurrency area's job). */
export class SubscribeCommand extends Base {
  constructor(readonly name: string) {
    super();
  }
  protected describe(): string {
    return `subscribe(${q(this.name)})`;
  }
  async run(model: StorageModel, real: Session): Promise<void> {
    const expected = mapOutcome(model.head(this.name), () => true);
    const actual = await capture(
      () => real.storage.subscribe(this.name, () => {}),
      (subscription) => {
        subscription.unsubscribe();
        return true;
      },
    );
    assertSameOutcome(this.toString(), expected, actual);
  }
}

export class DeleteCommand extends Base {
  constructor(readonly name: string) {
    super();
  }
  protected describe(): string {
    return `delete(${q(this.name)})`;
  }
  async run(model: StorageModel, real: Session): Promise<void> {
    const expected = mapOutcome(model.delete(this.name), project.delete);
    const actual = await capture(() => real.storage.delete(this.name), project.delete);
    assertSameOutcome(this.toString(), expected, actual);
  }
}

export class ListCommand extends Base {
  constructor(readonly options: { prefix?: string; after?: string; limit?: number }) {
    super();
  }
  protected describe(): string {
    return `listStreams(${JSON.stringify(this.options)})`;
  }
  async run(model: StorageModel, real: Session): Promise<void> {
    const expected = mapOutcome(model.listStreams(this.options), project.list);
    const actual = await capture(() => real.storage.listStreams(this.options), project.list);
    assertSameOutcome(this.toString(), expected, actual);
  }
}

export class CleanupCommand extends Base {
  protected describe(): string {
    return 'cleanupExpiredStreams()';
  }
  async run(model: StorageModel, real: Session): Promise<void> {
    const actual = await capture(() => real.storage.cleanupExpiredStreams(), project.identity);
    assertSameOutcome(this.toString(), model.cleanupExpiredStreams(), actual);
  }
}

export class AdvanceTimeCommand extends Base {
  constructor(readonly ms: number) {
    super();
  }
  protected describe(): string {
    return `advanceTime(${this.ms}ms)`;
  }
  async run(_model: StorageModel, real: Session): Promise<void> {
    // The model reads the same clock, so moving it moves both.
    real.clock.advance(this.ms);
  }
}

/**
 * Compares every stream the kit can name, in full: head, the whole content from `-1`, and existence. Run after a
 * reopen and at the end of every sequence, so a divergence no random read happened to observe still fails.
 */
export async function auditAll(model: StorageModel, real: Session): Promise<void> {
  for (const name of STREAM_NAMES) {
    await new HeadCommand(name).run(model, real);
    await new ExistsCommand(name).run(model, real);
    await new ReadCommand(name, { kind: 'start' }, undefined).run(model, real);
  }
}

/**
 * Closes the storage and opens it again over the same state. A backend may sweep expired streams while opening;
 * whether it does is not observable by contract, so both sides are swept right after (the count is not compared).
 */
export class ReopenCommand extends Base {
  protected describe(): string {
    return 'reopen()';
  }
  async run(model: StorageModel, real: Session): Promise<void> {
    const storage = await real.reopen();
    model.cleanupExpiredStreams();
    await storage.cleanupExpiredStreams();
    await auditAll(model, real);
  }
}

const contentTypeChoiceArb: fc.Arbitrary<ContentTypeChoice> = fc.oneof(
  { weight: 8, arbitrary: fc.boolean().map((upper) => ({ kind: 'stream' as const, upper })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 1, arbitrary: contentTypeArb.map((value) => ({ kind: 'raw' as const, value })) },
);

const closedArb = fc.boolean().chain((b) => (b ? fc.boolean() : fc.constant(false)));

/** Which commands a run may generate. */
export interface CommandSelection {
  readonly capabilities: StorageCapabilities;
  /** Include {@link ReopenCommand} (durable backends with a `reopen`). */
  readonly reopen: boolean;
}

/** A {@link CreateCommand}: any name, type, expiry (when supported), closed flag and initial messages. */
export function createCommandArb(caps: StorageCapabilities): fc.Arbitrary<Cmd> {
  return fc
    .tuple(
      streamNameArb,
      fc.constantFrom(...CONTENT_TYPES),
      caps.expiry ? expiryArb : fc.constant({}),
      closedArb,
      messagesArb,
      fc.nat(19).map((n) => n === 0),
    )
    .map(([n, ct, e, c, m, conflict]) => new CreateCommand(n, ct, e, c, m, conflict));
}

/** The weighted command arbitraries of the model-based property, gated on the backend's capabilities. */
export function commandArbitraries(selection: CommandSelection): fc.Arbitrary<Cmd>[] {
  const caps = selection.capabilities;
  const expiry = caps.expiry ? expiryArb : fc.constant({});
  const weighted = (weight: number, arb: fc.Arbitrary<Cmd>): fc.Arbitrary<Cmd>[] =>
    Array.from({ length: weight }, () => arb);
  const out: fc.Arbitrary<Cmd>[] = [
    ...weighted(7, createCommandArb(caps)),
    ...weighted(
      6,
      fc
        .tuple(
          streamNameArb,
          fc.oneof(
            { weight: 9, arbitrary: nonEmptyMessagesArb },
            { weight: 1, arbitrary: fc.constant<Uint8Array[]>([]) },
          ),
          contentTypeChoiceArb,
          optionalStreamSeqArb,
          fc.nat(7).map((n) => n === 0),
        )
        .map(([n, m, ct, s, c]) => new AppendCommand(n, m, ct, s, c)),
    ),
    ...weighted(
      1,
      fc.tuple(streamNameArb, optionalStreamSeqArb).map(([n, s]) => new CloseCommand(n, s)),
    ),
    ...weighted(
      5,
      fc.tuple(streamNameArb, offsetChoiceArb, maxBytesArb).map(([n, f, b]) => new ReadCommand(n, f, b)),
    ),
    ...weighted(
      2,
      streamNameArb.map((n) => new HeadCommand(n)),
    ),
    ...weighted(
      1,
      streamNameArb.map((n) => new ExistsCommand(n)),
    ),
    ...weighted(
      1,
      streamNameArb.map((n) => new DeleteCommand(n)),
    ),
    ...weighted(
      1,
      streamNameArb.map((n) => new SubscribeCommand(n)),
    ),
    ...weighted(1, fc.constant(new CleanupCommand())),
    ...weighted(
      2,
      timeStepArb.map((ms) => new AdvanceTimeCommand(ms)),
    ),
  ];
  if (caps.producers) {
    const epochArb = fc.oneof(
      { weight: 4, arbitrary: fc.constant({ kind: 'stored' as const }) },
      {
        weight: 1,
        // -1 is malformed: INVALID_PRODUCER, checked before the stream is even looked up.
        arbitrary: fc.integer({ min: -1, max: 2 }).map((epoch) => ({ kind: 'raw' as const, epoch })),
      },
    );
    const pseqArb: fc.Arbitrary<ProducerSeqChoice> = fc.oneof(
      { weight: 5, arbitrary: fc.constant({ kind: 'next' as const }) },
      { weight: 3, arbitrary: fc.constant({ kind: 'retry' as const }) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 4 }).map((seq) => ({ kind: 'raw' as const, seq })) },
    );
    out.push(
      ...weighted(
        4,
        fc
          .tuple(
            streamNameArb,
            producerIdArb,
            epochArb,
            pseqArb,
            fc.oneof(
              { weight: 5, arbitrary: nonEmptyMessagesArb },
              { weight: 1, arbitrary: fc.constant<Uint8Array[]>([]) },
            ),
            contentTypeChoiceArb,
            optionalStreamSeqArb,
            fc.nat(7).map((n) => n === 0),
          )
          .map(([n, id, e, ps, m, ct, s, c]) => new ProducerAppendCommand(n, id, e, ps, m, ct, s, c)),
      ),
    );
  }
  if (caps.forks) {
    const forkOffsetArb: fc.Arbitrary<ForkOffsetChoice> = fc.oneof(
      { weight: 2, arbitrary: fc.constant({ kind: 'default' as const }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'start' as const }) },
      { weight: 3, arbitrary: fc.nat(8).map((index) => ({ kind: 'boundary' as const, index })) },
      { weight: 1, arbitrary: fc.constantFrom({ kind: 'beyond' as const }, { kind: 'now' as const }) },
    );
    out.push(
      ...weighted(
        3,
        fc
          .tuple(
            streamNameArb,
            streamNameArb,
            forkOffsetArb,
            fc.oneof(
              { weight: 4, arbitrary: fc.constant(0) },
              { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) },
            ),
            fc.constantFrom('inherit' as const, 'inherit' as const, 'same' as const, 'other' as const),
            expiry,
            closedArb,
            messagesArb,
          )
          .map(([n, src, o, sub, ct, e, c, m]) => new ForkCommand(n, src, o, sub, ct, e, c, m)),
      ),
    );
  }
  if (caps.listStreams) {
    const listOptionsArb = fc.oneof(
      { weight: 3, arbitrary: fc.constant({}) },
      {
        weight: 2,
        arbitrary: fc.record(
          {
            prefix: fc.constantFrom('a', '\uFFFD'),
            after: fc.constantFrom(...STREAM_NAMES),
            limit: fc.integer({ min: 0, max: 3 }),
          },
          { requiredKeys: [] },
        ),
      },
    );
    out.push(
      ...weighted(
        2,
        listOptionsArb.map((o) => new ListCommand(o)),
      ),
    );
  }
  if (selection.reopen) out.push(fc.constant(new ReopenCommand()));
  return out;
}
