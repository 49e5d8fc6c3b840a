import {
  type AppendRequest,
  type CommitPlan,
  type ForkInfo,
  formatOffset,
  isProducerStateLive,
  type Offset,
  type ProducerAppendResult,
  type ProducerIdentity,
  type ProducerState,
  type StreamListener,
} from '@streamkeep/storage';
import type { CatalogRecord, MutableConfig } from './catalog.js';
import { decodeLogHeader, LOG_HEADER_SIZE, type RecordSink } from './format.js';
import { errnoCode, type FileHandleLike, type FileSystem } from './fs.js';
import type { HandleOwner } from './handles.js';
import type { JournaledLog } from './journal.js';
import { logPathOf } from './layout.js';
import { MessageIndex } from './message-index.js';
import { type ScanResult, scanBytes, scanLog } from './scan.js';
import type { StreamTail } from './tail-cache.js';

// Never added to: the entries that need one replace them first.
const NO_LISTENERS: Set<StreamListener> = new Set();
const NO_PRODUCERS: Map<string, ProducerState> = new Map();

export interface CommitJob {
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

export interface ExclusiveJob {
  readonly kind: 'exclusive';
  readonly run: () => Promise<void>;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

export type Job = CommitJob | ExclusiveJob;

/**
 * A stream in use: its catalog record plus what its log holds (the offset index, closure, producers) and the
 * machinery of its commits. Built from the log on first access ({@link loadEntry}); dropped again when idle for long
 * enough that memory is better spent elsewhere (the record stays).
 */
export class StreamEntry implements HandleOwner {
  readonly index = new MessageIndex();
  /** Shared empty set until the first subscriber ({@link StreamEntry.listen}): most entries never have one. */
  listeners: Set<StreamListener> = NO_LISTENERS;
  readonly queue: Job[] = [];
  /** Shared empty map until the first producer ({@link StreamEntry.setProducer}). */
  producers: Map<string, ProducerState> = NO_PRODUCERS;
  draining = false;
  removed = false;
  /** Settles when the delete in progress (log being unlinked, not yet marked removed) has finished. */
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
  /**
   * Group writes made durable by the journal and not yet written to the log (see `flushPending`): their bytes, in
   * order, from file position `pendingAt` on. The index already points at the positions they will have.
   */
  pending: Uint8Array[] = [];
  pendingBytes = 0;
  pendingAt = 0;
  /** A flush of `pending` in progress. */
  flushing: Promise<void> | null = null;
  /**
   * The bytes at the start of the log that no file holds: a carried stream's log from position 0 (its record's
   * `inline`, see `carry.ts`). `pending`, when not empty, continues right after them. The first flush creates the
   * file with these bytes in front.
   */
  unwritten: Buffer | null = null;
  /** Counted in the core's carry-pending figures (its pending bytes start a log that has no file yet). */
  pendingCarry = false;
  /** Neighbours in the core's list of loaded entries, least recently used first. */
  lruPrev: StreamEntry | null = null;
  lruNext: StreamEntry | null = null;
  /**
   * The newest committed messages, kept in memory (see {@link TailCache}); made on the first append cached. A log
   * without a file has none: memory holds all of its bytes already (`unwritten`, `pending`).
   */
  cached: StreamTail | null = null;
  /** Groups committed since this stream's queue last waited for the event loop. */
  inlineRun = 0;
  readonly baseSeq: number;
  readonly baseBytes: number;

  private logPath: string | undefined;

  constructor(
    readonly record: CatalogRecord,
    /** The root directory: the log's path is worked out from it when first needed (most entries never need it). */
    private readonly root: string,
    public logSize: number,
  ) {
    this.closed = record.config.createdClosed;
    const base = record.base();
    this.baseSeq = base.readSeq;
    this.baseBytes = base.byteOffset;
  }

