import {
  type ByteLimits,
  type Clock,
  type CommitObserver,
  checkAccess,
  formatOffset,
  notFound,
  StorageError,
  type StreamMetadata,
} from '@streamkeep/storage';
import { carryNow } from './carry.js';
import type { CatalogRecord } from './catalog.js';
import { errnoCode, type FileHandleLike, type FileSystem } from './fs.js';
import type { FileSystemSyncer } from './fs-syncer.js';
import { HandlePool } from './handles.js';
import type { Journal } from './journal.js';
import { logDirOf, logPathOf } from './layout.js';
import { Catalog } from './snapshot.js';
import { type LoadResult, loadCarried, loadEntry, StreamEntry } from './stream-entry.js';
import { SubscriptionTable } from './subscription-table.js';
import { TailCache } from './tail-cache.js';

/** A stream that failed an integrity check and is refused (`CORRUPTED`) instead of served. */
export interface QuarantinedStream {
  /** Where its data is: the log file (or, for a stream of an older format that could not be migrated, its folder). */
  readonly dir: string;
  /** The stream's name, when it could still be read. */
  readonly name: string | undefined;
  readonly reason: string;
}

export interface CoreSettings {
  readonly fs: FileSystem;
  readonly root: string;
  readonly clock: Clock;
  readonly limits: ByteLimits;
  readonly syncOnAppend: boolean;
  readonly useJournal: boolean | 'always';
  readonly maxGroupBytes: number;
  readonly maxOpenFiles: number;
  readonly maxLoadedStreams: number;
  readonly inlineWriteBytes: number;
  /** A stream whose log is at most this long is carried in the catalog snapshot instead of a file (0: never). */
  readonly carryStreamBytes: number;
  /** Carried log bytes of all streams together beyond which the largest get files of their own. */
  readonly carryBudgetBytes: number;
  readonly tailCacheBytes: number;
  readonly tailCacheStreamBytes: number;
  readonly onQuarantine: ((q: QuarantinedStream) => void) | undefined;
  readonly onCommit: CommitObserver | undefined;
}

/**
 * The state one open root shares among its parts: the catalog (every stream), the loaded entries (streams in use),
 * the open handles, the journal and the byte accounting. The parts (lifecycle, group commit, log writer, reads,
 * recovery) are functions over it.
 */
export class Core {
  readonly fs: FileSystem;
  readonly root: string;
  readonly clock: Clock;
  catalog = new Catalog();
  /** Every subscription record (durable state only), saved to its own file at checkpoints (subscriptions.ts). */
  readonly subscriptions = new SubscriptionTable();
  /** Loaded streams by name; their use order is the list from `lruHead` (least recently used) to `lruTail`. */
  readonly entries = new Map<string, StreamEntry>();
  // An intrusive list rather than the Map's insertion order: a Map whose oldest keys are deleted over and over keeps
  // the holes at its front until it rehashes, and a scan from the oldest walked over thousands of them per load.
  private lruHead: StreamEntry | null = null;
  private lruTail: StreamEntry | null = null;
  readonly quarantine = new Map<string, QuarantinedStream>();
  readonly handles: HandlePool;
  readonly tailCache: TailCache;
  readonly drains = new Set<Promise<void>>();
  /** Lifecycle operations in flight (close waits for them). */
  readonly ops = new Set<Promise<unknown>>();
  /** Log directories with files created or removed since the last checkpoint (synced by it). */
  readonly dirtyDirs = new Set<string>();
  journal!: Journal;
  /** The catalog (or a stream's byte count in it) changed since the last snapshot. */
  catalogDirty = false;
  /** Fan-out folders were made under `logs/` since the last checkpoint (which syncs `logs/` itself then). */
  newLogDirs = false;
  /** Streams with group writes the journal holds and their logs do not yet (oldest first), and those bytes. */
  readonly pendingStreams = new Set<StreamEntry>();
  pendingBytes = 0;
  /** Of those, the streams whose pending bytes start a log that has no file yet (a carry candidate), and their bytes. */
  carryPendingStreams = 0;
  carryPendingBytes = 0;
  /** Bytes of carried logs (records' `inline`) of live streams: what the snapshot holds besides the table. */
  carriedBytes = 0;
  /** The background flusher of pending writes, while it runs (log-writer.ts). */
  flusher: Promise<void> | null = null;
  state: 'open' | 'closing' | 'closed' = 'open';
  /** The file-system-wide sync of checkpoints (real file system on Linux only). */
  syncer: FileSystemSyncer | undefined;
  total = 0;
  reserved = 0;
  directSyncs = 0;
  /** Streams whose torn tail was cut while loading, with the bytes removed. */
  readonly truncated: { name: string; bytes: number }[] = [];
  private readonly loading = new Map<string, Promise<StreamEntry>>();
  private readonly locks = new Map<string, Promise<void>>();

