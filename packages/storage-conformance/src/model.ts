import {
  type AppendResult,
  type Clock,
  type CreateStreamOptions,
  type CreateStreamResult,
  type DeleteResult,
  type ForkInfo,
  type ForkOptions,
  formatOffset,
  type ListStreamsOptions,
  type ProducerAppendResult,
  type ProducerIdentity,
  parseOffset,
  type ReadResult,
  type StorageCapabilities,
  StorageError,
  type StorageErrorCode,
  type StorageErrorDetails,
  type StreamConfig,
  type StreamMetadata,
} from '@streamkeep/storage';

// The reference model restates every rule of the contract on its own, on purpose without the contract's shared rule
// helpers (planCommit, decideProducer, checkStreamSeq, compareUtf8, …): a bug in those helpers would otherwise be
// copied into the model and every backend would agree with it.

/**
 * The outcome of one operation: a value, or the `code` of the `StorageError` it must reject with and, for the codes
 * whose `details` the contract documents, those details.
 */
export type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | {
      readonly ok: false;
      readonly code: StorageErrorCode;
      readonly details?: StorageErrorDetails | undefined;
    };

/** Seven days: idle producer state is forgotten after this. */
const PRODUCER_IDLE_MS = 7 * 24 * 60 * 60 * 1000;

interface ModelProducer {
  epoch: number;
  lastSeq: number;
  updatedAt: number;
}

interface ModelStream {
  readonly name: string;
  readonly contentType: string;
  readonly ttlSeconds: number | null;
  expiresAt: number | null;
  readonly createdClosed: boolean;
  /** The position of the first local message: (0, 0), or the fork offset. */
  readonly baseSeq: number;
  readonly baseBytes: number;
  readonly local: Uint8Array[];
  localBytes: number;
  readonly fork: ForkInfo | null;
  closed: boolean;
  lastSeq: string | null;
  readonly producers: Map<string, ModelProducer>;
  readonly createdAt: number;
  updatedAt: number | null;
  refCount: number;
  tombstone: boolean;
}

/** One message of a stream's logical content (inherited ancestors first, then its own). */
export interface ModelMessage {
  readonly offset: string;
  readonly data: Uint8Array;
}

/** The byte limits of a model; `undefined` is unlimited. */
export interface ModelLimits {
  readonly maxTotalBytes?: number | undefined;
  readonly maxStreamBytes?: number | undefined;
}

class Reject extends Error {
  constructor(
    readonly code: StorageErrorCode,
    readonly details?: StorageErrorDetails,
  ) {
    super(code);
  }
}

function fail(code: StorageErrorCode, details?: StorageErrorDetails): never {
  throw new Reject(code, details);
}

