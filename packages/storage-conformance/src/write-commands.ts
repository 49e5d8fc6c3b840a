import { formatOffset, type Storage } from '@streamkeep/storage';
import { CONTENT_TYPES, type ExpiryChoice } from './arbitraries.js';
import { Base, expiryText, mapOutcome, q, type Step, step } from './commands.js';
import { capture, formatMessages, project } from './compare.js';
import type { StorageModel } from './model.js';

// The commands that write: create, fork, append, close and producer append. Each lists the stream it touches, so the
// base class compares that stream right after it (read-your-writes).

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

/** A create's options: random ones, or (`match`) the existing stream's own config and closure, re-cased. */
export type CreateMode = 'random' | 'match';

export class CreateCommand extends Base {
  protected readonly operation = 'createStream';
  constructor(
    readonly name: string,
    readonly contentType: string,
    readonly expiry: ExpiryChoice,
    readonly closed: boolean,
    readonly messages: Uint8Array[],
    readonly conflictingExpiry: boolean,
    readonly mode: CreateMode = 'random',
  ) {
    super();
  }
  protected describe(): string {
    if (this.mode === 'match')
      return `createStream(${q(this.name)}, <its own config>, ${formatMessages(this.messages)})`;
    return `createStream(${q(this.name)}, ct=${q(this.contentType)}${expiryText(this.expiry)}${
      this.conflictingExpiry ? ', ttl+expiresAt' : ''
    }${this.closed ? ', closed' : ''}, ${formatMessages(this.messages)})`;
  }
  protected override touched(): readonly string[] {
    return [this.name];
  }
  protected override renews(value: { created: boolean }): boolean {
    return value.created;
  }
  protected prepare(model: StorageModel): Step<unknown> {
    let options: Parameters<Storage['createStream']>[1] = {
      contentType: this.contentType,
      ...this.expiry,
      ...(this.conflictingExpiry ? { ttlSeconds: 1, expiresAt: Date.UTC(2026, 0, 2) } : {}),
      closed: this.closed,
      messages: this.messages,
    };
    const existing = this.mode === 'match' ? model.streamOf(this.name) : undefined;
    if (existing !== undefined) {
      const c = existing.config;
      options = {
        contentType: c.contentType.toUpperCase(),
        ...(c.ttlSeconds !== null ? { ttlSeconds: c.ttlSeconds } : {}),
        ...(c.ttlSeconds === null && c.expiresAt !== null ? { expiresAt: c.expiresAt } : {}),
        closed: existing.closed,
        messages: this.messages,
      };
      this.resolved = `ct=${q(options.contentType)}${expiryText(options as ExpiryChoice)}, closed=${existing.closed}`;
    }
    const name = this.name;
    return step({
      expect: () => mapOutcome(model.createStream(name, options), project.create),
      call: (s) => capture(() => s.createStream(name, options), project.create),
      refine: (v) => (v.created ? 'created' : 'existing'),
    });
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
  protected readonly operation = 'createFork';
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
  protected override touched(): readonly string[] {
    return [this.name];
  }
  protected override renews(value: { created: boolean }): boolean {
    return value.created;
  }
  protected prepare(model: StorageModel): Step<unknown> {
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
    const name = this.name;
    return step({
      expect: () => mapOutcome(model.createFork(name, options), project.create),
      call: (s) => capture(() => s.createFork(name, options), project.create),
      refine: (v) => (v.created ? 'created' : 'existing'),
    });
  }
}

export class AppendCommand extends Base {
  protected readonly operation = 'append';
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
  protected override touched(): readonly string[] {
    return [this.name];
  }
  protected override renews(): boolean {
    return true;
  }
  protected prepare(model: StorageModel): Step<unknown> {
    const request = {
      messages: this.messages,
      contentType: resolveContentType(model, this.name, this.contentType),
      seq: this.seq,
      close: this.close,
    };
    const name = this.name;
    return step({
      expect: () => mapOutcome(model.append(name, request), project.append),
      call: (s) => capture(() => s.append(name, request), project.append),
    });
  }
}

export class CloseCommand extends Base {
  protected readonly operation = 'closeStream';
  constructor(
    readonly name: string,
    readonly seq: string | undefined,
  ) {
    super();
  }
  protected describe(): string {
    return `closeStream(${q(this.name)}${this.seq === undefined ? '' : `, seq=${q(this.seq)}`})`;
  }
  protected override touched(): readonly string[] {
    return [this.name];
  }
  protected override renews(): boolean {
    return true;
  }
  protected prepare(model: StorageModel): Step<unknown> {
    const options = this.seq === undefined ? undefined : { seq: this.seq };
    const name = this.name;
    return step({
      expect: () => mapOutcome(model.closeStream(name, options), project.append),
      call: (s) => capture(() => s.closeStream(name, options), project.append),
    });
  }
}

/**
 * A producer's sequence number: the next expected one (0 for a new epoch), a retry of the last accepted one, one
 * past the next (a gap), 0, or a given number.
 */
export type ProducerSeqChoice =
  | { readonly kind: 'next' }
  | { readonly kind: 'retry' }
  | { readonly kind: 'older'; readonly by: number }
  | { readonly kind: 'gap'; readonly by: number }
  | { readonly kind: 'raw'; readonly seq: number };

/** A producer's epoch: the stored one, the stored one plus one (a restart), minus one (a stale incarnation), or given. */
export type ProducerEpochChoice =
  | { readonly kind: 'stored' }
  | { readonly kind: 'bump' }
  | { readonly kind: 'stale' }
  | { readonly kind: 'raw'; readonly epoch: number };

export class ProducerAppendCommand extends Base {
  protected readonly operation = 'appendWithProducer';
  constructor(
    readonly name: string,
    readonly id: string,
    readonly epoch: ProducerEpochChoice,
    readonly producerSeq: ProducerSeqChoice,
    readonly messages: Uint8Array[],
    readonly contentType: ContentTypeChoice,
    readonly seq: string | undefined,
    readonly close: boolean,
  ) {
    super();
  }
  protected describe(): string {
    const epoch = this.epoch.kind === 'raw' ? String(this.epoch.epoch) : this.epoch.kind;
    const p = this.producerSeq;
    const pseq =
      p.kind === 'raw'
        ? String(p.seq)
        : p.kind === 'gap'
          ? `next+${p.by}`
          : p.kind === 'older'
            ? `last-${p.by}`
            : p.kind;
    return `appendWithProducer(${q(this.name)}, producer=${q(this.id)}/epoch=${epoch}/seq=${pseq}, ${formatMessages(
      this.messages,
    )}, ${ctText(this.contentType)}${this.seq === undefined ? '' : `, seq=${q(this.seq)}`}${this.close ? ', close' : ''})`;
  }
  protected override touched(): readonly string[] {
    return [this.name];
  }
  protected override renews(value: { duplicate: boolean }): boolean {
    return !value.duplicate;
  }
  protected prepare(model: StorageModel): Step<unknown> {
    const state = model.producerOf(this.name, this.id);
    const stored = state?.epoch ?? 0;
    const epoch =
      this.epoch.kind === 'raw'
        ? this.epoch.epoch
        : this.epoch.kind === 'bump'
          ? stored + 1
          : this.epoch.kind === 'stale'
            ? Math.max(0, stored - 1)
            : stored;
    const fresh = state === undefined || epoch !== state.epoch;
    const next = fresh ? 0 : state.lastSeq + 1;
    const p = this.producerSeq;
    const seq =
      p.kind === 'raw'
        ? p.seq
        : p.kind === 'next'
          ? next
          : p.kind === 'gap'
            ? next + p.by
            : p.kind === 'older'
              ? Math.max(0, (state?.lastSeq ?? 0) - p.by)
              : (state?.lastSeq ?? 0);
    this.resolved = `epoch=${epoch}, seq=${seq}`;
    const request = {
      producer: { id: this.id, epoch, seq },
      messages: this.messages,
      contentType: resolveContentType(model, this.name, this.contentType),
      seq: this.seq,
      close: this.close,
    };
    const name = this.name;
    return step({
      expect: () => mapOutcome(model.appendWithProducer(name, request), project.producer),
      call: (s) => capture(() => s.appendWithProducer(name, request), project.producer),
      refine: (v) => (v.duplicate ? 'duplicate' : 'accepted'),
    });
  }
}