  constructor(readonly settings: CoreSettings) {
    this.fs = settings.fs;
    this.root = settings.root;
    this.clock = settings.clock;
    this.handles = new HandlePool(settings.fs, settings.maxOpenFiles);
    this.tailCache = new TailCache(
      settings.tailCacheBytes,
      Math.min(settings.tailCacheBytes, settings.tailCacheStreamBytes),
    );
  }

  assertOpen(): void {
    if (this.state !== 'open') throw new StorageError('STORAGE_CLOSED', 'the storage is closed');
  }

  logPath(record: CatalogRecord): string {
    return logPathOf(this.root, record.id);
  }

  logDir(record: CatalogRecord): string {
    return logDirOf(this.root, record.id);
  }

  /** Opens (creating or emptying) the log file of `record`, making its fan-out folder on first use. */
  async createLogFile(record: CatalogRecord, inPool = false): Promise<FileHandleLike> {
    const path = this.logPath(record);
    const dir = this.logDir(record);
    let fh: FileHandleLike;
    try {
      // A synchronous create costs tens of microseconds on the event loop; the thread pool adds a round trip, which
      // only work off the appenders' path (`inPool`) can afford.
      fh =
        this.fs.openSync !== undefined && !inPool
          ? this.fs.openSync(path, 'w+')
          : await this.fs.open(path, 'w+');
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      await this.fs.mkdir(dir);
      this.newLogDirs = true;
      fh = await this.fs.open(path, 'w+');
    }
    this.dirtyDirs.add(dir);
    return fh;
  }

  /** Closes the logs' open handles, the catalog snapshot's (kept for its carried region) and the sync helper. */
  async closeFiles(): Promise<void> {
    await this.handles.closeAll();
    await this.catalog.region?.close();
    this.syncer?.close();
  }

  /** Sets (or drops) the carried log of `record`, keeping {@link Core.carriedBytes} in step. */
  setInline(record: CatalogRecord, bytes: Buffer | undefined): void {
    const before = record.inline?.byteLength ?? record.carried?.len ?? 0;
    if (!record.removed) this.carriedBytes -= before;
    record.inline = bytes;
    record.carried = undefined;
    if (bytes !== undefined && !record.removed) this.carriedBytes += bytes.byteLength;
    this.catalogDirty = true;
  }

  /** The loaded entry of `name`, if it is loaded (marked recently used). */
  loaded(name: string): StreamEntry | undefined {
    const e = this.entries.get(name);
    if (e !== undefined && e !== this.lruTail) {
      this.unlink(e);
      this.push(e);
    }
    return e;
  }

