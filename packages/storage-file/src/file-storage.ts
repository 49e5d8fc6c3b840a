import { join, resolve } from 'node:path';
import {
  type AppendRequest,
  type AppendResult,
  appendResultOf,
  type Clock,
  type CommitObserver,
  type CommitRequest,
  type CreateStreamOptions,
  type CreateStreamResult,
  compareUtf8,
  type DeleteResult,
  type ForkOptions,
  isStorageError,
  isVisible,
  type ListStreamsOptions,
  type ListSubscriptionsOptions,
  listingFull,
  listingIncludes,
  type Offset,
  type ProducerAppendRequest,
  type ProducerAppendResult,
  type ReadOptions,
  type ReadResult,
  readStart,
  resolveByteLimits,
  type Storage,
  type StorageCapabilities,
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
import { enqueueCommit, renewOnRead } from './commit.js';
import { Core, type QuarantinedStream } from './core.js';
import { classifyIoError, defaultMaxOpenFiles, type FileSystem, nodeFileSystem, syncDir } from './fs.js';
import { CLEAN_FILE } from './layout.js';
import {
  cleanupExpired,
  createFork,
  createStream,
  deleteStream,
  removeOrphanTombstones,
} from './lifecycle.js';
import { ancestors, collect } from './lineage.js';
import { acquireRootLock } from './lock.js';
import { ProgressReporter, type RecoveryProgress } from './progress.js';
import { type RecoveryReport, recover, verifyAll } from './recovery.js';
import type { StreamEntry } from './stream-entry.js';
import { FileSubscriptions } from './subscriptions.js';

export type { QuarantinedStream } from './core.js';
export type { RecoveryProgress } from './progress.js';
export type { RecoveryReport } from './recovery.js';

/** Options of {@link FileStorage.open}. */
export interface FileStorageOptions {
  /** The storage root. Created when missing; locked against other processes while open. */
  readonly rootDir: string;
  /**
   * Acknowledge an append only after `fdatasync` made it durable (appends in flight together share one sync).
   * Off: appends are acknowledged once written to the OS (they survive a process crash, not a power loss).
   * Creates, forks, deletes and tombstones are always synced (in flight together, they share one sync). @default true
   */
  readonly syncOnAppend?: boolean | undefined;
  /** Payload bytes across all streams. @default unlimited */
  readonly maxTotalBytes?: number | undefined;
  /** Payload bytes stored locally by one stream. @default unlimited */
  readonly maxStreamBytes?: number | undefined;
  /** The source of "now". @default the system clock */
  readonly clock?: Clock | undefined;
  /**
   * Log files kept open at once; least recently used are closed beyond it.
   * @default a quarter of the process's open-file limit, between 256 and 16384 (1024 where the limit is unknown)
   */
  readonly maxOpenFiles?: number | undefined;
  /**
   * Streams kept loaded (offset index, producer state, commit queue in memory); beyond it, the least recently used
   * idle ones are dropped and loaded again from their logs on next use. A stream in use (being written, read, or
   * followed by a live reader) is never dropped. @default 10000
   */
  readonly maxLoadedStreams?: number | undefined;
  /** Payload bytes gathered into one group write (one write + one sync) per stream. @default 16 MiB */
  readonly maxGroupBytes?: number | undefined;
  /**
   * With `syncOnAppend`, make group writes durable through a shared commit journal when other syncs are in flight:
   * one `fdatasync` of the journal covers the groups of every stream in that round (cross-stream group commit), and
   * those logs are synced at checkpoints. A group with no other sync in flight syncs its own log. `'always'` sends
   * every group through the journal (for tests and measurements); `false` never. Lifecycle changes always go
   * through the journal. @default true
   */
  readonly journal?: boolean | 'always' | undefined;
  /** Journal size that triggers a checkpoint (sync the written logs, save the catalog, empty the journal). @default 64 MiB */
  readonly journalCheckpointBytes?: number | undefined;
  /** Streams verified concurrently by `verifyOnOpen`. @default 8 */
  readonly recoveryConcurrency?: number | undefined;
  /**
   * Read and verify every stream's log while opening (checksums, torn tails, quarantine), as a full check; the
   * time taken then grows with the data stored. Off, each log is verified when its stream is first used, and
   * opening takes time in proportion to the number of streams' names only. @default false
   */
  readonly verifyOnOpen?: boolean | undefined;
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
   * Streams whose whole log (16-byte header plus records) is at most this many bytes get no file of their own: with
   * the journal on, their bytes are carried in the catalog snapshot at checkpoints, and a file is created once they
   * grow past it. Creating a file per stream is what appends spread over many thousands of small streams cost most.
   * `0` gives every written stream its own log file (the layout of 0.1.0). @default 8 KiB
   */
  readonly carryStreamBytes?: number | undefined;
  /**
   * Bytes of carried logs of all streams together (held in memory and rewritten with every snapshot); beyond it,
   * streams get files of their own. @default 32 MiB
   */
  readonly carryBudgetBytes?: number | undefined;
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
  /**
   * Called after each commit group is durable, with its size and the time its write and sync took (the journal
   * round's, when the group shared one). See `CommitReport` in `@streamkeep/storage`.
   */
  readonly onCommit?: CommitObserver | undefined;
}

const CAPABILITIES: StorageCapabilities = Object.freeze({
  durable: true,
  forks: true,
  expiry: true,
  producers: true,
  listStreams: true,
  byteLimits: true,
  multiInstance: false,
  subscriptions: true,
});

/**
 * File-backed {@link Storage}: a catalog of streams, one checksummed append-only log per stream loaded on first use,
 * group commit within and across streams, crash-safe lifecycle. See the package README for the on-disk format and
 * the guarantees.
 */
export class FileStorage implements Storage, SubscriptionStore {
  readonly specificationVersion = 'v1' as const;
  readonly capabilities: StorageCapabilities = CAPABILITIES;
  readonly rootDir: string;
  /** What opening the root found (journal replayed, migration, torn tails cut, streams quarantined, time taken). */
  readonly recovery: RecoveryReport;
  private closing: Promise<void> | undefined;
  private readonly subscriptions: FileSubscriptions;

  private constructor(
    private readonly core: Core,
    private readonly releaseLock: () => Promise<void>,
    report: RecoveryReport,
  ) {
    this.rootDir = core.root;
    this.recovery = report;
    this.subscriptions = new FileSubscriptions(core, CAPABILITIES);
  }

  /**
   * Opens (creating it when missing) and locks a storage root: reads the catalog, re-applies the journal after a
   * crash, migrates a root of an older format. Stream logs are verified on first use (or all now, with
   * `verifyOnOpen`).
   *
   * @throws StorageError `UNAVAILABLE` when another process holds the root; an I/O code when the root is unusable;
   * `CORRUPTED` when the root's format or catalog cannot be read.
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
    const nonNegative = (name: string, v: number | undefined, d: number): number => {
      if (v === undefined) return d;
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer`);
      return v;
    };
    const syncOnAppend = options.syncOnAppend ?? true;
    const concurrency = positive('recoveryConcurrency', options.recoveryConcurrency, 8);
    const checkpointBytes = positive(
      'journalCheckpointBytes',
      options.journalCheckpointBytes,
      64 * 1024 * 1024,
    );
    const progressMs = nonNegative('progressIntervalMs', options.progressIntervalMs, 2000);
    const core = new Core({
      fs: options.fileSystem ?? nodeFileSystem,
      root: resolve(options.rootDir),
      clock: options.clock ?? systemClock,
      limits: resolveByteLimits(options),
      syncOnAppend,
      useJournal: syncOnAppend ? (options.journal ?? true) : false,
      maxGroupBytes: positive('maxGroupBytes', options.maxGroupBytes, 16 * 1024 * 1024),
      maxOpenFiles: positive('maxOpenFiles', options.maxOpenFiles, defaultMaxOpenFiles()),
      maxLoadedStreams: positive('maxLoadedStreams', options.maxLoadedStreams, 10_000),
      inlineWriteBytes: nonNegative('inlineWriteBytes', options.inlineWriteBytes, 128 * 1024),
      carryStreamBytes: nonNegative('carryStreamBytes', options.carryStreamBytes, 8 * 1024),
      carryBudgetBytes: nonNegative('carryBudgetBytes', options.carryBudgetBytes, 32 * 1024 * 1024),
      tailCacheBytes: nonNegative('tailCacheBytes', options.tailCacheBytes, 1024 * 1024),
      tailCacheStreamBytes: nonNegative('tailCacheStreamBytes', options.tailCacheStreamBytes, 256 * 1024),
      onQuarantine: options.onQuarantine,
      onCommit: options.onCommit,
    });
    const started = performance.now();
    const progress = new ProgressReporter(options.onProgress, progressMs, started);
    let release: (() => Promise<void>) | undefined;
    try {
      await core.fs.mkdir(core.root);
      release = await acquireRootLock(core.fs, core.root);
      const found = await recover(core, progress, checkpointBytes);
      for (const q of core.quarantine.values()) core.settings.onQuarantine?.(q);
      let messages = 0;
      let logBytes = 0;
      if (options.verifyOnOpen === true) {
        ({ messages, logBytes } = await verifyAll(core, concurrency, progress));
      }
      await removeOrphanTombstones(core);
      const storage = new FileStorage(core, release, {
        ...found,
        messages,
        logBytes,
        truncated: [...core.truncated],
        quarantined: [...core.quarantine.values()],
        durationMs: performance.now() - started,
      });
      return storage;
    } catch (err) {
      await core.journal?.close().catch(() => undefined);
      await core.closeFiles();
      if (release !== undefined) await release();
      throw classifyIoError(err, `opening storage root ${core.root}`);
    }
  }

  /** Payload bytes stored across all streams (tombstones included, framing excluded). */
  totalBytes(): number {
    return this.core.total;
  }

  /** Bytes the tail cache holds now, chunk overhead included (see {@link FileStorageOptions.tailCacheBytes}). */
  tailCacheBytes(): number {
    return this.core.tailCache.bytes;
  }

  /** Streams refused because they failed an integrity check (at open or on first use). */
  quarantined(): QuarantinedStream[] {
    return [...this.core.quarantine.values()];
  }

  /** Streams whose log is loaded now (see {@link FileStorageOptions.maxLoadedStreams}). */
  loadedStreams(): number {
    return this.core.entries.size;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Storage: lifecycle
  // -------------------------------------------------------------------------------------------------------------

  async createStream(name: string, options: CreateStreamOptions): Promise<CreateStreamResult> {
    this.core.assertOpen();
    const now = this.core.clock.now();
    const config = validateCreateStream(CAPABILITIES, name, options, now);
    return createStream(this.core, name, config, options.messages ?? [], now);
  }

  async createFork(name: string, options: ForkOptions): Promise<CreateStreamResult> {
    this.core.assertOpen();
    const now = this.core.clock.now();
    const requested = validateCreateFork(CAPABILITIES, name, options, now);
    return createFork(this.core, name, options, requested, now);
  }

  async delete(name: string): Promise<DeleteResult> {
    this.core.assertOpen();
    validateName(name);
    return deleteStream(this.core, name);
  }

  async cleanupExpiredStreams(): Promise<number> {
    this.core.assertOpen();
    return cleanupExpired(this.core);
  }

  async close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    const core = this.core;
    core.state = 'closing';
    this.closing = (async () => {
      while (core.ops.size > 0) await Promise.allSettled([...core.ops]);
      while (core.drains.size > 0) await Promise.all(core.drains);
      // A failed final checkpoint loses nothing (the journal keeps every acknowledged group and the next open
      // replays it), but the caller learns of it once everything is released.
      const failed = await core.journal.close().then(
        () => undefined,
        (err: unknown) => ({ err }),
      );
      await core.closeFiles();
      for (const entry of core.entries.values()) entry.listeners.clear();
      // Everything is in the logs and the snapshot: the next open may trust the snapshot's stream summaries.
      if (failed === undefined) {
        await core.fs
          .writeFile(join(core.root, CLEAN_FILE), Buffer.from('clean shutdown\n'))
          .then(() => syncDir(core.fs, core.root))
          .catch(() => undefined);
      }
      core.state = 'closed';
      await this.releaseLock();
      if (failed !== undefined) throw classifyIoError(failed.err, 'the final checkpoint at close');
    })();
    return this.closing;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Storage: commits
  // -------------------------------------------------------------------------------------------------------------

  async append(name: string, request: AppendRequest): Promise<AppendResult> {
    this.core.assertOpen();
    validateAppend(name, request);
    // A copy without a `producer` field the caller may have set: a plain append never runs the producer rules.
    const { messages, contentType, seq, close } = request;
    return appendResultOf(await this.commit(name, { messages, contentType, seq, close }));
  }

  async closeStream(name: string, options?: { readonly seq?: string | undefined }): Promise<AppendResult> {
    this.core.assertOpen();
    return appendResultOf(await this.commit(name, validateCloseStream(name, options)));
  }

  async appendWithProducer(name: string, request: ProducerAppendRequest): Promise<ProducerAppendResult> {
    this.core.assertOpen();
    validateProducerAppend(CAPABILITIES, name, request);
    return this.commit(name, request);
  }

  /** A commit whose arguments were validated. */
  private async commit(name: string, request: CommitRequest): Promise<ProducerAppendResult> {
    const now = this.core.clock.now();
    const got = this.core.load(name);
    const entry = got instanceof Promise ? await got : got;
    return enqueueCommit(this.core, entry, { request, now });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Storage: reads
  // -------------------------------------------------------------------------------------------------------------

  async read(name: string, from: Offset, options?: ReadOptions): Promise<ReadResult> {
    const core = this.core;
    core.assertOpen();
    const { from: parsed, maxBytes } = validateRead(name, from, options);
    const now = core.clock.now();
    const entry = await core.visible(name, now);
    let result: ReadResult;
    if (parsed.kind === 'now') {
      result = tailReadResult(entry.tail(), entry.closed);
    } else {
      const { readSeq: fromSeq, byteOffset: fromBytes } = readStart(parsed);
      const lineage = entry.fork === null ? [] : await ancestors(core, entry);
      const closed = entry.closed;
      const got = await collect(core, entry, lineage, fromSeq, fromBytes, maxBytes, undefined);
      // At the tail, the snapshot's tail: taken before any I/O, so appends racing with the read are not claimed.
      result = {
        messages: got.messages,
        nextOffset: got.next ?? got.tail,
        upToDate: got.next === undefined,
        closed,
      };
    }
    renewOnRead(core, entry, now);
    // A read that found nothing did no I/O; yield to the event loop so that a caller polling in a tight loop
    // cannot starve the writes it waits for (their completions are macrotasks).
    if (result.messages.length === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    return result;
  }

  async head(name: string): Promise<StreamMetadata> {
    this.core.assertOpen();
    validateName(name);
    return this.core.metadata(await this.core.visible(name, this.core.clock.now()));
  }

  async exists(name: string): Promise<boolean> {
    this.core.assertOpen();
    validateName(name);
    const now = this.core.clock.now();
    let entry: StreamEntry;
    try {
      entry = await this.core.load(name);
    } catch (err) {
      if (isStorageError(err, 'NOT_FOUND')) return false;
      throw err;
    }
    return isVisible(entry, now);
  }

  async subscribe(name: string, listener: StreamListener): Promise<Subscription> {
    this.core.assertOpen();
    validateSubscribe(name, listener);
    const entry = await this.core.visible(name, this.core.clock.now());
    // A distinct wrapper per call, so subscribing one function twice yields two independent registrations.
    const wrapper: StreamListener = () => listener();
    entry.listen(wrapper);
    return { unsubscribe: () => void entry.listeners.delete(wrapper) };
  }

  async listStreams(options?: ListStreamsOptions): Promise<StreamMetadata[]> {
    const core = this.core;
    core.assertOpen();
    const query = validateListStreams(CAPABILITIES, options);
    const now = core.clock.now();
    // Chosen by name first: only the records of the names listed are decoded (a page of 100 of 100,000 decodes 100).
    const names = [...core.catalog.keys()].filter((name) => listingIncludes(name, query)).sort(compareUtf8);
    // A record's deadline is a lower bound (reads renew it in the log): streams it calls expired are loaded to
    // decide; the others are listed with their logs loaded for the metadata.
    const out: StreamMetadata[] = [];
    for (const name of names) {
      if (listingFull(out.length, query)) break;
      // A stream not loaded is listed from its record when its summary is exact (always, unless the last shutdown
      // was a crash and the stream has not been loaded since): no log is read.
      const record = core.catalog.get(name);
      if (record === undefined || record.tombstone || record.quarantined !== undefined) continue;
      if (record.summaryExact && !core.entries.has(name)) {
        if (isVisible(record, now)) out.push(core.recordMetadata(record));
        continue;
      }
      let entry: Awaited<ReturnType<Core['load']>>;
      try {
        entry = await core.load(name);
      } catch {
        continue; // removed meanwhile, or found damaged on this first load
      }
      if (entry.removed || !isVisible(entry, now)) continue;
      out.push(core.metadata(entry));
    }
    return out;
  }

  // SubscriptionStore: records in memory, each write one journal entry (subscriptions.ts).

  getSubscription(id: string): Promise<SubscriptionRecord | undefined> {
    return this.subscriptions.getSubscription(id);
  }
  mutateSubscription<R>(id: string, plan: SubscriptionPlan<R>): Promise<R> {
    return this.subscriptions.mutateSubscription(id, plan);
  }
  deleteSubscription(id: string): Promise<boolean> {
    return this.subscriptions.deleteSubscription(id);
  }
  listSubscriptions(options?: ListSubscriptionsOptions): Promise<SubscriptionRecord[]> {
    return this.subscriptions.listSubscriptions(options);
  }
}
