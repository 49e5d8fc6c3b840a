import {
  type AppendRequest,
  type AppendResult,
  afterForkRemoved,
  appendResultOf,
  type ByteLimits,
  batchBytes,
  type Clock,
  type CommitObserver,
  type CommitRequest,
  type CreateStreamOptions,
  type CreateStreamResult,
  checkByteLimits,
  checkCreateLimits,
  checkFound,
  committedResult,
  compareOffsets,
  type DeleteResult,
  duplicateResult,
  type ForkInfo,
  type ForkOptions,
  type ForkPlan,
  type ForkSourceView,
  fitsBudget,
  forkPrefix,
  formatOffset,
  isVisible,
  type LifecycleView,
  type ListStreamsOptions,
  type ListSubscriptionsOptions,
  listingPage,
  notFound,
  type Offset,
  type ProducerAppendRequest,
  type ProducerAppendResult,
  type ProducerState,
  parseOffset,
  planCommit,
  planDelete,
  planExpiry,
  planFork,
  planNameClaim,
  prunedProducers,
  type ReadOptions,
  type ReadResult,
  type Removal,
  readSegments,
  renewedDeadline,
  reportCommit,
  resolveByteLimits,
  START_OFFSET,
  type Storage,
  type StorageCapabilities,
  StorageError,
  type StreamConfig,
  type StreamListener,
  type StreamMetadata,
  type Subscription,
  type SubscriptionPlan,
  type SubscriptionRecord,
  type SubscriptionStore,
  systemClock,
  tailReadResult,
  validateAppend,
  validateCloseStream,
  validateCreateFork,
  validateCreateStream,
  validateListStreams,
  validateName,
  validateProducerAppend,
  validateRead,
  validateSubscribe,
} from '@streamkeep/storage';
import { MemorySubscriptions } from './subscriptions.js';

/** Options of {@link MemoryStorage}. */
export interface MemoryStorageOptions {
  /** Payload bytes across all streams. @default Infinity */
  readonly maxTotalBytes?: number | undefined;
  /** Payload bytes stored locally by one stream. @default Infinity */
  readonly maxStreamBytes?: number | undefined;
  /** Source of "now" for expiry and timestamps. @default systemClock */
  readonly clock?: Clock | undefined;
  /** Called after each applied commit (`syncMs` is always 0: nothing is synced). See {@link CommitReport}. */
  readonly onCommit?: CommitObserver | undefined;
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
  producers: Map<string, ProducerState>;
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
  subscriptions: true,
});

/**
 * The in-memory reference backend: the full contract, nothing persisted.
 *
 * @remarks
 * Every method does its work synchronously between two turns of the event loop, so each call is atomic with
 * respect to every other call and commits are serialised in call order without locks.
 */
export class MemoryStorage implements Storage, SubscriptionStore {
  readonly specificationVersion = 'v1' as const;
  readonly capabilities: StorageCapabilities = CAPABILITIES;

  readonly #streams = new Map<string, Entry>();
  readonly #limits: ByteLimits;
  readonly #clock: Clock;
  readonly #onCommit: CommitObserver | undefined;
  #totalBytes = 0;
  #closed = false;
  readonly #subscriptions: MemorySubscriptions;

  constructor(options: MemoryStorageOptions = {}) {
    this.#limits = resolveByteLimits(options);
    this.#clock = options.clock ?? systemClock;
    this.#onCommit = options.onCommit;
    this.#subscriptions = new MemorySubscriptions(CAPABILITIES, this.#clock, () => this.#assertOpen());
  }

  /** Payload bytes currently stored across all streams, tombstones included. */
  totalBytes(): number {
    return this.#totalBytes;
  }

  async createStream(name: string, options: CreateStreamOptions): Promise<CreateStreamResult> {
    this.#assertOpen();
    const now = this.#clock.now();
    const config = validateCreateStream(CAPABILITIES, name, options, now);
    const messages = options.messages ?? [];
    return this.#create(name, { config, fork: null }, messages, now, null);
  }