  /**
   * The entry of a stream in the catalog, loading it from its log on first use (concurrent callers share one load).
   *
   * @throws StorageError `NOT_FOUND`, or `CORRUPTED` for a quarantined stream.
   */
  load(name: string): Promise<StreamEntry> | StreamEntry {
    const e = this.loaded(name);
    if (e !== undefined) return e;
    const record = this.catalog.get(name);
    if (record === undefined) this.missing(name);
    let p = this.loading.get(name);
    if (p !== undefined) return p;
    if (record.quarantined === undefined) {
      // Nothing on disk to read: made now, so that callers keep their call order.
      if (record.noFile && record.inline === undefined) {
        const fresh = new StreamEntry(record, this.root, 0);
        this.adopt(fresh);
        return fresh;
      }
      // A carried log read at open: checked and taken from the snapshot's region when that is in memory, read from it
      // otherwise.
      const ref = record.carried;
      if (ref !== undefined) {
        const bytes = this.catalog.carriedNow(ref);
        if (bytes !== undefined) return this.settleLoad(record, this.takeCarried(record, bytes));
      }
      // A carried log is in memory: loaded now, without I/O or a promise (spread writes load one per append).
      if (record.inline !== undefined && !record.materialized) {
        return this.settleLoad(record, loadCarried(record, this.root, this.clock.now()));
      }
    }
    p =
      record.carried !== undefined && record.quarantined === undefined
        ? this.loadCarriedLater(record)
        : this.doLoad(record);
    this.loading.set(name, p);
    const done = () => {
      if (this.loading.get(name) === p) this.loading.delete(name);
    };
    p.then(done, done);
    return p;
  }

  /** A load in flight for `name`, if any. */
  loadingOf(name: string): Promise<StreamEntry> | undefined {
    return this.loading.get(name);
  }

  /** A carried log's bytes, checked, become the record's: the stream is built from them. */
  private takeCarried(record: CatalogRecord, bytes: Buffer | 'damaged'): LoadResult {
    if (bytes === 'damaged') return { kind: 'quarantine', reason: 'its carried log failed its checksum' };
    record.inline = bytes;
    record.carried = undefined;
    return loadCarried(record, this.root, this.clock.now());
  }

  private async loadCarriedLater(record: CatalogRecord): Promise<StreamEntry> {
    const bytes = await this.catalog.readCarried(record.carried!);
    if (record.removed) notFound(record.name);
    const already = this.entries.get(record.name);
    if (already !== undefined) return already;
    // Taken meanwhile (the region came into memory, a synchronous load used it, and its entry was dropped since).
    if (record.carried === undefined) {
      if (record.inline === undefined || record.materialized) return this.doLoad(record);
      return this.settleLoad(record, loadCarried(record, this.root, this.clock.now()));
    }
    return this.settleLoad(record, this.takeCarried(record, bytes));
  }

  private async doLoad(record: CatalogRecord): Promise<StreamEntry> {
    if (record.quarantined !== undefined) this.refuse(record);
    const got = await loadEntry(this.fs, record, this.root, this.clock.now());
    if (record.removed) notFound(record.name);
    const already = this.entries.get(record.name);
    if (already !== undefined) return already;
    return this.settleLoad(record, got);
  }

  /** Makes a freshly built entry the stream's loaded one, bringing its catalog record in step with its log. */
  private settleLoad(record: CatalogRecord, got: LoadResult): StreamEntry {
    if (got.kind === 'quarantine') {
      record.quarantined = got.reason;
      const q: QuarantinedStream = { dir: this.logPath(record), name: record.name, reason: got.reason };
      this.quarantine.set(record.name, q);
      this.settings.onQuarantine?.(q);
      this.refuse(record);
    }
    const entry = got.entry;
    if (got.cut > 0) this.truncated.push({ name: record.name, bytes: got.cut });
    if (entry.logSize > 0 && entry.unwritten === null && !record.hasLog) {
      record.hasLog = true;
      this.catalogDirty = true;
    }
    if (entry.bytes !== record.bytes) {
      this.total += entry.bytes - record.bytes;
      record.bytes = entry.bytes;
      this.catalogDirty = true;
    }
    if (
      !record.summaryExact ||
      record.count !== entry.index.count ||
      record.closed !== entry.closed ||
      record.lastSeq !== entry.lastSeq ||
      record.updatedAt !== entry.updatedAt
    ) {
      record.count = entry.index.count;
      record.closed = entry.closed;
      record.updatedAt = entry.updatedAt;
      record.lastSeq = entry.lastSeq;
      record.summaryExact = true;
      this.catalogDirty = true;
    }
    this.adopt(entry);
    return entry;
  }

