import {
  type AppendRequest,
  type AppendResult,
  assertStreamName,
  type ByteLimits,
  batchBytes,
  type Clock,
  type CreateStreamOptions,
  type CreateStreamResult,
  checkAccess,
  checkByteLimits,
  compareUtf8,
  createMatchesExisting,
  type DeleteResult,
  type ForkInfo,
  type ForkOptions,
  formatOffset,
  isExpired,
  isJsonContentType,
  type ListStreamsOptions,
  notFound,
  type Offset,
  PRODUCER_STATE_TTL_MS,
  type ProducerAppendRequest,
  type ProducerAppendResult,
  type ProducerState,
  parseOffset,
  planCommit,
  type ReadOptions,
  type ReadResult,
  renewedDeadline,
  resolveByteLimits,
  resolveForkConfig,
  resolveStreamOptions,
  START_OFFSET,
  type Storage,
  type StorageCapabilities,
  StorageError,
  type StreamConfig,
  type StreamListener,
  type StreamMetadata,
  type Subscription,
  systemClock,
  validateAppendRequest,
  validateForkRequest,
} from '@streamkeep/storage';

/** Options of {@link MemoryStorage}. */
export interface MemoryStorageOptions {
  /** Payload bytes across all streams. @default Infinity */
  readonly maxTotalBytes?: number | undefined;
  /** Payload bytes stored locally by one stream. @default Infinity */
  readonly maxStreamBytes?: number | undefined;
  /** Source of "now" for expiry and timestamps. @default systemClock */
  readonly clock?: Clock | undefined;
}

/** One stream. Offsets of local message `i` are `(baseSeq + i, baseBytes + starts[i])`. */
interface Entry {
  readonly name: string;
  config: StreamConfig;
  closed: boolean;
  tombstone: boolean;
  refCount: number;
  readonly fork: ForkInfo | null;
  readonly baseSeq: number;
  readonly baseBytes: number;
  readonly messages: Uint8Array[];
  readonly starts: number[];
  totalBytes: number;
  readonly createdAt: number;
  updatedAt: number | null;
  lastSeq: string | null;
  readonly producers: Map<string, ProducerState>;
  readonly listeners: Set<StreamListener>;
}

const CAPABILITIES: StorageCapabilities = Object.freeze({
  durable: false,
  forks: true,
  expiry: true,
  producers: true,
  listStreams: true,
  byteLimits: true,
  multiInstance: false,
});

/**
 * The in-memory reference backend: the full contract, nothing persisted.
 *
 * @remarks
 * Every method does its work synchronously between two turns of the event loop, so each call is atomic with
 * respect to every other call and commits are serialised in call order without locks.
 */
export class MemoryStorage implements Storage {
  readonly specificationVersion = 'v1' as const;
  readonly capabilities: StorageCapabilities = CAPABILITIES;

  readonly #streams = new Map<string, Entry>();
  readonly #limits: ByteLimits;
  readonly #clock: Clock;
  #totalBytes = 0;
  #closed = false;

  constructor(options: MemoryStorageOptions = {}) {
    this.#limits = resolveByteLimits(options);
    this.#clock = options.clock ?? systemClock;
  }

  /** Payload bytes currently stored across all streams, tombstones included. */
  totalBytes(): number {
    return this.#totalBytes;
  }