  get name(): string {
    return this.record.name;
  }
  listen(l: StreamListener): void {
    if (this.listeners === NO_LISTENERS) this.listeners = new Set();
    this.listeners.add(l);
  }
  setProducer(id: string, state: ProducerState): void {
    if (this.producers === NO_PRODUCERS) this.producers = new Map();
    this.producers.set(id, state);
  }
  get path(): string {
    this.logPath ??= logPathOf(this.root, this.record.id);
    return this.logPath;
  }
  get config(): MutableConfig {
    return this.record.config;
  }
  get fork(): ForkInfo | null {
    return this.record.fork;
  }
  get tombstone(): boolean {
    return this.record.tombstone;
  }
  get salt(): number {
    return this.record.salt;
  }
  get createdAt(): number {
    return this.record.createdAt;
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

  /** Nothing in flight, nobody listening, nothing owed to disk: the entry may be dropped and rebuilt later. */
  get idle(): boolean {
    return this.pending.length === 0 && this.idleButPending;
  }

  /** {@link StreamEntry.idle} but for pending writes (which a log without a file may hand to its record: carry.ts). */
  get idleButPending(): boolean {
    return (
      !this.draining &&
      this.queue.length === 0 &&
      this.listeners.size === 0 &&
      this.users === 0 &&
      this.opening === null &&
      !this.touchPending &&
      !this.needsTruncate &&
      this.logWrite === null &&
      this.flushing === null &&
      this.deleting === null
    );
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

export type LoadResult =
  | { readonly kind: 'ok'; readonly entry: StreamEntry; readonly cut: number }
  | { readonly kind: 'quarantine'; readonly reason: string };

/**
 * Builds a stream's entry from its log: verifies every record's checksum, replays the records into the index and
 * state, and cuts a torn tail (an interrupted write) off the file. A log written by another incarnation of the name
 * (its salt differs) or missing while the catalog says it was created is refused.
 */
export async function loadEntry(
  fs: FileSystem,
  record: CatalogRecord,
  root: string,
  now: number,
): Promise<LoadResult> {
  const entry = new StreamEntry(record, root, LOG_HEADER_SIZE);
  let fh: FileHandleLike;
  try {
    fh = await fs.open(entry.path, 'r+');
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
    if (record.hasLog) return { kind: 'quarantine', reason: 'the log is missing' };
    entry.logSize = 0;
    return { kind: 'ok', entry, cut: 0 };
  }
  try {
    const { size } = await fh.stat();
    const header = Buffer.alloc(LOG_HEADER_SIZE);
    if (size >= LOG_HEADER_SIZE) await fh.read(header, 0, LOG_HEADER_SIZE, 0);
    const salt = size >= LOG_HEADER_SIZE ? decodeLogHeader(header) : undefined;
    if (salt !== record.salt) {
      // Left behind by an earlier stream of the same name whose removal a crash undid, or never completed by a
      // first write: the stream has no data of its own yet, and its first write replaces the file.
      if (!record.hasLog) {
        entry.logSize = 0;
        return { kind: 'ok', entry, cut: 0 };
      }
      return {
        kind: 'quarantine',
        reason: salt === undefined ? 'the log header is damaged' : 'the log belongs to another stream',
      };
    }
    const result = await replayLog(entry, fh, size, salt, now);
    if (result.kind === 'corrupt') return { kind: 'quarantine', reason: result.reason };
    let cut = 0;
    if (result.kind === 'torn') {
      cut = size - result.end;
      await fh.truncate(result.end);
      await fh.datasync();
    }
    return { kind: 'ok', entry, cut };
  } finally {
    await fh.close();
  }
}

/**
 * Builds a carried stream's entry from the log bytes its catalog record holds (`inline`), synchronously: no file is
 * read. The bytes passed a checksum already (the snapshot's at open, or this process made them), so only their
 * structure is checked again.
 */
export function loadCarried(record: CatalogRecord, root: string, now: number): LoadResult {
  const bytes = record.inline!;
  const entry = new StreamEntry(record, root, LOG_HEADER_SIZE);
  const salt =
    bytes.byteLength >= LOG_HEADER_SIZE ? decodeLogHeader(bytes.subarray(0, LOG_HEADER_SIZE)) : undefined;
  if (salt !== record.salt) return { kind: 'quarantine', reason: 'the carried log has a damaged header' };
  const result = settleReplay(entry, now, scanBytes(bytes, salt, replaySink(entry), false));
  if (result.kind !== 'ok') return { kind: 'quarantine', reason: 'the carried log failed its checks' };
  entry.unwritten = bytes;
  return { kind: 'ok', entry, cut: 0 };
}

/** Replays a log's records into `entry` (index, closure, producers, deadline) and sets its size and byte count. */
async function replayLog(
  entry: StreamEntry,
  fh: FileHandleLike,
  size: number,
  salt: number,
  now: number,
): Promise<ScanResult> {
  return settleReplay(entry, now, await scanLog(fh, size, salt, replaySink(entry)));
}

/** The sink that replays records into `entry` (its payload byte count kept in `entry.bytes` as they come). */
function replaySink(entry: StreamEntry): RecordSink {
  const record = entry.record;
  return {
    message: (position, length) => {
      entry.bytes += length;
      entry.index.push(position, entry.bytes);
    },
    commit: (closed, updatedAt, expiresAt, lastSeq, producer) => {
      entry.closed = closed;
      if (updatedAt !== null) entry.updatedAt = updatedAt;
      if (expiresAt !== null && (record.config.expiresAt === null || expiresAt > record.config.expiresAt)) {
        record.config.expiresAt = expiresAt;
      }
      if (lastSeq !== null) entry.lastSeq = lastSeq;
      if (producer !== undefined) entry.setProducer(producer.id, producer.state);
    },
    touch: (expiresAt) => {
      if (record.config.expiresAt === null || expiresAt > record.config.expiresAt) {
        record.config.expiresAt = expiresAt;
      }
    },
  };
}

/** After a replay: the log's size, and producers whose state has expired dropped. */
function settleReplay(entry: StreamEntry, now: number, result: ScanResult): ScanResult {
  if (result.kind === 'corrupt') return result;
  entry.logSize = result.end;
  for (const [pid, state] of entry.producers) {
    if (!isProducerStateLive(state, now)) entry.producers.delete(pid);
  }
  return result;
}
