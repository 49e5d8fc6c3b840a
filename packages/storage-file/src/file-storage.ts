import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import {
  type AppendRequest,
  type AppendResult,
  assertStreamName,
  type ByteLimits,
  batchBytes,
  type Clock,
  type CommitPlan,
  type CreateStreamOptions,
  type CreateStreamResult,
  checkAccess,
  checkByteLimits,
  compareOffsets,
  compareUtf8,
  createMatchesExisting,
  type DeleteResult,
  type ForkInfo,
  type ForkOptions,
  formatOffset,
  isExpired,
  isJsonContentType,
  isStorageError,
  type ListStreamsOptions,
  notFound,
  type Offset,
  PRODUCER_STATE_TTL_MS,
  type ProducerAppendRequest,
  type ProducerAppendResult,
  type ProducerIdentity,
  type ProducerState,
  parseOffset,
  planCommit,
  type ReadOptions,
  type ReadResult,
  renewedDeadline,
  resolveByteLimits,
  resolveForkConfig,
  resolveStreamOptions,
  type Storage,
  type StorageCapabilities,
  StorageError,
  type StreamConfig,
  type StreamListener,
  type StreamMetadata,
  type StreamStateView,
  type Subscription,
  systemClock,
  validateAppendRequest,
  validateForkRequest,
} from '@streamkeep/storage';
import {
  decodeLogHeader,
  decodeMeta,
  encodeLogHeader,
  encodeMeta,
  GroupEncoder,
  LOG_HEADER_SIZE,
  MAX_BODY,
  newSalt,
  STREAM_ID_RE,
  type StreamMeta,
  streamId,
} from './format.js';
import {
  classifyIoError,
  errnoCode,
  type FileHandleLike,
  type FileSystem,
  nodeFileSystem,
  syncDir,
} from './fs.js';
import { type HandleOwner, HandlePool, LOG_FILE } from './handles.js';
import {
  Journal,
  type JournalEntry,
  type JournaledLog,
  parseJournal,
  writeAll,
  writeAllSync,
} from './journal.js';
import { acquireRootLock } from './lock.js';
import { MessageIndex } from './message-index.js';
import { scanLog } from './scan.js';
import { StreamTail, TailCache } from './tail-cache.js';

/** Options of {@link FileStorage.open}. */
export interface FileStorageOptions {
  /** The storage root. Created when missing; locked against other processes while open. */
  readonly rootDir: string;
  /**
   * Acknowledge an append only after `fdatasync` made it durable (appends in flight together share one sync).
   * Off: appends are acknowledged once written to the OS (they survive a process crash, not a power loss).
   * Creates, forks, deletes and tombstones are always synced. @default true
   */
  readonly syncOnAppend?: boolean | undefined;
  /** Payload bytes across all streams. @default unlimited */
  readonly maxTotalBytes?: number | undefined;
  /** Payload bytes stored locally by one stream. @default unlimited */
  readonly maxStreamBytes?: number | undefined;
  /** The source of "now". @default the system clock */
  readonly clock?: Clock | undefined;
  /** Log files kept open at once; least recently used are closed beyond it. @default 256 */
  readonly maxOpenFiles?: number | undefined;
  /** Payload bytes gathered into one group write (one write + one sync) per stream. @default 16 MiB */
  readonly maxGroupBytes?: number | undefined;
  /**
   * With `syncOnAppend`, make group writes durable through a shared commit journal when other syncs are in flight:
   * one `fdatasync` of the journal covers the groups of every stream in that round (cross-stream group commit), and
   * those logs are synced at checkpoints. A group with no other sync in flight syncs its own log. `'always'` sends
   * every group through the journal (for tests and measurements); `false` never. @default true
   */
  readonly journal?: boolean | 'always' | undefined;
  /** Journal size that triggers a checkpoint (sync the written logs, empty the journal). @default 64 MiB */
  readonly journalCheckpointBytes?: number | undefined;
  /** Streams recovered concurrently when opening. @default 8 */
  readonly recoveryConcurrency?: number | undefined;
  /**
   * Memory for the tail cache: the messages of recently appended streams, kept after their commit so that readers
   * following a tail are served without reading the log. Counts buffer capacity plus a fixed overhead per chunk;
   * over it, the least recently appended streams lose their oldest messages first. `0` turns the cache off.
   * @default 1 MiB
   */
  readonly tailCacheBytes?: number | undefined;
  /** The part of {@link FileStorageOptions.tailCacheBytes} one stream may use (its newest messages). @default 256 KiB */
  readonly tailCacheStreamBytes?: number | undefined;
  /**
   * Group writes (and journal rounds) of at most this many bytes are written with a synchronous positional write:
   * a page-cache copy of microseconds on the event loop instead of a thread-pool round trip. Syncs stay
   * asynchronous. Larger writes, and every write when `0`, go through the thread pool. @default 128 KiB
   */
  readonly inlineWriteBytes?: number | undefined;
  /**
   * The file-system layer. For tests only (to inject failures such as `ENOSPC` or `EIO`).
   * @default `node:fs/promises`
   */
  readonly fileSystem?: FileSystem | undefined;
  /**
   * Called while a long open is under way (a migration of an older data directory, a journal replay, an eager
   * verification), at most once per {@link FileStorageOptions.progressIntervalMs}, and once when it ends.
   */
  readonly onProgress?: ((progress: RecoveryProgress) => void) | undefined;
  /** How often {@link FileStorageOptions.onProgress} is called. @default 2000 */
  readonly progressIntervalMs?: number | undefined;
  /**
   * Called once for each stream refused as damaged (`CORRUPTED`), whether found at open or on the stream's first
   * access after it (logs are verified lazily). {@link FileStorage.quarantined} lists them all.
   */
  readonly onQuarantine?: ((stream: QuarantinedStream) => void) | undefined;
}

/** How far a long open has come (see {@link FileStorageOptions.onProgress}). */
export interface RecoveryProgress {
  /** `migrate`: converting an older on-disk format; `replay`: re-applying the journal; `verify`: eager log checks. */
  readonly phase: 'migrate' | 'replay' | 'verify';
  readonly streamsDone: number;
  readonly streamsTotal: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly elapsedMs: number;
}

/** A stream that failed an integrity check at open and is refused (`CORRUPTED`) instead of served. */
export interface QuarantinedStream {
  /** The stream's directory under `<rootDir>/streams`. */
  readonly dir: string;
  /** The stream's name, when its metadata could still be read. */
  readonly name: string | undefined;
  readonly reason: string;
}

/** What opening a root found. */
export interface RecoveryReport {
  readonly streams: number;
  readonly messages: number;
  readonly logBytes: number;
  /** Streams whose torn tail (an interrupted write) was cut off, with the bytes removed. */
  readonly truncated: readonly { readonly name: string; readonly bytes: number }[];
  /** Journaled group writes re-applied to stream logs (writes the crash kept from reaching a log). */
  readonly redone: number;
  readonly quarantined: readonly QuarantinedStream[];
  readonly durationMs: number;
}

type MutableConfig = { -readonly [K in keyof StreamConfig]: StreamConfig[K] };

interface CommitJob {
  readonly kind: 'commit';
  readonly request: AppendRequest & { readonly producer?: ProducerIdentity | undefined };
  readonly now: number;
  readonly resolve: (r: ProducerAppendResult) => void;
  readonly reject: (e: unknown) => void;
  error?: unknown;
  result?: ProducerAppendResult;
  plan?: CommitPlan;
  expiresAt?: number | null;
  posStart?: number;
}