  async createStream(name: string, options: CreateStreamOptions): Promise<CreateStreamResult> {
    this.#assertOpen();
    assertStreamName(name);
    const now = this.#clock.now();
    const config = resolveStreamOptions(options, now);
    const { existing, expired } = this.#prepareName(name, now);
    if (existing !== undefined) {
      if (existing.fork !== null || !createMatchesExisting(existing, config)) {
        throw new StorageError(
          'CONFIG_MISMATCH',
          `stream ${JSON.stringify(name)} exists with a different configuration`,
        );
      }
      return { created: false, nextOffset: tailOf(existing), closed: existing.closed };
    }
    const messages = options.messages ?? [];
    const bytes = batchBytes(messages);
    checkByteLimits(this.#limits, this.#totalBytes - (expired?.totalBytes ?? 0), 0, bytes);
    if (expired !== undefined) this.#remove(expired);
    const entry = newEntry(name, config, null, 0, 0, now);
    pushMessages(entry, messages);
    entry.closed = config.createdClosed;
    this.#totalBytes += bytes;
    this.#streams.set(name, entry);
    return { created: true, nextOffset: tailOf(entry), closed: entry.closed };
  }

  async createFork(name: string, options: ForkOptions): Promise<CreateStreamResult> {
    this.#assertOpen();
    assertStreamName(name);
    const now = this.#clock.now();
    const requested = validateForkRequest(options, now);
    const source = this.#streams.get(options.source);
    if (source === undefined) notFound(options.source);
    if (source.tombstone) {
      throw new StorageError(
        'FORK_FROM_TOMBSTONE',
        `cannot fork deleted stream ${JSON.stringify(options.source)}`,
      );
    }
    if (isExpired(source.config, now)) {
      throw new StorageError('EXPIRED', `stream ${JSON.stringify(options.source)} has expired`);
    }
    const sourceTail = tailOf(source);
    const forkOffset = requested.offset ?? sourceTail;
    if (forkOffset > sourceTail) {
      throw new StorageError(
        'FORK_OFFSET_BEYOND_TAIL',
        `fork offset ${forkOffset} lies beyond the source tail ${sourceTail}`,
      );
    }
    const config = resolveForkConfig(options, source.config, now);
    const subOffset = requested.subOffset;
    const local = [
      ...subOffsetPrefix(this.#streams, source, forkOffset, subOffset),
      ...(options.messages ?? []),
    ];
    const fork: ForkInfo = { source: options.source, offset: forkOffset, subOffset };

    const { existing, expired } = this.#prepareName(name, now);
    if (existing !== undefined) {
      const sameLineage =
        existing.fork !== null &&
        existing.fork.source === fork.source &&
        existing.fork.offset === fork.offset &&
        existing.fork.subOffset === fork.subOffset;
      if (!sameLineage || !createMatchesExisting(existing, config)) {
        throw new StorageError(
          'CONFIG_MISMATCH',
          `stream ${JSON.stringify(name)} exists with a different configuration`,
        );
      }
      return { created: false, nextOffset: tailOf(existing), closed: existing.closed };
    }
    const bytes = batchBytes(local);
    checkByteLimits(this.#limits, this.#totalBytes - (expired?.totalBytes ?? 0), 0, bytes);
    if (expired !== undefined) this.#remove(expired);
    const position = parseOffset(forkOffset);
    const [baseSeq, baseBytes] =
      position.kind === 'position' ? [position.readSeq, position.byteOffset] : [0, 0];
    const entry = newEntry(name, config, fork, baseSeq, baseBytes, now);
    pushMessages(entry, local);
    entry.closed = config.createdClosed;
    this.#totalBytes += bytes;
    this.#streams.set(name, entry);
    source.refCount++;
    return { created: true, nextOffset: tailOf(entry), closed: entry.closed };
  }

  async append(name: string, request: AppendRequest): Promise<AppendResult> {
    const result = this.#commit(name, request);
    return { startOffset: result.startOffset, nextOffset: result.nextOffset, closed: result.closed };
  }

  async closeStream(name: string, options?: { readonly seq?: string | undefined }): Promise<AppendResult> {
    return this.append(name, { messages: [], close: true, seq: options?.seq });
  }

  async appendWithProducer(name: string, request: ProducerAppendRequest): Promise<ProducerAppendResult> {
    return this.#commit(name, request);
  }

  async read(name: string, from: Offset, options?: ReadOptions): Promise<ReadResult> {
    this.#assertOpen();
    const position = parseOffset(from);
    const entry = this.#visible(name);
    const now = this.#clock.now();
    const tail = tailOf(entry);
    let result: ReadResult;
    if (position.kind === 'now') {
      result = { messages: [], nextOffset: tail, upToDate: true, closed: entry.closed };
    } else {
      const fromOffset = position.kind === 'start' ? START_OFFSET : from;
      result = readLineage(this.#streams, entry, fromOffset, options?.maxBytes, tail);
    }
    if (entry.config.ttlSeconds !== null) {
      entry.config = { ...entry.config, expiresAt: renewedDeadline(entry.config, now) };
    }
    return result;
  }

  async head(name: string): Promise<StreamMetadata> {
    this.#assertOpen();
    return metadataOf(this.#visible(name));
  }

  async exists(name: string): Promise<boolean> {
    this.#assertOpen();
    const entry = this.#streams.get(name);
    return entry !== undefined && !entry.tombstone && !isExpired(entry.config, this.#clock.now());
  }

  async delete(name: string): Promise<DeleteResult> {
    this.#assertOpen();
    const entry = this.#streams.get(name);
    if (entry === undefined) notFound(name);
    if (entry.tombstone) throw new StorageError('GONE', `stream ${JSON.stringify(name)} was deleted`);
    if (entry.refCount > 0) {
      this.#tombstone(entry);
      return { softDeleted: true };
    }
    this.#remove(entry);
    return { softDeleted: false };
  }

  async subscribe(name: string, listener: StreamListener): Promise<Subscription> {
    this.#assertOpen();
    const entry = this.#visible(name);
    entry.listeners.add(listener);
    return { unsubscribe: () => void entry.listeners.delete(listener) };
  }

  async listStreams(options: ListStreamsOptions = {}): Promise<StreamMetadata[]> {
    this.#assertOpen();
    const now = this.#clock.now();
    const { prefix, after, limit } = options;
    const names: string[] = [];
    for (const entry of this.#streams.values()) {
      if (entry.tombstone || isExpired(entry.config, now)) continue;
      if (prefix !== undefined && !entry.name.startsWith(prefix)) continue;
      if (after !== undefined && compareUtf8(entry.name, after) <= 0) continue;
      names.push(entry.name);
    }
    names.sort(compareUtf8);
    const page = limit === undefined ? names : names.slice(0, Math.max(0, limit));
    return page.map((n) => metadataOf(this.#streams.get(n)!));
  }

  async cleanupExpiredStreams(): Promise<number> {
    this.#assertOpen();
    const now = this.#clock.now();
    const expired = [...this.#streams.values()].filter((e) => !e.tombstone && isExpired(e.config, now));
    for (const entry of expired) {
      if (entry.refCount > 0) this.#tombstone(entry);
      else if (this.#streams.get(entry.name) === entry) this.#remove(entry);
    }
    return expired.length;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const entry of this.#streams.values()) entry.listeners.clear();
  }

  #commit(name: string, request: ProducerAppendRequest | AppendRequest): ProducerAppendResult {
    this.#assertOpen();
    validateAppendRequest(request);
    const entry = this.#streams.get(name);
    if (entry === undefined) notFound(name);
    const now = this.#clock.now();
    const tail = tailOf(entry);
    const plan = planCommit(
      {
        name,
        config: entry.config,
        closed: entry.closed,
        tombstone: entry.tombstone,
        lastSeq: entry.lastSeq,
        nextOffset: tail,
        producers: entry.producers,
      },
      request,
      now,
    );
    if (plan.kind === 'duplicate') {
      return {
        duplicate: true,
        epoch: plan.epoch,
        seq: plan.seq,
        startOffset: tail,
        nextOffset: tail,
        closed: entry.closed,
      };
    }
    const bytes = batchBytes(request.messages);
    checkByteLimits(this.#limits, this.#totalBytes, entry.totalBytes, bytes);
    pushMessages(entry, request.messages);
    this.#totalBytes += bytes;
    entry.closed = plan.closed;
    entry.lastSeq = plan.lastSeq;
    entry.updatedAt = plan.updatedAt;
    if (plan.expiresAt !== entry.config.expiresAt)
      entry.config = { ...entry.config, expiresAt: plan.expiresAt };
    if (plan.producer !== undefined) {
      pruneProducers(entry.producers, now);
      entry.producers.set(plan.producer.id, plan.producer.state);
    }
    notify(entry.listeners);
    const producer = 'producer' in request ? request.producer : undefined;
    return {
      duplicate: false,
      epoch: producer?.epoch ?? 0,
      seq: producer?.seq ?? 0,
      startOffset: tail,
      nextOffset: tailOf(entry),
      closed: entry.closed,
    };
  }

  /**
   * Looks up a name about to be created: the live entry to compare with, or the expired, unreferenced entry the new
   * stream will replace — removed only once the new stream's commit is known to succeed, so a rejected create
   * changes nothing.
   */
  #prepareName(name: string, now: number): { existing?: Entry; expired?: Entry } {
    const existing = this.#streams.get(name);
    if (existing === undefined) return {};
    if (existing.tombstone) {
      throw new StorageError(
        'PATH_BLOCKED',
        `stream ${JSON.stringify(name)} is reserved by forks of a deleted stream`,
      );
    }
    if (isExpired(existing.config, now)) {
      if (existing.refCount > 0) {
        throw new StorageError(
          'PATH_BLOCKED',
          `expired stream ${JSON.stringify(name)} is still referenced by forks`,
        );
      }
      return { expired: existing };
    }
    return { existing };
  }

  #visible(name: string): Entry {
    const entry = this.#streams.get(name);
    if (entry === undefined) notFound(name);
    checkAccess(entry, this.#clock.now());
    return entry;
  }

  #tombstone(entry: Entry): void {
    entry.tombstone = true;
    notify(entry.listeners);
    entry.listeners.clear();
  }

  /** Hard-deletes an entry, then walks up its lineage removing tombstones no fork needs any more. */
  #remove(entry: Entry): void {
    let current: Entry | undefined = entry;
    while (current !== undefined) {
      this.#streams.delete(current.name);
      this.#totalBytes -= current.totalBytes;
      notify(current.listeners);
      current.listeners.clear();
      const parent: Entry | undefined =
        current.fork === null ? undefined : this.#streams.get(current.fork.source);
      if (parent === undefined) break;
      parent.refCount = Math.max(0, parent.refCount - 1);
      current = parent.tombstone && parent.refCount === 0 ? parent : undefined;
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new StorageError('STORAGE_CLOSED', 'storage is closed');
  }
}

function newEntry(
  name: string,
  config: StreamConfig,
  fork: ForkInfo | null,
  baseSeq: number,
  baseBytes: number,
  now: number,
): Entry {
  return {
    name,
    config,
    closed: false,
    tombstone: false,
    refCount: 0,
    fork,
    baseSeq,
    baseBytes,
    messages: [],
    starts: [],
    totalBytes: 0,
    createdAt: now,
    updatedAt: null,
    lastSeq: null,
    producers: new Map(),
    listeners: new Set(),
  };
}

function pushMessages(entry: Entry, messages: readonly Uint8Array[]): void {
  for (const message of messages) {
    entry.starts.push(entry.totalBytes);
    entry.messages.push(message);
    entry.totalBytes += message.byteLength;
  }
}

function tailOf(entry: Entry): Offset {
  return formatOffset(entry.baseSeq + entry.messages.length, entry.baseBytes + entry.totalBytes);
}

function offsetOf(entry: Entry, index: number): Offset {
  return index < entry.messages.length
    ? formatOffset(entry.baseSeq + index, entry.baseBytes + entry.starts[index]!)
    : tailOf(entry);
}

/** Index of the first local message whose offset is at or after `from` (a concrete offset or `-1`). */
function firstIndexAtOrAfter(entry: Entry, from: Offset): number {
  const position = parseOffset(from);
  if (position.kind !== 'position') return position.kind === 'start' ? 0 : entry.messages.length;
  const i = position.readSeq - entry.baseSeq;
  if (i < 0) return 0;
  if (i >= entry.messages.length) return entry.messages.length;
  return entry.baseBytes + entry.starts[i]! >= position.byteOffset ? i : i + 1;
}

function metadataOf(entry: Entry): StreamMetadata {
  return {
    name: entry.name,
    config: entry.config,
    nextOffset: tailOf(entry),
    closed: entry.closed,
    totalBytes: entry.totalBytes,
    messageCount: entry.messages.length,
    createdAt: entry.createdAt,
    updatedAt: entry.updatedAt,
    lastSeq: entry.lastSeq,
    fork: entry.fork,
  };
}

/**
 * The segments a read of `entry` walks: every ancestor bounded by the smallest fork offset below it, root first,
 * then `entry` itself unbounded.
 */
function lineage(streams: Map<string, Entry>, entry: Entry): { entry: Entry; bound: Offset | null }[] {
  const segments: { entry: Entry; bound: Offset | null }[] = [{ entry, bound: null }];
  let bound = null as Offset | null;
  let current = entry;
  while (current.fork !== null) {
    bound = bound === null || current.fork.offset < bound ? current.fork.offset : bound;
    const parent = streams.get(current.fork.source);
    if (parent === undefined) break;
    segments.push({ entry: parent, bound });
    current = parent;
  }
  return segments.reverse();
}

function readLineage(
  streams: Map<string, Entry>,
  entry: Entry,
  from: Offset,
  maxBytes: number | undefined,
  tail: Offset,
): ReadResult {
  const messages: Uint8Array[] = [];
  let bytes = 0;
  for (const { entry: segment, bound } of lineage(streams, entry)) {
    let i = firstIndexAtOrAfter(segment, from);
    for (; i < segment.messages.length; i++) {
      if (bound !== null && offsetOf(segment, i) >= bound) break;
      const message = segment.messages[i]!;
      if (maxBytes !== undefined && messages.length > 0 && bytes + message.byteLength > maxBytes) {
        return { messages, nextOffset: offsetOf(segment, i), upToDate: false, closed: entry.closed };
      }
      messages.push(message);
      bytes += message.byteLength;
    }
  }
  return { messages, nextOffset: tail, upToDate: true, closed: entry.closed };
}

/** The local messages a fork starts with from its sub-offset: whole JSON messages or a byte prefix. */
function subOffsetPrefix(
  streams: Map<string, Entry>,
  source: Entry,
  forkOffset: Offset,
  subOffset: number,
): Uint8Array[] {
  if (subOffset === 0) return [];
  const after = readLineage(streams, source, forkOffset, undefined, tailOf(source)).messages;
  const outOfRange = () =>
    new StorageError(
      'FORK_SUB_OFFSET_OUT_OF_RANGE',
      `sub-offset ${subOffset} exceeds the data after the fork offset`,
    );
  if (isJsonContentType(source.config.contentType)) {
    if (after.length < subOffset) throw outOfRange();
    return after.slice(0, subOffset);
  }
  const first = after[0];
  if (first === undefined || first.byteLength < subOffset) throw outOfRange();
  return [first.slice(0, subOffset)];
}

function pruneProducers(producers: Map<string, ProducerState>, now: number): void {
  for (const [id, state] of producers) {
    if (now - state.updatedAt > PRODUCER_STATE_TTL_MS) producers.delete(id);
  }
}

function notify(listeners: Set<StreamListener>): void {
  for (const listener of listeners) {
    try {
      listener();
    } catch (err) {
      process.emitWarning(`a stream listener threw: ${String(err)}`);
    }
  }
}