  async createFork(name: string, options: ForkOptions): Promise<CreateStreamResult> {
    this.#assertOpen();
    const now = this.#clock.now();
    const requested = validateCreateFork(CAPABILITIES, name, options, now);
    const source = this.#streams.get(options.source);
    const plan = planFork(options, requested, source && viewOf(source), now);
    const after =
      plan.prefixMessages === 0
        ? []
        : readLineage(this.#streams, source!, plan.fork.offset, undefined, tailOf(source!)).messages;
    const local = [...forkPrefix(plan, after), ...(options.messages ?? [])];
    return this.#create(name, plan, local, now, { source: source!, plan });
  }

  /** Claims `name` and creates the stream, or answers for the equal stream that holds it. */
  #create(
    name: string,
    requested: { readonly config: StreamConfig; readonly fork: ForkInfo | null },
    messages: readonly Uint8Array[],
    now: number,
    fork: { readonly source: Entry; readonly plan: ForkPlan } | null,
  ): CreateStreamResult {
    const held = this.#streams.get(name);
    const claim = planNameClaim(name, held && viewOf(held), requested, now);
    if (claim === 'existing') return { created: false, nextOffset: tailOf(held!), closed: held!.closed };
    const replaced = claim === 'replace' ? held : undefined;
    checkCreateLimits(this.#limits, this.#totalBytes, replaced?.totalBytes ?? 0, messages);
    if (replaced !== undefined) this.#remove(replaced);
    const entry = newEntry(
      name,
      requested.config,
      requested.fork,
      fork?.plan.baseSeq ?? 0,
      fork?.plan.baseBytes ?? 0,
      now,
    );
    pushMessages(entry, messages);
    entry.closed = requested.config.createdClosed;
    this.#totalBytes += entry.totalBytes;
    this.#streams.set(name, entry);
    if (fork !== null) fork.source.refCount++;
    return { created: true, nextOffset: tailOf(entry), closed: entry.closed };
  }

  async append(name: string, request: AppendRequest): Promise<AppendResult> {
    this.#assertOpen();
    validateAppend(name, request);
    return appendResultOf(this.#commit(name, request));
  }

  async closeStream(name: string, options?: { readonly seq?: string | undefined }): Promise<AppendResult> {
    this.#assertOpen();
    return appendResultOf(this.#commit(name, validateCloseStream(name, options)));
  }

  async appendWithProducer(name: string, request: ProducerAppendRequest): Promise<ProducerAppendResult> {
    this.#assertOpen();
    validateProducerAppend(CAPABILITIES, name, request);
    return this.#commit(name, request);
  }

  async read(name: string, from: Offset, options?: ReadOptions): Promise<ReadResult> {
    this.#assertOpen();
    const { from: position, maxBytes } = validateRead(name, from, options);
    const now = this.#clock.now();
    const entry = checkFound(name, this.#streams.get(name), now);
    const tail = tailOf(entry);
    const result =
      position.kind === 'now'
        ? tailReadResult(tail, entry.closed)
        : readLineage(this.#streams, entry, position.kind === 'start' ? START_OFFSET : from, maxBytes, tail);
    const expiresAt = renewedDeadline(entry.config, now);
    if (expiresAt !== entry.config.expiresAt) entry.config = { ...entry.config, expiresAt };
    return result;
  }

  async head(name: string): Promise<StreamMetadata> {
    this.#assertOpen();
    validateName(name);
    return metadataOf(checkFound(name, this.#streams.get(name), this.#clock.now()));
  }

  async exists(name: string): Promise<boolean> {
    this.#assertOpen();
    validateName(name);
    return isVisible(this.#streams.get(name), this.#clock.now());
  }

  async delete(name: string): Promise<DeleteResult> {
    this.#assertOpen();
    validateName(name);
    const entry = this.#streams.get(name);
    const removal = planDelete(name, entry);
    this.#apply(entry!, removal);
    return { softDeleted: removal === 'tombstone' };
  }

  async subscribe(name: string, listener: StreamListener): Promise<Subscription> {
    this.#assertOpen();
    validateSubscribe(name, listener);
    const entry = checkFound(name, this.#streams.get(name), this.#clock.now());
    // A distinct wrapper per call: subscribing one function twice gives two independent registrations.
    const registration: StreamListener = () => listener();
    entry.listeners.add(registration);
    return { unsubscribe: () => void entry.listeners.delete(registration) };
  }

  async listStreams(options?: ListStreamsOptions): Promise<StreamMetadata[]> {
    this.#assertOpen();
    const query = validateListStreams(CAPABILITIES, options);
    const now = this.#clock.now();
    const visible = [...this.#streams.values()].filter((entry) => isVisible(entry, now));
    return listingPage(visible, query).map(metadataOf);
  }

  async cleanupExpiredStreams(): Promise<number> {
    this.#assertOpen();
    const now = this.#clock.now();
    let count = 0;
    for (const entry of [...this.#streams.values()]) {
      // An entry removed earlier in this sweep (a tombstone cascading away) is no longer in the map.
      if (this.#streams.get(entry.name) !== entry) continue;
      const removal = planExpiry(entry, now);
      if (removal === undefined) continue;
      this.#apply(entry, removal);
      count++;
    }
    return count;
  }

  getSubscription(id: string): Promise<SubscriptionRecord | undefined> {
    return this.#subscriptions.getSubscription(id);
  }
  mutateSubscription<R>(id: string, plan: SubscriptionPlan<R>): Promise<R> {
    return this.#subscriptions.mutateSubscription(id, plan);
  }
  deleteSubscription(id: string): Promise<boolean> {
    return this.#subscriptions.deleteSubscription(id);
  }
  listSubscriptions(options?: ListSubscriptionsOptions): Promise<SubscriptionRecord[]> {
    return this.#subscriptions.listSubscriptions(options);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const entry of this.#streams.values()) entry.listeners.clear();
  }

  #commit(name: string, request: CommitRequest): ProducerAppendResult {
    const now = this.#clock.now();
    const entry = this.#streams.get(name);
    if (entry === undefined) notFound(name);
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
    if (plan.kind === 'duplicate') return duplicateResult(plan, tail, entry.closed);
    const bytes = batchBytes(request.messages);
    checkByteLimits(this.#limits, this.#totalBytes, entry.totalBytes, bytes);
    pushMessages(entry, request.messages);
    this.#totalBytes += bytes;
    entry.closed = plan.closed;
    entry.lastSeq = plan.lastSeq;
    entry.updatedAt = plan.updatedAt;
    if (plan.expiresAt !== entry.config.expiresAt)
      entry.config = { ...entry.config, expiresAt: plan.expiresAt };
    if (plan.producer !== undefined) entry.producers = prunedProducers(entry.producers, plan.producer, now);
    reportCommit(this.#onCommit, { entries: 1, bytes, syncMs: 0 });
    notify(entry.listeners);
    return committedResult(request, plan, tail, tailOf(entry));
  }

  #apply(entry: Entry, removal: Removal): void {
    if (removal === 'remove') {
      this.#remove(entry);
      return;
    }
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
      const after = afterForkRemoved(parent);
      parent.refCount = after.refCount;
      current = after.remove ? parent : undefined;
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

/** `entry` followed by its fork ancestors, nearest first. */
function chainOf(streams: Map<string, Entry>, entry: Entry): Entry[] {
  const chain = [entry];
  for (let e = entry; e.fork !== null; ) {
    const parent = streams.get(e.fork.source);
    if (parent === undefined) break;
    chain.push(parent);
    e = parent;
  }
  return chain;
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
  for (const { entry: segment, bound } of readSegments(chainOf(streams, entry))) {
    let i = firstIndexAtOrAfter(segment, from);
    for (; i < segment.messages.length; i++) {
      if (bound !== null && compareOffsets(offsetOf(segment, i), bound) >= 0) break;
      const message = segment.messages[i]!;
      if (!fitsBudget(messages.length, bytes, message.byteLength, maxBytes)) {
        return { messages, nextOffset: offsetOf(segment, i), upToDate: false, closed: entry.closed };
      }
      messages.push(message);
      bytes += message.byteLength;
    }
  }
  return { messages, nextOffset: tail, upToDate: true, closed: entry.closed };
}

function viewOf(entry: Entry): LifecycleView & ForkSourceView {
  return {
    config: entry.config,
    closed: entry.closed,
    tombstone: entry.tombstone,
    refCount: entry.refCount,
    fork: entry.fork,
    nextOffset: tailOf(entry),
  };
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