interface ExclusiveJob {
  readonly kind: 'exclusive';
  readonly run: () => Promise<void>;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

type Job = CommitJob | ExclusiveJob;

class StreamEntry implements HandleOwner {
  readonly index = new MessageIndex();
  readonly listeners = new Set<StreamListener>();
  readonly queue: Job[] = [];
  readonly producers = new Map<string, ProducerState>();
  draining = false;
  removed = false;
  /** Settles when the delete in progress (directory moved to trash, not yet marked removed) has finished. */
  deleting: Promise<void> | null = null;
  touchPending = false;
  needsTruncate = false;
  fh: FileHandleLike | null = null;
  opening: Promise<FileHandleLike> | null = null;
  users = 0;
  closed: boolean;
  lastSeq: string | null = null;
  updatedAt: number | null = null;
  /** Local payload bytes. */
  bytes = 0;
  /** This log as the journal sees it (set when the journal is on). */
  journaled: JournaledLog | undefined;
  /** A journaled group's log write still in flight (a checkpoint's sync of this log must cover it). */
  logWrite: Promise<void> | null = null;
  /** Direct forks (tombstones included) that read this stream's data. Derived, never persisted. */
  refs = 0;
  /** The newest committed messages, kept in memory (see {@link TailCache}). */
  readonly cached = new StreamTail();
  /** Groups committed since this stream's queue last waited for the event loop. */
  inlineRun = 0;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly dir: string,
    readonly config: MutableConfig,
    readonly createdAt: number,
    readonly fork: ForkInfo | null,
    readonly baseSeq: number,
    readonly baseBytes: number,
    public tombstone: boolean,
    readonly salt: number,
    public logSize: number,
  ) {
    this.closed = config.createdClosed;
  }

  get tailSeq(): number {
    return this.baseSeq + this.index.count;
  }
  get tailBytes(): number {
    return this.baseBytes + this.bytes;
  }
  tail(): Offset {
    return formatOffset(this.tailSeq, this.tailBytes);
  }

  meta(): StreamMeta {
    return {
      name: this.name,
      config: { ...this.config },
      createdAt: this.createdAt,
      fork: this.fork,
      tombstone: this.tombstone,
    };
  }

  /** First local message index whose offset is at or after (seq, bytes); `count` when none. */
  lowerBound(seq: number, bytes: number): number {
    const count = this.index.count;
    const d = seq - this.baseSeq;
    if (d <= 0) return d < 0 || this.baseBytes >= bytes ? 0 : Math.min(1, count);
    if (d > count) return count;
    return this.baseBytes + this.index.before(d) >= bytes ? d : Math.min(d + 1, count);
  }
}

const CAPABILITIES: StorageCapabilities = Object.freeze({
  durable: true,
  forks: true,
  expiry: true,
  producers: true,
  listStreams: true,
  byteLimits: true,
  multiInstance: false,
});

const STREAMS_DIR = 'streams';
const TMP_DIR = 'tmp';
const TRASH_DIR = 'trash';
const META_FILE = 'meta.json';
const FORMAT_FILE = 'FORMAT';
const JOURNAL_FILE = 'journal';
const FORMAT_TEXT = 'streamkeep-file-storage 1\n';
const MAX_GROUP_JOBS = 4096;
/** Groups committed back to back without I/O before a stream's queue yields to the event loop. */
const INLINE_RUN = 16;

/**
 * File-backed {@link Storage}: one checksummed append-only log per stream, an in-memory offset index, per-stream
 * group commit, crash-safe metadata. See the package README for the on-disk format and the guarantees.
 */
export class FileStorage implements Storage {
  readonly specificationVersion = 'v1' as const;
  readonly capabilities: StorageCapabilities = CAPABILITIES;
  readonly rootDir: string;
  /** What opening the root found (torn tails cut, streams quarantined, time taken). */
  readonly recovery: RecoveryReport;

  private readonly entries = new Map<string, StreamEntry>();
  private readonly quarantine = new Map<string, QuarantinedStream>();
  private readonly handles: HandlePool;
  private readonly drains = new Set<Promise<void>>();
  private globalTail: Promise<unknown> = Promise.resolve();
  private closedState: 'open' | 'closing' | 'closed' = 'open';
  private closing: Promise<void> | undefined;
  private total = 0;
  private reserved = 0;
  private journal: Journal | undefined;
  private redo: Map<string, JournalEntry[]> | undefined;
  private redone = 0;
  private directSyncs = 0;
  private readonly tailCache: TailCache;

  private constructor(
    private readonly fs: FileSystem,
    root: string,
    private readonly clock: Clock,
    private readonly limits: ByteLimits,
    private readonly syncOnAppend: boolean,
    private readonly maxGroupBytes: number,
    maxOpenFiles: number,
    private readonly releaseLock: () => Promise<void>,
    private readonly useJournal: boolean | 'always',
    private readonly journalCheckpointBytes: number,
    tailCacheBytes: number,
    tailCacheStreamBytes: number,
    private readonly inlineWriteBytes: number,
  ) {
    this.rootDir = root;
    this.tailCache = new TailCache(tailCacheBytes, Math.min(tailCacheBytes, tailCacheStreamBytes));
    this.handles = new HandlePool(fs, maxOpenFiles);
    this.recovery = {
      streams: 0,
      messages: 0,
      logBytes: 0,
      truncated: [],
      redone: 0,
      quarantined: [],
      durationMs: 0,
    };
  }