/** Byte-wise order of the UTF-8 encodings. */
function utf8Order(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function sizeOf(messages: readonly Uint8Array[]): number {
  let n = 0;
  for (const m of messages) n += m.byteLength;
  return n;
}

/** Text before the first `;`, trimmed, lower-cased; empty or non-header characters are invalid. */
function contentTypeOf(raw: string): string {
  const cut = raw.split(';')[0] ?? '';
  const value = cut.trim().toLowerCase();
  if (value === '' || /[^\t\x20-\x7e\x80-\xff]/.test(value)) fail('INVALID_CONTENT_TYPE');
  return value;
}

/**
 * A small, pure, obviously-correct reference implementation of the storage contract, driven by the same clock as the
 * backend under test. Every operation returns the value the backend must return, or the error code it must reject
 * with, and changes the model only on success.
 */
export class StorageModel {
  readonly #streams = new Map<string, ModelStream>();

  constructor(
    readonly clock: Clock,
    readonly limits: ModelLimits = {},
    readonly capabilities?: StorageCapabilities,
  ) {}

  // ----- helpers --------------------------------------------------------------------------------------------------

  #now(): number {
    return this.clock.now();
  }

  #expired(s: ModelStream): boolean {
    return s.expiresAt !== null && this.#now() >= s.expiresAt;
  }

  #tail(s: ModelStream): string {
    return formatOffset(s.baseSeq + s.local.length, s.baseBytes + s.localBytes);
  }

  #totalBytes(): number {
    let n = 0;
    for (const s of this.#streams.values()) n += s.localBytes;
    return n;
  }

  #access(name: string): ModelStream {
    const s = this.#streams.get(name);
    if (s === undefined) fail('NOT_FOUND');
    if (s.tombstone) fail('GONE');
    if (this.#expired(s)) fail('EXPIRED');
    return s;
  }

  #checkLimits(bytes: number, otherTotal: number, streamBytes: number): void {
    if (bytes === 0) return;
    const { maxTotalBytes, maxStreamBytes } = this.limits;
    if (maxTotalBytes !== undefined && otherTotal + bytes > maxTotalBytes) fail('STORAGE_LIMIT_EXCEEDED');
    if (maxStreamBytes !== undefined && streamBytes + bytes > maxStreamBytes) fail('STREAM_LIMIT_EXCEEDED');
  }

  #renew(s: ModelStream): void {
    if (s.ttlSeconds !== null) s.expiresAt = this.#now() + s.ttlSeconds * 1000;
  }

  #push(s: ModelStream, messages: readonly Uint8Array[]): void {
    for (const m of messages) {
      s.local.push(m.slice());
      s.localBytes += m.byteLength;
    }
  }

  /** Hard-removes a stream and releases its lineage: a tombstoned ancestor left without forks goes too. */
  #remove(s: ModelStream): void {
    this.#streams.delete(s.name);
    let fork = s.fork;
    while (fork !== null) {
      const parent = this.#streams.get(fork.source);
      if (parent === undefined) return;
      parent.refCount = Math.max(0, parent.refCount - 1);
      if (!parent.tombstone || parent.refCount > 0) return;
      this.#streams.delete(parent.name);
      fork = parent.fork;
    }
  }

  /** Decides what an existing entry means for a create or fork of the same name; returns it when it must be replaced. */
  #existing(
    name: string,
  ): { kind: 'none' } | { kind: 'replace'; old: ModelStream } | { kind: 'live'; s: ModelStream } {
    const s = this.#streams.get(name);
    if (s === undefined) return { kind: 'none' };
    if (this.#expired(s) || s.tombstone) {
      if (s.refCount > 0 || s.tombstone) fail('PATH_BLOCKED');
      return { kind: 'replace', old: s };
    }
    return { kind: 'live', s };
  }

  static #sameConfig(a: StreamConfig, b: StreamConfig): boolean {
    if (
      a.contentType !== b.contentType ||
      a.ttlSeconds !== b.ttlSeconds ||
      a.createdClosed !== b.createdClosed
    ) {
      return false;
    }
    return a.ttlSeconds !== null || a.expiresAt === b.expiresAt;
  }

  /** What a create or fork request is matched against: the config, with the stream's *current* closure (§5.1). */
  static #identity(s: ModelStream): StreamConfig {
    return { ...StorageModel.#config(s), createdClosed: s.closed };
  }

  static #config(s: ModelStream): StreamConfig {
    return {
      contentType: s.contentType,
      ttlSeconds: s.ttlSeconds,
      expiresAt: s.expiresAt,
      createdClosed: s.createdClosed,
    };
  }

  #run<T>(body: () => T): Outcome<T> {
    try {
      return { ok: true, value: body() };
    } catch (err) {
      if (err instanceof Reject)
        return err.details === undefined
          ? { ok: false, code: err.code }
          : { ok: false, code: err.code, details: err.details };
      throw err;
    }
  }

  // ----- queries the kit uses to steer commands -------------------------------------------------------------------

  /** The logical content of a stream (ancestors within their bounds, then its own), or `[]` when there is none. */
  messagesOf(name: string): ModelMessage[] {
    const s = this.#streams.get(name);
    return s === undefined ? [] : this.#logical(s);
  }

  #logical(s: ModelStream): ModelMessage[] {
    const out: ModelMessage[] = [];
    if (s.fork !== null) {
      const parent = this.#streams.get(s.fork.source);
      if (parent !== undefined) {
        const bound = s.fork.offset;
        for (const m of this.#logical(parent)) if (m.offset < bound) out.push(m);
      }
    }
    let seq = s.baseSeq;
    let bytes = s.baseBytes;
    for (const data of s.local) {
      out.push({ offset: formatOffset(seq, bytes), data });
      seq += 1;
      bytes += data.byteLength;
    }
    return out;
  }

  /** Every message boundary of a stream, tail included (`[ZERO]` when the stream does not exist). */
  boundariesOf(name: string): string[] {
    const s = this.#streams.get(name);
    if (s === undefined) return [formatOffset(0, 0)];
    return [...this.#logical(s).map((m) => m.offset), this.#tail(s)];
  }

  /** The stream's content type when it exists (tombstones and expired streams included). */
  contentTypeOf(name: string): string | undefined {
    return this.#streams.get(name)?.contentType;
  }

  /** True when the name holds any entry (visible, expired or tombstoned). */
  has(name: string): boolean {
    return this.#streams.has(name);
  }

  /** What the kit steers by: a stream's config, closure, lineage and visibility, or `undefined` when it has no entry. */
  streamOf(name: string):
    | {
        readonly config: StreamConfig;
        readonly closed: boolean;
        readonly fork: ForkInfo | null;
        readonly visible: boolean;
      }
    | undefined {
    const s = this.#streams.get(name);
    if (s === undefined) return undefined;
    return {
      config: StorageModel.#config(s),
      closed: s.closed,
      fork: s.fork,
      visible: !s.tombstone && !this.#expired(s),
    };
  }

  /** The stored producer state, for steering producer commands towards interesting sequence numbers. */
  producerOf(name: string, id: string): Readonly<ModelProducer> | undefined {
    return this.#streams.get(name)?.producers.get(id);
  }

  // ----- operations -------------------------------------------------------------------------------------------------

  createStream(name: string, options: CreateStreamOptions): Outcome<CreateStreamResult> {
    return this.#run(() => {
      const now = this.#now();
      const contentType = contentTypeOf(options.contentType);
      if (options.ttlSeconds !== undefined && options.expiresAt !== undefined) fail('CONFLICTING_EXPIRY');
      if (
        this.capabilities?.expiry === false &&
        (options.ttlSeconds !== undefined || options.expiresAt !== undefined)
      ) {
        fail('NOT_SUPPORTED');
      }
      const config: StreamConfig = {
        contentType,
        ttlSeconds: options.ttlSeconds ?? null,
        expiresAt:
          options.ttlSeconds !== undefined ? now + options.ttlSeconds * 1000 : (options.expiresAt ?? null),
        createdClosed: options.closed === true,
      };
      const existing = this.#existing(name);
      if (existing.kind === 'live') {
        const s = existing.s;
        // A root create matches only an existing root stream with an equal config: an existing fork has a lineage
        // the create does not ask for, so it is a mismatch whatever its config.
        if (s.fork !== null || !StorageModel.#sameConfig(StorageModel.#identity(s), config))
          fail('CONFIG_MISMATCH');
        return { created: false, nextOffset: this.#tail(s), closed: s.closed };
      }
      const messages = options.messages ?? [];
      const released = existing.kind === 'replace' ? existing.old.localBytes : 0;
      this.#checkLimits(sizeOf(messages), this.#totalBytes() - released, 0);
      if (existing.kind === 'replace') this.#remove(existing.old);
      const s = this.#newStream(name, config, 0, 0, null);
      this.#push(s, messages);
      return { created: true, nextOffset: this.#tail(s), closed: s.closed };
    });
  }

  #newStream(name: string, config: StreamConfig, baseSeq: number, baseBytes: number, fork: ForkInfo | null) {
    const s: ModelStream = {
      name,
      contentType: config.contentType,
      ttlSeconds: config.ttlSeconds,
      expiresAt: config.expiresAt,
      createdClosed: config.createdClosed,
      baseSeq,
      baseBytes,
      local: [],
      localBytes: 0,
      fork,
      closed: config.createdClosed,
      lastSeq: null,
      producers: new Map(),
      createdAt: this.#now(),
      updatedAt: null,
      refCount: 0,
      tombstone: false,
    };
    this.#streams.set(name, s);
    return s;
  }

  createFork(name: string, options: ForkOptions): Outcome<CreateStreamResult> {
    return this.#run(() => {
      const now = this.#now();
      if (this.capabilities?.forks === false) fail('NOT_SUPPORTED');
      if (options.ttlSeconds !== undefined && options.expiresAt !== undefined) fail('CONFLICTING_EXPIRY');
      const source = this.#streams.get(options.source);
      if (source === undefined) fail('NOT_FOUND');
      if (source.tombstone) fail('FORK_FROM_TOMBSTONE');
      if (this.#expired(source)) fail('EXPIRED');
      const sourceTail = this.#tail(source);
      let offset: string;
      if (options.offset === undefined) offset = sourceTail;
      else {
        const parsed = parseOffset(options.offset);
        offset =
          parsed.kind === 'start'
            ? formatOffset(0, 0)
            : parsed.kind === 'now'
              ? 'now'
              : formatOffset(parsed.readSeq, parsed.byteOffset);
      }
      if (offset > sourceTail) fail('FORK_OFFSET_BEYOND_TAIL');
      if (options.contentType !== undefined) {
        const actual = contentTypeOf(options.contentType);
        if (actual !== source.contentType)
          fail('CONTENT_TYPE_MISMATCH', { expected: source.contentType, actual });
      }
      const subOffset = options.subOffset ?? 0;
      const prefix: Uint8Array[] = [];
      if (subOffset > 0) {
        const after = this.#logical(source).filter((m) => m.offset >= offset);
        if (source.contentType === 'application/json') {
          if (after.length < subOffset) fail('FORK_SUB_OFFSET_OUT_OF_RANGE');
          for (const m of after.slice(0, subOffset)) prefix.push(m.data);
        } else {
          const first = after[0];
          if (first === undefined || first.data.byteLength < subOffset) fail('FORK_SUB_OFFSET_OUT_OF_RANGE');
          prefix.push(first.data.slice(0, subOffset));
        }
      }
      let ttlSeconds: number | null = null;
      let expiresAt: number | null = null;
      if (options.ttlSeconds !== undefined) {
        ttlSeconds = options.ttlSeconds;
        expiresAt = now + options.ttlSeconds * 1000;
      } else if (options.expiresAt !== undefined) expiresAt = options.expiresAt;
      else if (source.ttlSeconds !== null) {
        ttlSeconds = source.ttlSeconds;
        expiresAt = now + source.ttlSeconds * 1000;
      } else expiresAt = source.expiresAt;
      const config: StreamConfig = {
        contentType: source.contentType,
        ttlSeconds,
        expiresAt,
        createdClosed: options.closed === true,
      };
      const existing = this.#existing(name);
      if (existing.kind === 'live') {
        const s = existing.s;
        const sameLineage =
          s.fork !== null &&
          s.fork.source === options.source &&
          s.fork.offset === offset &&
          s.fork.subOffset === subOffset;
        if (!sameLineage || !StorageModel.#sameConfig(StorageModel.#identity(s), config))
          fail('CONFIG_MISMATCH');
        return { created: false, nextOffset: this.#tail(s), closed: s.closed };
      }
      const local = [...prefix, ...(options.messages ?? [])];
      const released = existing.kind === 'replace' ? existing.old.localBytes : 0;
      this.#checkLimits(sizeOf(local), this.#totalBytes() - released, 0);
      if (existing.kind === 'replace') this.#remove(existing.old);
      const at = parseOffset(offset);
      if (at.kind !== 'position') throw new Error('unreachable: a fork offset is concrete');
      const s = this.#newStream(name, config, at.readSeq, at.byteOffset, {
        source: options.source,
        offset,
        subOffset,
      });
      this.#push(s, local);
      // The replaced entry may have been a fork of the same source; the new reference is taken afterwards.
      const stillSource = this.#streams.get(options.source);
      if (stillSource !== undefined) stillSource.refCount += 1;
      return { created: true, nextOffset: this.#tail(s), closed: s.closed };
    });
  }

  append(
    name: string,
    request: {
      messages: readonly Uint8Array[];
      contentType?: string | undefined;
      seq?: string | undefined;
      close?: boolean | undefined;
    },
  ): Outcome<AppendResult> {
    return this.#run(() => {
      const close = request.close === true;
      if (request.messages.length === 0 && !close) fail('EMPTY_APPEND');
      const s = this.#access(name);
      if (request.messages.length > 0) {
        if (s.closed) fail('STREAM_CLOSED', { nextOffset: this.#tail(s) });
        this.#checkContentType(s, request.contentType);
      }
      this.#checkStreamSeq(s, request.seq);
      return this.#commit(s, request.messages, request.seq, close);
    });
  }

  #checkContentType(s: ModelStream, raw: string | undefined): void {
    if (raw === undefined) fail('INVALID_CONTENT_TYPE');
    const actual = contentTypeOf(raw);
    if (actual !== s.contentType) fail('CONTENT_TYPE_MISMATCH', { expected: s.contentType, actual });
  }

  #checkStreamSeq(s: ModelStream, seq: string | undefined): void {
    if (seq !== undefined && s.lastSeq !== null && utf8Order(seq, s.lastSeq) <= 0)
      fail('SEQ_CONFLICT', { lastSeq: s.lastSeq, receivedSeq: seq });
  }

  #commit(
    s: ModelStream,
    messages: readonly Uint8Array[],
    seq: string | undefined,
    close: boolean,
  ): AppendResult {
    this.#checkLimits(sizeOf(messages), this.#totalBytes(), s.localBytes);
    const startOffset = this.#tail(s);
    this.#push(s, messages);
    s.updatedAt = this.#now();
    if (seq !== undefined) s.lastSeq = seq;
    this.#renew(s);
    if (close) s.closed = true;
    return { startOffset, nextOffset: this.#tail(s), closed: s.closed };
  }

  closeStream(name: string, options: { seq?: string | undefined } = {}): Outcome<AppendResult> {
    return this.append(name, { messages: [], close: true, seq: options.seq });
  }

  appendWithProducer(
    name: string,
    request: {
      messages: readonly Uint8Array[];
      contentType?: string | undefined;
      seq?: string | undefined;
      close?: boolean | undefined;
      producer: ProducerIdentity;
    },
  ): Outcome<ProducerAppendResult> {
    return this.#run(() => {
      if (this.capabilities?.producers === false) fail('NOT_SUPPORTED');
      const { producer } = request;
      if (
        producer.id.length === 0 ||
        !Number.isSafeInteger(producer.epoch) ||
        producer.epoch < 0 ||
        !Number.isSafeInteger(producer.seq) ||
        producer.seq < 0
      ) {
        fail('INVALID_PRODUCER');
      }
      const s = this.#access(name);
      if (request.messages.length > 0) this.#checkContentType(s, request.contentType);
      const stored = s.producers.get(producer.id);
      const known =
        stored !== undefined && this.#now() - stored.updatedAt <= PRODUCER_IDLE_MS ? stored : undefined;
      if (known !== undefined) {
        if (producer.epoch < known.epoch)
          fail('PRODUCER_EPOCH_FENCED', { currentEpoch: known.epoch, receivedEpoch: producer.epoch });
        if (producer.epoch === known.epoch && producer.seq <= known.lastSeq) {
          const tail = this.#tail(s);
          return {
            startOffset: tail,
            nextOffset: tail,
            closed: s.closed,
            duplicate: true,
            epoch: known.epoch,
            seq: known.lastSeq,
          };
        }
      }
      if (s.closed) fail('STREAM_CLOSED', { nextOffset: this.#tail(s) });
      if (known === undefined) {
        if (producer.seq !== 0) fail('PRODUCER_SEQ_GAP', { expectedSeq: 0, receivedSeq: producer.seq });
      } else if (producer.epoch > known.epoch) {
        if (producer.seq !== 0) fail('PRODUCER_INVALID_EPOCH_SEQ');
      } else if (producer.seq !== known.lastSeq + 1)
        fail('PRODUCER_SEQ_GAP', { expectedSeq: known.lastSeq + 1, receivedSeq: producer.seq });
      this.#checkStreamSeq(s, request.seq);
      const result = this.#commit(s, request.messages, request.seq, request.close === true);
      s.producers.set(producer.id, { epoch: producer.epoch, lastSeq: producer.seq, updatedAt: this.#now() });
      return { ...result, duplicate: false, epoch: producer.epoch, seq: producer.seq };
    });
  }

  read(name: string, from: string, options: { maxBytes?: number | undefined } = {}): Outcome<ReadResult> {
    return this.#run(() => {
      let parsed: ReturnType<typeof parseOffset>;
      try {
        parsed = parseOffset(from);
      } catch (err) {
        if (err instanceof StorageError) fail(err.code);
        throw err;
      }
      const s = this.#access(name);
      const all = this.#logical(s);
      const tail = this.#tail(s);
      let start: number;
      if (parsed.kind === 'now') start = all.length;
      else if (parsed.kind === 'start') start = 0;
      else {
        const at = formatOffset(parsed.readSeq, parsed.byteOffset);
        start = all.findIndex((m) => m.offset >= at);
        if (start === -1) start = all.length;
      }
      let end = start;
      let bytes = 0;
      while (end < all.length) {
        const size = all[end]!.data.byteLength;
        if (options.maxBytes !== undefined && end > start && bytes + size > options.maxBytes) break;
        bytes += size;
        end += 1;
      }
      const upToDate = end === all.length;
      this.#renew(s);
      return {
        messages: all.slice(start, end).map((m) => m.data),
        nextOffset: upToDate ? tail : all[end]!.offset,
        upToDate,
        closed: s.closed,
      };
    });
  }

  #metadata(s: ModelStream): StreamMetadata {
    return {
      name: s.name,
      config: StorageModel.#config(s),
      nextOffset: this.#tail(s),
      closed: s.closed,
      totalBytes: s.localBytes,
      messageCount: s.local.length,
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
      lastSeq: s.lastSeq,
      fork: s.fork === null ? null : { ...s.fork },
    };
  }

  head(name: string): Outcome<StreamMetadata> {
    return this.#run(() => this.#metadata(this.#access(name)));
  }

  exists(name: string): Outcome<boolean> {
    const s = this.#streams.get(name);
    return { ok: true, value: s !== undefined && !s.tombstone && !this.#expired(s) };
  }

  delete(name: string): Outcome<DeleteResult> {
    return this.#run(() => {
      const s = this.#streams.get(name);
      if (s === undefined) fail('NOT_FOUND');
      if (s.tombstone) fail('GONE');
      if (s.refCount > 0) {
        s.tombstone = true;
        return { softDeleted: true };
      }
      this.#remove(s);
      return { softDeleted: false };
    });
  }

  listStreams(options: ListStreamsOptions = {}): Outcome<StreamMetadata[]> {
    return this.#run(() => {
      if (this.capabilities?.listStreams === false) fail('NOT_SUPPORTED');
      const visible = [...this.#streams.values()]
        .filter((s) => !s.tombstone && !this.#expired(s))
        .filter((s) => options.prefix === undefined || s.name.startsWith(options.prefix))
        .filter((s) => options.after === undefined || utf8Order(s.name, options.after) > 0)
        .sort((a, b) => utf8Order(a.name, b.name));
      const limited = options.limit === undefined ? visible : visible.slice(0, options.limit);
      return limited.map((s) => this.#metadata(s));
    });
  }

  cleanupExpiredStreams(): Outcome<number> {
    const due = [...this.#streams.values()].filter((s) => !s.tombstone && this.#expired(s));
    let count = 0;
    for (const s of due) {
      if (this.#streams.get(s.name) !== s) continue;
      count += 1;
      if (s.refCount > 0) s.tombstone = true;
      else this.#remove(s);
    }
    return { ok: true, value: count };
  }
}