  /** Makes `entry` the loaded entry of its stream, dropping idle ones beyond the configured number. */
  adopt(entry: StreamEntry): void {
    const before = this.entries.get(entry.name);
    if (before !== undefined) this.unlink(before);
    this.entries.set(entry.name, entry);
    this.push(entry);
    const max = this.settings.maxLoadedStreams;
    // Look at a few of the least recently used only: one in use (a write pending, a reader waiting) goes to the back,
    // so that a scan never walks over thousands of busy streams on every load.
    let looked = 0;
    let e = this.lruHead;
    while (e !== null && this.entries.size > max && ++looked <= 32) {
      const next = e.lruNext;
      // A stream whose only business is pending writes to a log without a file hands them to its record (carried)
      // and is dropped like an idle one: streams by the hundred thousand, each written once, stay cheap.
      if (e !== entry && (e.idle || (e.pendingCarry && e.idleButPending && carryNow(this, e)))) {
        this.drop(e);
        this.handles.discard(e);
        this.tailCache.clear(e.cached);
      } else if (e !== entry) {
        this.unlink(e);
        this.push(e);
      }
      e = next;
    }
  }

  /** Forgets `entry` as the loaded entry of its stream (if it still is). */
  drop(entry: StreamEntry): void {
    if (this.entries.get(entry.name) !== entry) return;
    this.entries.delete(entry.name);
    this.unlink(entry);
  }

  private push(e: StreamEntry): void {
    e.lruPrev = this.lruTail;
    e.lruNext = null;
    if (this.lruTail === null) this.lruHead = e;
    else this.lruTail.lruNext = e;
    this.lruTail = e;
  }

  private unlink(e: StreamEntry): void {
    if (e.lruPrev === null) {
      if (this.lruHead === e) this.lruHead = e.lruNext;
    } else e.lruPrev.lruNext = e.lruNext;
    if (e.lruNext === null) {
      if (this.lruTail === e) this.lruTail = e.lruPrev;
    } else e.lruNext.lruPrev = e.lruPrev;
    e.lruPrev = null;
    e.lruNext = null;
  }

  private refuse(record: CatalogRecord): never {
    throw new StorageError(
      'CORRUPTED',
      `stream ${JSON.stringify(record.name)} is quarantined: ${record.quarantined}`,
    );
  }

  missing(name: string): never {
    const q = this.catalog.get(name);
    if (q?.quarantined !== undefined) this.refuse(q);
    notFound(name);
  }

  /** The entry of a stream a reader may see (not deleted, not expired). */
  async visible(name: string, now: number): Promise<StreamEntry> {
    const entry = await this.load(name);
    checkAccess(entry, now);
    return entry;
  }

  /** The metadata of a stream from its catalog record alone (its summary must be exact). */
  recordMetadata(r: CatalogRecord): StreamMetadata {
    const base = r.base();
    return {
      name: r.name,
      config: { ...r.config },
      nextOffset: formatOffset(base.readSeq + r.count, base.byteOffset + r.bytes),
      closed: r.closed,
      totalBytes: r.bytes,
      messageCount: r.count,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      lastSeq: r.lastSeq,
      fork: r.fork,
    };
  }

  metadata(e: StreamEntry): StreamMetadata {
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

  notify(entry: StreamEntry): void {
    for (const l of entry.listeners) {
      try {
        l();
      } catch {
        // listeners must not throw; one that does must not break the commit or other listeners
      }
    }
  }

  /**
   * Runs `fn` holding the lifecycle locks of `names` (taken in one global order, so two operations never wait for
   * each other). Operations on different names run concurrently, and their journal entries share sync rounds.
   */
  async withNames<T>(names: readonly string[], fn: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(names)].sort();
    const releases: (() => void)[] = [];
    const run = (async () => {
      try {
        for (const n of sorted) releases.push(await this.lockName(n));
        return await fn();
      } finally {
        for (const r of releases) r();
      }
    })();
    this.ops.add(run);
    const forget = () => this.ops.delete(run);
    run.then(forget, forget);
    return run;
  }

  private lockName(name: string): Promise<() => void> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = prev.then(() => mine);
    this.locks.set(name, tail);
    return prev.then(() => () => {
      release();
      if (this.locks.get(name) === tail) this.locks.delete(name);
    });
  }
}