  /**
   * Opens (creating it when missing) and locks a storage root, then recovers every stream: verifies each log's
   * checksums, cuts torn tails, rebuilds the in-memory index and state, and quarantines corrupt streams.
   *
   * @throws StorageError `UNAVAILABLE` when another process holds the root; an I/O code when the root is unusable.
   */
  static async open(options: FileStorageOptions): Promise<FileStorage> {
    if (typeof options?.rootDir !== 'string' || options.rootDir.length === 0) {
      throw new TypeError('rootDir must be a non-empty string');
    }
    const positive = (name: string, v: number | undefined, d: number): number => {
      if (v === undefined) return d;
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer`);
      return v;
    };
    const maxOpenFiles = positive('maxOpenFiles', options.maxOpenFiles, 256);
    const maxGroupBytes = positive('maxGroupBytes', options.maxGroupBytes, 16 * 1024 * 1024);
    const concurrency = positive('recoveryConcurrency', options.recoveryConcurrency, 8);
    const checkpointBytes = positive(
      'journalCheckpointBytes',
      options.journalCheckpointBytes,
      64 * 1024 * 1024,
    );
    const nonNegative = (name: string, v: number | undefined, d: number): number => {
      if (v === undefined) return d;
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer`);
      return v;
    };
    const tailCacheBytes = nonNegative('tailCacheBytes', options.tailCacheBytes, 1024 * 1024);
    const tailCacheStreamBytes = nonNegative(
      'tailCacheStreamBytes',
      options.tailCacheStreamBytes,
      256 * 1024,
    );
    const inlineWriteBytes = nonNegative('inlineWriteBytes', options.inlineWriteBytes, 128 * 1024);
    const limits = resolveByteLimits(options);
    const fs = options.fileSystem ?? nodeFileSystem;
    const root = resolve(options.rootDir);
    const started = performance.now();
    let release: (() => Promise<void>) | undefined;
    try {
      await fs.mkdir(root);
      release = await acquireRootLock(fs, root);
      const storage = new FileStorage(
        fs,
        root,
        options.clock ?? systemClock,
        limits,
        options.syncOnAppend ?? true,
        maxGroupBytes,
        maxOpenFiles,
        release,
        (options.syncOnAppend ?? true) ? (options.journal ?? true) : false,
        checkpointBytes,
        tailCacheBytes,
        tailCacheStreamBytes,
        inlineWriteBytes,
      );
      await storage.recover(concurrency, started);
      return storage;
    } catch (err) {
      if (release !== undefined) await release();
      throw classifyIoError(err, `opening storage root ${root}`);
    }
  }

  /** Payload bytes stored across all streams (tombstones included, framing excluded). */
  totalBytes(): number {
    return this.total;
  }

  /** Bytes the tail cache holds now, chunk overhead included (see {@link FileStorageOptions.tailCacheBytes}). */
  tailCacheBytes(): number {
    return this.tailCache.bytes;
  }

  /** Streams refused because they failed an integrity check. */
  quarantined(): QuarantinedStream[] {
    return [...this.quarantine.values()];
  }

  // -------------------------------------------------------------------------------------------------------------
  // Storage: lifecycle
  // -------------------------------------------------------------------------------------------------------------

  async createStream(name: string, options: CreateStreamOptions): Promise<CreateStreamResult> {
    this.assertOpen();
    assertStreamName(name);
    const now = this.clock.now();
    const config = resolveStreamOptions(options, now);
    const messages = options.messages ?? [];
    return this.withGlobal(async () => {
      const { existing, replace } = this.claimName(name, now);
      if (existing !== undefined) {
        if (existing.fork !== null || !createMatchesExisting(existing, config)) {
          throw new StorageError(
            'CONFIG_MISMATCH',
            `stream ${JSON.stringify(name)} exists with another config`,
          );
        }
        return { created: false, nextOffset: existing.tail(), closed: existing.closed };
      }
      const entry = await this.writeNewStream(
        { name, config, createdAt: now, fork: null, tombstone: false },
        messages,
        0,
        0,
        replace,
      );
      return { created: true, nextOffset: entry.tail(), closed: entry.closed };
    });
  }

  async createFork(name: string, options: ForkOptions): Promise<CreateStreamResult> {
    this.assertOpen();
    assertStreamName(name);
    const now = this.clock.now();
    // The request's own arguments first, before the source is looked up.
    const requested = validateForkRequest(options, now);
    const subOffset = requested.subOffset;
    return this.withGlobal(async () => {
      const source = this.entries.get(options.source);
      if (source === undefined) this.missing(options.source);
      if (source.tombstone) {
        throw new StorageError(
          'FORK_FROM_TOMBSTONE',
          `cannot fork ${JSON.stringify(options.source)}: it was deleted`,
        );
      }
      if (isExpired(source.config, now)) {
        throw new StorageError('EXPIRED', `stream ${JSON.stringify(options.source)} has expired`);
      }
      const sourceTail = source.tail();
      // `validateForkRequest` turns `-1` into (0, 0) and an offset with a part above 2^53 − 1 into `now`.
      const forkOffset: Offset = requested.offset ?? sourceTail;
      if (forkOffset === 'now' || compareOffsets(forkOffset, sourceTail) > 0) {
        throw new StorageError(
          'FORK_OFFSET_BEYOND_TAIL',
          `fork offset ${options.offset} lies beyond the tail ${sourceTail} of ${JSON.stringify(options.source)}`,
        );
      }
      const config = resolveForkConfig(options, source.config, now);
      const at = parseOffset(forkOffset) as { readSeq: number; byteOffset: number };
      let prefix: Uint8Array[] = [];
      if (subOffset > 0) {
        const json = isJsonContentType(source.config.contentType);
        const got = await this.collect(source, at.readSeq, at.byteOffset, undefined, json ? subOffset : 1);
        const first = got.messages[0];
        if (json ? got.messages.length < subOffset : first === undefined || first.byteLength < subOffset) {
          throw new StorageError(
            'FORK_SUB_OFFSET_OUT_OF_RANGE',
            `sub-offset ${subOffset} exceeds the data after the fork point`,
          );
        }
        prefix = json ? got.messages.slice() : [Buffer.from(first!.subarray(0, subOffset))];
      }
      const fork: ForkInfo = { source: options.source, offset: forkOffset, subOffset };
      const { existing, replace } = this.claimName(name, now);
      if (existing !== undefined) {
        const same =
          createMatchesExisting(existing, config) &&
          existing.fork !== null &&
          existing.fork.source === fork.source &&
          existing.fork.offset === fork.offset &&
          existing.fork.subOffset === fork.subOffset;
        if (!same) {
          throw new StorageError(
            'CONFIG_MISMATCH',
            `stream ${JSON.stringify(name)} exists with another config or lineage`,
          );
        }
        return { created: false, nextOffset: existing.tail(), closed: existing.closed };
      }
      const messages = prefix.concat(options.messages ?? []);
      const entry = await this.writeNewStream(
        { name, config, createdAt: now, fork, tombstone: false },
        messages,
        at.readSeq,
        at.byteOffset,
        replace,
      );
      source.refs++;
      return { created: true, nextOffset: entry.tail(), closed: entry.closed };
    });
  }

  async delete(name: string): Promise<DeleteResult> {
    this.assertOpen();
    assertStreamName(name);
    return this.withGlobal(async () => {
      const entry = this.entries.get(name);
      if (entry === undefined) this.missing(name);
      if (entry.tombstone) throw new StorageError('GONE', `stream ${JSON.stringify(name)} was deleted`);
      if (entry.refs > 0) {
        await this.makeTombstone(entry);
        return { softDeleted: true };
      }
      await this.removeEntry(entry);
      return { softDeleted: false };
    });
  }

  async cleanupExpiredStreams(): Promise<number> {
    this.assertOpen();
    return this.withGlobal(async () => {
      const now = this.clock.now();
      let count = 0;
      for (const entry of [...this.entries.values()]) {
        if (entry.removed || entry.tombstone || !isExpired(entry.config, now)) continue;
        if (entry.refs > 0) await this.makeTombstone(entry);
        else await this.removeEntry(entry);
        count++;
      }
      return count;
    });
  }

  async close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.closedState = 'closing';
    this.closing = (async () => {
      await this.globalTail.catch(() => undefined);
      while (this.drains.size > 0) await Promise.all(this.drains);
      await this.journal?.close().catch(() => undefined);
      await this.handles.closeAll();
      for (const entry of this.entries.values()) entry.listeners.clear();
      this.closedState = 'closed';
      await this.releaseLock();
    })();
    return this.closing;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Storage: commits
  // -------------------------------------------------------------------------------------------------------------

  async append(name: string, request: AppendRequest): Promise<AppendResult> {
    const r = await this.enqueueCommit(name, {
      messages: request.messages,
      contentType: request.contentType,
      seq: request.seq,
      close: request.close,
    });
    return { startOffset: r.startOffset, nextOffset: r.nextOffset, closed: r.closed };
  }

  closeStream(name: string, options?: { readonly seq?: string | undefined }): Promise<AppendResult> {
    return this.append(name, { messages: [], close: true, seq: options?.seq });
  }

  appendWithProducer(name: string, request: ProducerAppendRequest): Promise<ProducerAppendResult> {
    return this.enqueueCommit(name, request);
  }

  private enqueueCommit(name: string, request: CommitJob['request']): Promise<ProducerAppendResult> {
    try {
      this.assertOpen();
      assertStreamName(name);
      if (!Array.isArray(request?.messages)) throw new TypeError('messages must be an array');
      validateAppendRequest(request);
      const now = this.clock.now();
      const entry = this.entries.get(name);
      if (entry === undefined) this.missing(name);
      return new Promise<ProducerAppendResult>((resolve, reject) => {
        entry.queue.push({ kind: 'commit', request, now, resolve, reject });
        this.kick(entry);
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private kick(entry: StreamEntry): void {
    if (entry.draining) return;
    entry.draining = true;
    const p = this.drain(entry);
    this.drains.add(p);
    void p.finally(() => this.drains.delete(p));
  }

  /** Runs a stream's queue: exclusive jobs alone, consecutive commits as groups (one write, one sync each). */
  private async drain(entry: StreamEntry): Promise<void> {
    try {
      while (entry.queue.length > 0 || (entry.touchPending && !entry.removed)) {
        const head = entry.queue[0];
        if (head === undefined) {
          await this.writeTouch(entry);
          continue;
        }
        if (head.kind === 'exclusive') {
          entry.queue.shift();
          try {
            await head.run();
            head.resolve();
          } catch (err) {
            head.reject(err);
          }
          continue;
        }
        // Inline writes complete without leaving the microtask queue: a caller awaiting each append in a loop would
        // otherwise starve timers and I/O, so every so many groups of a stream one waits for the event loop.
        if (++entry.inlineRun >= INLINE_RUN) {
          entry.inlineRun = 0;
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        const group: CommitJob[] = [];
        let bytes = 0;
        while (group.length < MAX_GROUP_JOBS) {
          const next = entry.queue[0];
          if (next === undefined || next.kind !== 'commit') break;
          const n = batchBytes(next.request.messages);
          if (group.length > 0 && bytes + n > this.maxGroupBytes) break;
          entry.queue.shift();
          group.push(next);
          bytes += n;
        }
        await this.commitGroup(entry, group);
        // Several writers were waiting: give the ones just acknowledged one turn of the event loop to submit their
        // next appends, so that they join the next group instead of forming one of their own after it (a commit
        // delay of one turn, only under concurrency).
        if (group.length > 1) {
          entry.inlineRun = 0;
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    } finally {
      entry.draining = false;
    }
  }

  private async commitGroup(entry: StreamEntry, jobs: CommitJob[]): Promise<void> {
    let seq = entry.tailSeq;
    let bytes = entry.bytes;
    let closed = entry.closed;
    let lastSeq = entry.lastSeq;
    let overlay: Map<string, ProducerState> | undefined;
    const producers = {
      get: (id: string) => overlay?.get(id) ?? entry.producers.get(id),
    } as unknown as ReadonlyMap<string, ProducerState>;
    let groupBytes = 0;
    let hint = 0;
    for (const job of jobs) hint += batchBytes(job.request.messages) + job.request.messages.length * 4 + 96;
    let encoder: GroupEncoder | undefined;
    let applied = 0;
    const ttl = entry.config.ttlSeconds !== null;
    // Commits carry the newest deadline; reads that renew it during the write set the flag again.
    entry.touchPending = false;
    for (const job of jobs) {
      try {
        if (entry.removed) notFound(entry.name);
        const view: StreamStateView = {
          name: entry.name,
          config: entry.config,
          closed,
          tombstone: entry.tombstone,
          lastSeq,
          nextOffset: formatOffset(seq, entry.baseBytes + bytes),
          producers,
        };
        const plan = planCommit(view, job.request, job.now);
        if (plan.kind === 'duplicate') {
          const tail = formatOffset(seq, entry.baseBytes + bytes);
          job.result = {
            startOffset: tail,
            nextOffset: tail,
            closed,
            duplicate: true,
            epoch: plan.epoch,
            seq: plan.seq,
          };
          continue;
        }
        const messages = job.request.messages;
        const n = batchBytes(messages);
        if (n + messages.length * 4 + 256 > MAX_BODY) {
          throw new StorageError('MESSAGE_TOO_LARGE', 'a commit may hold at most 4 GiB');
        }
        checkByteLimits(this.limits, this.total + this.reserved, bytes, n);
        this.reserved += n;
        groupBytes += n;
        const expiresAt =
          ttl && plan.expiresAt !== null && entry.config.expiresAt !== null
            ? Math.max(plan.expiresAt, entry.config.expiresAt)
            : plan.expiresAt;
        // Messages below 16 KiB are copied into the encoder's buffer: size it for the whole group.
        encoder ??= new GroupEncoder(entry.logSize, entry.salt, hint);
        job.posStart = encoder.positions.length;
        encoder.commit(
          {
            closed: plan.closed,
            updatedAt: plan.updatedAt,
            expiresAt,
            lastSeq: plan.lastSeq,
            producer: plan.producer,
          },
          messages,
        );
        job.plan = plan;
        job.expiresAt = expiresAt;
        const start = formatOffset(seq, entry.baseBytes + bytes);
        seq += messages.length;
        bytes += n;
        closed = plan.closed;
        lastSeq = plan.lastSeq;
        if (plan.producer !== undefined) {
          overlay ??= new Map();
          overlay.set(plan.producer.id, plan.producer.state);
        }
        const p = job.request.producer;
        job.result = {
          startOffset: start,
          nextOffset: formatOffset(seq, entry.baseBytes + bytes),
          closed,
          duplicate: false,
          epoch: p?.epoch ?? 0,
          seq: p?.seq ?? 0,
        };
      } catch (err) {
        job.error = err;
      }
    }
    if (encoder !== undefined) {
      try {
        await this.writeAt(
          entry,
          encoder.finish(),
          encoder.startPos,
          `appending to ${JSON.stringify(entry.name)}`,
        );
      } catch (err) {
        this.reserved -= groupBytes;
        for (const job of jobs) job.reject(err);
        return;
      }
      const positions = encoder.positions;
      const cache = this.tailCache.enabled;
      let cum = entry.bytes;
      for (const job of jobs) {
        const plan = job.plan;
        if (plan === undefined) continue;
        const messages = job.request.messages;
        let k = job.posStart!;
        if (cache) this.tailCache.add(entry.cached, entry.index.count, cum, messages);
        for (const m of messages) {
          cum += m.byteLength;
          entry.index.push(positions[k++]!, cum);
        }
        entry.closed = plan.closed;
        entry.lastSeq = plan.lastSeq;
        entry.updatedAt = plan.updatedAt;
        if (job.expiresAt !== undefined && job.expiresAt !== null) {
          if (!ttl || entry.config.expiresAt === null || job.expiresAt > entry.config.expiresAt) {
            entry.config.expiresAt = job.expiresAt;
          }
        }
        if (plan.producer !== undefined) entry.producers.set(plan.producer.id, plan.producer.state);
        applied++;
      }
      entry.logSize = encoder.pos;
      entry.bytes = cum;
      this.total += groupBytes;
      this.reserved -= groupBytes;
    }
    for (const job of jobs) {
      if (job.error !== undefined) job.reject(job.error);
      else job.resolve(job.result!);
    }
    if (applied > 0) this.notify(entry);
  }

  /** Writes a deadline renewed by reads, so that it survives a restart. Failures only cost the renewal. */
  private async writeTouch(entry: StreamEntry): Promise<void> {
    entry.touchPending = false;
    const expiresAt = entry.config.expiresAt;
    if (expiresAt === null) return;
    const encoder = new GroupEncoder(entry.logSize, entry.salt);
    encoder.touch(expiresAt);
    try {
      await this.writeAt(entry, encoder.finish(), encoder.startPos, 'renewing a deadline');
      entry.logSize = encoder.pos;
    } catch {
      // The in-memory deadline stays renewed; the next commit or touch persists it.
    }
  }

  /**
   * Writes `parts` at `pos` (the end of the verified log) and syncs when configured. On failure the file is cut
   * back to `pos` so that no partial or unacknowledged record stays behind the next write; if even that fails, the
   * cut is retried before the next write.
   */
  private async writeAt(entry: StreamEntry, parts: Uint8Array[], pos: number, what: string): Promise<void> {
    let fh = this.handles.acquireOpen(entry);
    if (fh === undefined) {
      try {
        fh = await this.handles.acquire(entry);
      } catch (err) {
        throw classifyIoError(err, what);
      }
    }
    try {
      if (entry.needsTruncate) {
        await fh.truncate(pos);
        entry.needsTruncate = false;
      }
      let total = 0;
      for (const p of parts) total += p.byteLength;
      // A small write goes straight to the page cache from the event loop; it has completed (or thrown) before
      // anything else runs, so it never overlaps a journal entry or a checkpoint.
      const inline = total <= this.inlineWriteBytes && fh.writevSync !== undefined;
      const journal = this.journal;
      if (journal !== undefined && (this.useJournal === 'always' || !journal.idle || this.directSyncs > 0)) {
        // Other syncs are in flight: join the journal's next round, shared with every stream in it. The log write
        // and the journal entry are issued together, so that the groups of all streams reach the same round instead
        // of trailing behind their log writes; the commit completes once both are done (the journal holds the
        // durable copy, the log serves reads). The entry of a failed log write must never be replayed (the append
        // is reported as failed): the journal is emptied (logs synced, new salt) before the failure is reported.
        // An inline log write fails before its entry is submitted, so it has nothing to discard.
        entry.journaled ??= this.journaledLog(entry);
        journal.touch(entry.journaled);
        if (inline) {
          writeAllSync(fh, parts, pos, total);
          await journal.submit(entry.id, entry.salt, pos, parts);
        } else {
          const written = writeAll(fh, parts, pos, total);
          entry.logWrite = written;
          const [logged, durable] = await Promise.allSettled([
            written,
            journal.submit(entry.id, entry.salt, pos, parts),
          ]);
          entry.logWrite = null;
          if (logged.status === 'rejected') {
            if (durable.status === 'fulfilled') {
              // Cut the log back first, so that the checkpoint's sync of it does not keep a partial group.
              await fh.truncate(pos);
              await journal.discard();
            }
            throw logged.reason;
          }
          if (durable.status === 'rejected') throw durable.reason;
        }
      } else {
        if (inline) writeAllSync(fh, parts, pos, total);
        else await writeAll(fh, parts, pos, total);
        if (this.syncOnAppend) {
          // Nothing else is syncing: a sync of the log itself is one write and one sync cheaper than the journal.
          this.directSyncs++;
          try {
            await fh.datasync();
          } finally {
            this.directSyncs--;
          }
        }
      }
    } catch (err) {
      entry.needsTruncate = true;
      try {
        await fh.truncate(pos);
        entry.needsTruncate = false;
      } catch {
        // retried before the next write
      }
      throw classifyIoError(err, what);
    } finally {
      this.handles.release(entry);
    }
  }

  private journaledLog(entry: StreamEntry): JournaledLog {
    return {
      get removed() {
        return entry.removed;
      },
      syncLog: async () => {
        let fh: FileHandleLike;
        try {
          fh = await this.handles.acquire(entry);
        } catch (err) {
          // A log being deleted needs no checkpoint once the delete went through.
          if (errnoCode(err) === 'ENOENT' && entry.deleting !== null) await entry.deleting;
          if (entry.removed) return;
          throw err;
        }
        // A checkpoint right after a round may overtake the log write of one of its groups: sync after it.
        await entry.logWrite?.catch(() => undefined);
        try {
          await fh.datasync();
        } finally {
          this.handles.release(entry);
        }
      },
    };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Storage: reads
  // -------------------------------------------------------------------------------------------------------------

  async read(name: string, from: Offset, options?: ReadOptions): Promise<ReadResult> {
    this.assertOpen();
    assertStreamName(name);
    const parsed = parseOffset(from);
    const now = this.clock.now();
    const entry = this.visible(name, now);
    const closed = entry.closed;
    let result: ReadResult;
    if (parsed.kind === 'now') {
      result = { messages: [], nextOffset: entry.tail(), upToDate: true, closed };
    } else {
      const fromSeq = parsed.kind === 'start' ? 0 : parsed.readSeq;
      const fromBytes = parsed.kind === 'start' ? 0 : parsed.byteOffset;
      const maxBytes = options?.maxBytes;
      if (
        maxBytes !== undefined &&
        (typeof maxBytes !== 'number' || Number.isNaN(maxBytes) || maxBytes < 0)
      ) {
        throw new RangeError('maxBytes must be a non-negative number');
      }
      const got = await this.collect(entry, fromSeq, fromBytes, maxBytes, undefined);
      result = {
        messages: got.messages,
        nextOffset: got.next ?? entry.tail(),
        upToDate: got.next === undefined,
        closed,
      };
      if (got.next === undefined) {
        // The snapshot's tail: taken before any I/O, so appends racing with the read are not claimed.
        result = { ...result, nextOffset: got.tail };
      }
    }
    this.renewOnRead(entry, now);
    // A read that found nothing did no I/O; yield to the event loop so that a caller polling in a tight loop
    // cannot starve the writes it waits for (their completions are macrotasks).
    if (result.messages.length === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    return result;
  }

  /**
   * Gathers the logical messages of `entry` (ancestors first, within their fork bounds) at or after (seq, bytes).
   * All index lookups happen before the first await, so the result is one coherent snapshot.
   */
  private async collect(
    entry: StreamEntry,
    fromSeq: number,
    fromBytes: number,
    maxBytes: number | undefined,
    maxCount: number | undefined,
  ): Promise<{ messages: Uint8Array[]; next: Offset | undefined; tail: Offset }> {
    const tail = entry.tail();
    const segments: { e: StreamEntry; boundSeq: number; boundBytes: number }[] = [
      { e: entry, boundSeq: Number.POSITIVE_INFINITY, boundBytes: 0 },
    ];
    let boundSeq = Number.POSITIVE_INFINITY;
    let boundBytes = 0;
    for (let cur = entry; cur.fork !== null; ) {
      const src = this.entries.get(cur.fork.source);
      if (src === undefined) {
        throw new StorageError(
          'CORRUPTED',
          `stream ${JSON.stringify(entry.name)} is missing its ancestor ${JSON.stringify(cur.fork.source)}`,
        );
      }
      const fo = parseOffset(cur.fork.offset) as { readSeq: number; byteOffset: number };
      if (fo.readSeq < boundSeq || (fo.readSeq === boundSeq && fo.byteOffset < boundBytes)) {
        boundSeq = fo.readSeq;
        boundBytes = fo.byteOffset;
      }
      segments.push({ e: src, boundSeq, boundBytes });
      cur = src;
    }
    segments.reverse();
    const ranges: { e: StreamEntry; i: number; j: number }[] = [];
    let budget = maxBytes;
    let count = maxCount;
    let next: Offset | undefined;
    let taken = 0;
    for (const { e, boundSeq: bs, boundBytes: bb } of segments) {
      const i = e.lowerBound(fromSeq, fromBytes);
      const limit = bs === Number.POSITIVE_INFINITY ? e.index.count : e.lowerBound(bs, bb);
      if (i >= limit) continue;
      let j = limit;
      if (budget !== undefined) {
        j = taken === 0 || e.index.size(i) <= budget ? e.index.takeWithin(i, limit, budget) : i;
      }
      if (count !== undefined && j - i > count) j = i + count;
      if (j > i) {
        ranges.push({ e, i, j });
        taken += j - i;
        if (budget !== undefined) budget -= e.index.before(j) - e.index.before(i);
        if (count !== undefined) count -= j - i;
      }
      if (j < limit) {
        const last = ranges[ranges.length - 1]!;
        next = formatOffset(last.e.baseSeq + last.j, last.e.baseBytes + last.e.index.before(last.j));
        break;
      }
    }
    // Ranges inside a stream's cached tail are taken now, from the same snapshot as the index lookups.
    let pending = false;
    const found = ranges.map((r) => {
      const hit = this.tailCache.get(r.e.cached, r.e.index, r.i, r.j);
      if (hit !== undefined) return hit;
      pending = true;
      return this.readRange(entry, r.e, r.i, r.j);
    });
    const parts = pending ? await Promise.all(found) : (found as Uint8Array[][]);
    const messages = parts.length === 1 ? parts[0]! : parts.flat();
    return { messages, next, tail };
  }

  /** One positional read covering messages [i, j) of `e`, sliced into views without copying. */
  private async readRange(owner: StreamEntry, e: StreamEntry, i: number, j: number): Promise<Uint8Array[]> {
    const index = e.index;
    const start = index.position(i);
    const end = index.position(j - 1) + index.size(j - 1);
    const buf = Buffer.allocUnsafe(end - start);
    let fh = this.handles.acquireOpen(e);
    if (fh === undefined) {
      try {
        fh = await this.handles.acquire(e);
      } catch (err) {
        // The log vanished because the stream is being deleted: the read lost the race, so it answers as a read after
        // the delete would.
        if (errnoCode(err) === 'ENOENT' && e.deleting !== null) await e.deleting;
        if (e.removed) notFound(owner.name);
        throw classifyIoError(err, `reading ${JSON.stringify(e.name)}`);
      }
    }
    try {
      let got = 0;
      while (got < buf.byteLength) {
        const { bytesRead } = await fh.read(buf, got, buf.byteLength - got, start + got);
        if (bytesRead === 0) {
          throw new StorageError(
            'CORRUPTED',
            `the log of ${JSON.stringify(e.name)} is shorter than its index (truncated outside the storage?)`,
          );
        }
        got += bytesRead;
      }
    } catch (err) {
      throw classifyIoError(err, `reading ${JSON.stringify(e.name)}`);
    } finally {
      this.handles.release(e);
    }
    const out = new Array<Uint8Array>(j - i);
    for (let k = i; k < j; k++) {
      const at = index.position(k) - start;
      out[k - i] = buf.subarray(at, at + index.size(k));
    }
    return out;
  }

  private renewOnRead(entry: StreamEntry, now: number): void {
    if (entry.config.ttlSeconds === null || entry.removed) return;
    const deadline = renewedDeadline(entry.config, now);
    if (deadline === null || (entry.config.expiresAt !== null && deadline <= entry.config.expiresAt)) return;
    entry.config.expiresAt = deadline;
    entry.touchPending = true;
    this.kick(entry);
  }

  async head(name: string): Promise<StreamMetadata> {
    this.assertOpen();
    assertStreamName(name);
    return this.metadata(this.visible(name, this.clock.now()));
  }

  async exists(name: string): Promise<boolean> {
    this.assertOpen();
    assertStreamName(name);
    try {
      this.visible(name, this.clock.now());
      return true;
    } catch (err) {
      if (isStorageError(err, 'NOT_FOUND') || isStorageError(err, 'GONE') || isStorageError(err, 'EXPIRED')) {
        return false;
      }
      throw err;
    }
  }

  async subscribe(name: string, listener: StreamListener): Promise<Subscription> {
    this.assertOpen();
    assertStreamName(name);
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    const entry = this.visible(name, this.clock.now());
    // A distinct wrapper per call, so subscribing one function twice yields two independent registrations.
    const wrapper: StreamListener = () => listener();
    entry.listeners.add(wrapper);
    return { unsubscribe: () => void entry.listeners.delete(wrapper) };
  }

  async listStreams(options?: ListStreamsOptions): Promise<StreamMetadata[]> {
    this.assertOpen();
    const now = this.clock.now();
    const prefix = options?.prefix;
    const after = options?.after;
    const limit = options?.limit;
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new RangeError('limit must be a non-negative integer');
    }
    const names: string[] = [];
    for (const e of this.entries.values()) {
      if (e.tombstone || isExpired(e.config, now)) continue;
      if (prefix !== undefined && !e.name.startsWith(prefix)) continue;
      if (after !== undefined && compareUtf8(e.name, after) <= 0) continue;
      names.push(e.name);
    }
    names.sort(compareUtf8);
    const picked = limit === undefined ? names : names.slice(0, limit);
    return picked.map((n) => this.metadata(this.entries.get(n)!));
  }

  // -------------------------------------------------------------------------------------------------------------
  // Internals: names, metadata, lifecycle on disk
  // -------------------------------------------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closedState !== 'open') throw new StorageError('STORAGE_CLOSED', 'the storage is closed');
  }

  private missing(name: string): never {
    if (this.quarantine.size > 0) {
      const q = this.quarantine.get(streamId(name));
      if (q !== undefined) {
        throw new StorageError('CORRUPTED', `stream ${JSON.stringify(name)} is quarantined: ${q.reason}`);
      }
    }
    notFound(name);
  }

  private visible(name: string, now: number): StreamEntry {
    const entry = this.entries.get(name);
    if (entry === undefined) this.missing(name);
    checkAccess(entry, now);
    return entry;
  }

  private metadata(e: StreamEntry): StreamMetadata {
    return {
      name: e.name,
      config: { ...e.config },
      nextOffset: e.tail(),
      closed: e.closed,
      totalBytes: e.bytes,
      messageCount: e.index.count,
      createdAt: e.createdAt,
      updatedAt: e.updatedAt,
      lastSeq: e.lastSeq,
      fork: e.fork,
    };
  }

  private notify(entry: StreamEntry): void {
    for (const l of entry.listeners) {
      try {
        l();
      } catch {
        // listeners must not throw; one that does must not break the commit or other listeners
      }
    }
  }

  private withGlobal<T>(fn: () => Promise<T>): Promise<T> {
    // Admitted before close(): runs to completion, close() waits for it.
    const run = this.globalTail.then(fn);
    this.globalTail = run.catch(() => undefined);
    return run;
  }

  /** Runs `fn` in the stream's queue, after every commit admitted before it. */
  private exclusive(entry: StreamEntry, fn: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      entry.queue.push({ kind: 'exclusive', run: fn, resolve, reject });
      this.kick(entry);
    });
  }

  /**
   * Applies the create rules for an existing name without changing anything: `existing` is the live entry to compare
   * with; `replace` an expired, unreferenced stream the create will remove once every other check passed.
   */
  private claimName(name: string, now: number): { existing?: StreamEntry; replace?: StreamEntry } {
    const existing = this.entries.get(name);
    if (existing === undefined) {
      if (this.quarantine.has(streamId(name))) this.missing(name);
      return {};
    }
    if (existing.tombstone) {
      throw new StorageError('PATH_BLOCKED', `stream ${JSON.stringify(name)} is deleted but still forked`);
    }
    if (isExpired(existing.config, now)) {
      if (existing.refs > 0) {
        throw new StorageError('PATH_BLOCKED', `expired stream ${JSON.stringify(name)} is still forked`);
      }
      return { replace: existing };
    }
    return { existing };
  }

  private streamsDir(): string {
    return join(this.rootDir, STREAMS_DIR);
  }

  /**
   * Creates a stream on disk in one crash-safe step: the log (header plus the initial commit) and meta.json are
   * written and synced in a private directory under tmp/, which is then renamed into streams/ (and streams/ synced).
   * A crash before the rename leaves only tmp/ debris, removed at the next open.
   */
  private async writeNewStream(
    meta: StreamMeta,
    messages: readonly Uint8Array[],
    baseSeq: number,
    baseBytes: number,
    replace: StreamEntry | undefined,
  ): Promise<StreamEntry> {
    const n = batchBytes(messages);
    if (n + messages.length * 4 + 256 > MAX_BODY) {
      throw new StorageError('MESSAGE_TOO_LARGE', 'a commit may hold at most 4 GiB');
    }
    checkByteLimits(this.limits, this.total + this.reserved - (replace?.bytes ?? 0), 0, n);
    const id = streamId(meta.name);
    const tmp = join(this.rootDir, TMP_DIR, `${id}.${randomUUID()}`);
    const dir = join(this.streamsDir(), id);
    const salt = newSalt();
    const encoder = new GroupEncoder(LOG_HEADER_SIZE, salt);
    if (messages.length > 0) {
      encoder.commit(
        {
          closed: meta.config.createdClosed,
          updatedAt: null,
          expiresAt: meta.config.expiresAt,
          lastSeq: null,
        },
        messages,
      );
    }
    this.reserved += n;
    try {
      await this.fs.mkdir(tmp);
      await writeSynced(this.fs, join(tmp, LOG_FILE), [encodeLogHeader(salt), ...encoder.finish()]);
      await writeSynced(this.fs, join(tmp, META_FILE), [encodeMeta(meta)]);
      await syncDir(this.fs, tmp);
      // The expired stream goes only now that the new one is ready; a crash in between loses nothing visible.
      if (replace !== undefined && !replace.removed) await this.removeEntry(replace);
      await this.fs.rename(tmp, dir);
      await syncDir(this.fs, this.streamsDir());
    } catch (err) {
      this.reserved -= n;
      await this.fs.rmrf(tmp).catch(() => undefined);
      throw classifyIoError(err, `creating ${JSON.stringify(meta.name)}`);
    }
    this.reserved -= n;
    const entry = new StreamEntry(
      id,
      meta.name,
      dir,
      { ...meta.config },
      meta.createdAt,
      meta.fork,
      baseSeq,
      baseBytes,
      false,
      salt,
      encoder.pos,
    );
    let cum = 0;
    let k = 0;
    for (const m of messages) {
      cum += m.byteLength;
      entry.index.push(encoder.positions[k++]!, cum);
    }
    entry.bytes = cum;
    this.total += cum;
    this.entries.set(meta.name, entry);
    return entry;
  }

  /** Rewrites meta.json with the tombstone flag (write, sync, rename, sync the directory). */
  private async makeTombstone(entry: StreamEntry): Promise<void> {
    await this.exclusive(entry, async () => {
      const meta = { ...entry.meta(), tombstone: true };
      try {
        await replaceFile(this.fs, entry.dir, META_FILE, encodeMeta(meta));
      } catch (err) {
        throw classifyIoError(err, `deleting ${JSON.stringify(entry.name)}`);
      }
      entry.tombstone = true;
      this.notify(entry);
      entry.listeners.clear();
    });
  }

  /**
   * Hard-deletes a stream: renames its directory into trash/ (atomic; streams/ synced), then removes it. Then walks
   * up the lineage: a tombstoned source left without forks is removed too. A crash mid-way leaves tombstones without
   * forks, which the next open removes.
   */
  private async removeEntry(entry: StreamEntry): Promise<void> {
    const trash = join(this.rootDir, TRASH_DIR, `${entry.id}.${randomUUID()}`);
    await this.exclusive(entry, async () => {
      // Reads do not wait for the stream's queue: one that finds the log gone while it is being moved waits for
      // `deleting` and then answers NOT_FOUND (see readRange). The entry is marked removed only once the move is
      // durable, so nothing reports the stream gone before a crash could no longer bring it back.
      let settle!: () => void;
      entry.deleting = new Promise<void>((resolve) => {
        settle = resolve;
      });
      try {
        try {
          await this.fs.rename(entry.dir, trash);
        } catch (err) {
          throw classifyIoError(err, `deleting ${JSON.stringify(entry.name)}`);
        }
        let synced: unknown;
        try {
          await syncDir(this.fs, this.streamsDir());
        } catch (err) {
          synced = err;
        }
        // Moved into trash/, which the next open empties: the stream cannot be served any more, even when the
        // directory sync failed (the delete is then reported as failed, since it may not survive a crash).
        entry.removed = true;
        entry.touchPending = false;
        this.entries.delete(entry.name);
        this.total -= entry.bytes;
        this.handles.discard(entry);
        this.tailCache.clear(entry.cached);
        this.notify(entry);
        entry.listeners.clear();
        if (synced !== undefined) throw classifyIoError(synced, `deleting ${JSON.stringify(entry.name)}`);
      } finally {
        entry.deleting = null;
        settle();
      }
    });
    await this.fs.rmrf(trash).catch(() => undefined);
    if (entry.fork !== null) {
      const source = this.entries.get(entry.fork.source);
      if (source !== undefined) {
        source.refs = Math.max(0, source.refs - 1);
        if (source.tombstone && source.refs === 0) await this.removeEntry(source);
      }
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Recovery
  // -------------------------------------------------------------------------------------------------------------

  private async recover(concurrency: number, started: number): Promise<void> {
    const fs = this.fs;
    const root = this.rootDir;
    const formatPath = join(root, FORMAT_FILE);
    if (await fs.exists(formatPath)) {
      const text = Buffer.from(await fs.readFile(formatPath)).toString('utf8');
      if (text !== FORMAT_TEXT) {
        throw new StorageError('CORRUPTED', `${formatPath} names an unknown format: ${JSON.stringify(text)}`);
      }
    } else {
      await replaceFile(fs, root, FORMAT_FILE, Buffer.from(FORMAT_TEXT));
    }
    for (const d of [STREAMS_DIR, TMP_DIR, TRASH_DIR]) await fs.mkdir(join(root, d));
    for (const d of [TMP_DIR, TRASH_DIR]) {
      for (const child of await fs.readdir(join(root, d))) await fs.rmrf(join(root, d, child));
    }
    const journalPath = join(root, JOURNAL_FILE);
    const hadJournal = await fs.exists(journalPath);
    if (hadJournal) this.redo = parseJournal(Buffer.from(await fs.readFile(journalPath)));
    const ids = (await fs.readdir(this.streamsDir())).filter((n) => STREAM_ID_RE.test(n));
    const truncated: { name: string; bytes: number }[] = [];
    let messages = 0;
    let logBytes = 0;
    let cursor = 0;
    const worker = async (): Promise<void> => {
      while (cursor < ids.length) {
        const id = ids[cursor++]!;
        const r = await this.loadStream(id);
        if (r === undefined) continue;
        messages += r.entry.index.count;
        logBytes += r.entry.logSize;
        if (r.cut > 0) truncated.push({ name: r.entry.name, bytes: r.cut });
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
    for (const e of this.entries.values()) {
      if (e.fork === null) continue;
      const src = this.entries.get(e.fork.source);
      if (src !== undefined) src.refs++;
    }
    // Finish cascades a crash interrupted: a tombstone nobody forks any more is removed. Not while some stream is
    // quarantined, since its forks cannot be counted.
    if (this.quarantine.size === 0) {
      for (const e of [...this.entries.values()]) {
        if (!e.removed && e.tombstone && e.refs === 0) await this.removeEntry(e);
      }
    }
    // Every redone log is synced now, so the old journal's content is no longer needed.
    this.redo = undefined;
    if (this.useJournal !== false) {
      const fh = await fs.open(journalPath, hadJournal ? 'r+' : 'wx+');
      try {
        this.journal = await Journal.create(fh, this.journalCheckpointBytes, this.inlineWriteBytes);
      } catch (err) {
        await fh.close();
        throw err;
      }
      if (!hadJournal) await syncDir(fs, root);
    } else if (hadJournal) {
      await fs.unlink(journalPath);
      await syncDir(fs, root);
    }
    (this as { recovery: RecoveryReport }).recovery = {
      streams: this.entries.size,
      messages,
      logBytes,
      truncated,
      redone: this.redone,
      quarantined: [...this.quarantine.values()],
      durationMs: performance.now() - started,
    };
  }

  private async loadStream(id: string): Promise<{ entry: StreamEntry; cut: number } | undefined> {
    const fs = this.fs;
    const dir = join(this.streamsDir(), id);
    let name: string | undefined;
    const refuse = (reason: string): undefined => {
      this.quarantine.set(id, { dir, name, reason });
      return undefined;
    };
    let meta: StreamMeta;
    try {
      meta = decodeMeta(await fs.readFile(join(dir, META_FILE)));
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') return refuse('meta.json is missing');
      if (code !== undefined) throw err;
      return refuse((err as Error).message);
    }
    name = meta.name;
    if (streamId(meta.name) !== id) return refuse('meta.json names a stream that does not belong here');
    let base = { readSeq: 0, byteOffset: 0 };
    if (meta.fork !== null) {
      try {
        const p = parseOffset(meta.fork.offset);
        if (p.kind !== 'position') return refuse('meta.json holds an invalid fork offset');
        base = p;
      } catch {
        return refuse('meta.json holds an invalid fork offset');
      }
    }
    let fh: FileHandleLike;
    try {
      fh = await fs.open(join(dir, LOG_FILE), 'r+');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return refuse('the log is missing');
      throw err;
    }
    try {
      let { size } = await fh.stat();
      const header = Buffer.alloc(LOG_HEADER_SIZE);
      if (size >= LOG_HEADER_SIZE) await fh.read(header, 0, LOG_HEADER_SIZE, 0);
      const salt = size >= LOG_HEADER_SIZE ? decodeLogHeader(header) : undefined;
      if (salt === undefined) return refuse('the log header is damaged');
      const redo = this.redo?.get(id)?.filter((e) => e.salt === salt);
      if (redo !== undefined && redo.length > 0) {
        // Re-apply journaled group writes in order. A group that was rolled back after a failed commit is followed
        // by one at the same position; whatever the rolled-back group left beyond the last write is cut.
        let end = 0;
        let furthest = 0;
        for (const e of redo) {
          await writeAll(fh, [e.bytes], e.position, e.bytes.byteLength);
          end = e.position + e.bytes.byteLength;
          furthest = Math.max(furthest, end);
        }
        if (furthest > end) await fh.truncate(end);
        await fh.datasync();
        size = (await fh.stat()).size;
        this.redone += redo.length;
      }
      const entry = new StreamEntry(
        id,
        meta.name,
        dir,
        { ...meta.config },
        meta.createdAt,
        meta.fork,
        base.readSeq,
        base.byteOffset,
        meta.tombstone,
        salt,
        LOG_HEADER_SIZE,
      );
      let cum = 0;
      const result = await scanLog(fh, size, salt, {
        message: (position, length) => {
          cum += length;
          entry.index.push(position, cum);
        },
        commit: (closed, updatedAt, expiresAt, lastSeq, producer) => {
          entry.closed = closed;
          if (updatedAt !== null) entry.updatedAt = updatedAt;
          if (expiresAt !== null) entry.config.expiresAt = expiresAt;
          if (lastSeq !== null) entry.lastSeq = lastSeq;
          if (producer !== undefined) entry.producers.set(producer.id, producer.state);
        },
        touch: (expiresAt) => {
          entry.config.expiresAt = expiresAt;
        },
      });
      if (result.kind === 'corrupt') return refuse(result.reason);
      let cut = 0;
      if (result.kind === 'torn') {
        cut = size - result.end;
        await fh.truncate(result.end);
        await fh.datasync();
      }
      entry.logSize = result.end;
      entry.bytes = cum;
      const now = this.clock.now();
      for (const [pid, state] of entry.producers) {
        if (now - state.updatedAt > PRODUCER_STATE_TTL_MS) entry.producers.delete(pid);
      }
      this.entries.set(entry.name, entry);
      this.total += cum;
      return { entry, cut };
    } finally {
      await fh.close();
    }
  }
}

function skipBytes(parts: Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = n;
  for (const p of parts) {
    if (skip >= p.byteLength) {
      skip -= p.byteLength;
      continue;
    }
    out.push(skip > 0 ? p.subarray(skip) : p);
    skip = 0;
  }
  return out;
}

/** Creates `path` exclusively with `parts` and syncs it. */
async function writeSynced(fs: FileSystem, path: string, parts: Uint8Array[]): Promise<void> {
  const fh = await fs.open(path, 'wx+');
  try {
    let total = 0;
    for (const p of parts) total += p.byteLength;
    let written = 0;
    let rest = parts;
    while (written < total) {
      const { bytesWritten } = await fh.writev(rest, written);
      if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
      written += bytesWritten;
      if (written < total) rest = skipBytes(rest, bytesWritten);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Atomically replaces `dir/file`: write a temporary sibling, sync it, rename it over, sync the directory. */
async function replaceFile(fs: FileSystem, dir: string, file: string, data: Uint8Array): Promise<void> {
  const tmp = join(dir, `${file}.${randomUUID()}.tmp`);
  try {
    await writeSynced(fs, tmp, [data]);
    await fs.rename(tmp, join(dir, file));
  } catch (err) {
    await fs.unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(fs, dir);
}
