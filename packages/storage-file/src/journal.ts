import { crc32 } from 'node:zlib';
import { crc32Range } from './crc.js';
import { decodeLogHeader, LOG_HEADER_SIZE, newSalt, RECORD_HEADER_SIZE } from './format.js';
import type { FileHandleLike } from './fs.js';
import { skipBytes } from './layout.js';

/**
 * The commit journal: with `syncOnAppend`, every group write is also appended here, and one `fdatasync` of the
 * journal per round makes the groups of *all* streams in that round durable at once (cross-stream group commit).
 * Stream logs are then synced only at checkpoints, after which the journal is emptied. At open, journal entries are
 * re-applied to the logs (redo), so a log write lost in a crash is restored before the log is scanned.
 *
 * The journal also carries the catalog's lifecycle changes (create, tombstone, delete: see `catalog.ts`), so that a
 * create is durable after the same single sync as the appends of its round. A checkpoint writes the catalog snapshot
 * (through {@link Journal.onCheckpoint}) before the journal is emptied.
 *
 * Layout: a 16-byte header (magic, salt, CRC) and records framed like log records (CRC32 seeded with the journal's
 * salt, body length). Body of a log write: type 3 | stream id (32 bytes) | log salt u32 | log position f64 | the
 * bytes written to the log at that position. Body of a catalog change: type 4 | the change (JSON).
 */

export const JOURNAL_MAGIC = Buffer.from('SKJRN\u0000\u0001\u0000', 'latin1');
const RECORD_JOURNAL = 3;
const RECORD_CATALOG = 4;
const ENTRY_FIXED = 1 + 32 + 4 + 8;

export function encodeJournalHeader(salt: number): Buffer {
  const b = Buffer.alloc(LOG_HEADER_SIZE);
  JOURNAL_MAGIC.copy(b, 0);
  b.writeUInt32LE(salt >>> 0, 8);
  b.writeUInt32LE(crc32(b.subarray(0, 12)), 12);
  return b;
}

function decodeJournalHeader(b: Buffer): number | undefined {
  if (b.byteLength < LOG_HEADER_SIZE || !b.subarray(0, 8).equals(JOURNAL_MAGIC)) return undefined;
  if (crc32(b.subarray(0, 12)) !== b.readUInt32LE(12)) return undefined;
  return b.readUInt32LE(8);
}

/** One group write to replay: `bytes` belong at `position` of the log of stream `id` whose header has `salt`. */
export interface JournalEntry {
  readonly id: string;
  readonly salt: number;
  readonly position: number;
  readonly bytes: Buffer;
}

/** What a journal file holds: the log writes grouped by stream id, and the catalog changes, each in write order. */
export interface ParsedJournal {
  readonly logs: Map<string, JournalEntry[]>;
  readonly catalog: Buffer[];
  /** Bytes of the valid prefix, header included. */
  readonly bytes: number;
}

/** Parses a journal file's content: every entry of the valid prefix. */
export function parseJournal(content: Buffer): ParsedJournal {
  const out = new Map<string, JournalEntry[]>();
  const catalog: Buffer[] = [];
  const salt = decodeJournalHeader(content);
  if (salt === undefined) return { logs: out, catalog, bytes: 0 };
  let p = LOG_HEADER_SIZE;
  while (p + RECORD_HEADER_SIZE <= content.byteLength) {
    const len = content.readUInt32LE(p + 4);
    const end = p + RECORD_HEADER_SIZE + len;
    if (len < 1 || end > content.byteLength) break;
    if (crc32Range(content, p + 4, end, salt) !== content.readUInt32LE(p)) break;
    const b = p + RECORD_HEADER_SIZE;
    if (content[b] === RECORD_CATALOG) {
      catalog.push(content.subarray(b + 1, end));
      p = end;
      continue;
    }
    if (content[b] !== RECORD_JOURNAL || len < ENTRY_FIXED) break;
    const id = content.toString('hex', b + 1, b + 33);
    const entry: JournalEntry = {
      id,
      salt: content.readUInt32LE(b + 33),
      position: content.readDoubleLE(b + 37),
      bytes: content.subarray(b + ENTRY_FIXED, end),
    };
    const list = out.get(id);
    if (list === undefined) out.set(id, [entry]);
    else list.push(entry);
    p = end;
  }
  return { logs: out, catalog, bytes: p };
}

interface Pending {
  readonly head: Buffer;
  readonly parts: readonly Uint8Array[];
  /** Called synchronously once the entry is durable, before any later checkpoint can run. */
  readonly onDurable?: (() => void) | undefined;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** A stream log the journal may have to sync at a checkpoint. */
export interface JournaledLog {
  removed: boolean;
  /**
   * Writes what the log still lacks and syncs its data; rejects on failure. False when there was no file to sync
   * (the log is carried in the catalog snapshot instead, or gone).
   */
  syncLog(): Promise<boolean>;
  /** Writes what the log still lacks, without a sync (a file-system-wide sync follows); false as for `syncLog`. */
  flushLog(): Promise<boolean>;
  /** Called once the log's file is durable (after `syncLog`, or `flushLog` and the file-system-wide sync). */
  synced(): void;
}

/** Logs to sync at one checkpoint from which one file-system-wide sync is used instead of one sync per log. */
const SYNC_ALL_FROM = 64;

export class Journal {
  private queue: Pending[] = [];
  private running: Promise<void> | undefined;
  private size = LOG_HEADER_SIZE;
  private needsTruncate = false;
  /** A round failed: entries of it may sit in the file; empty the journal before the next round can follow them. */
  private mustCheckpoint = false;
  private readonly dirty = new Set<JournaledLog>();
  private discards: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  private closed = false;
  /** Rounds written and checkpoints taken, for tests and benchmarks. */
  readonly stats = { rounds: 0, entries: 0, checkpoints: 0 };
  /**
   * Runs at each checkpoint after the written logs were synced and before the journal is emptied: whatever the
   * journal's entries made durable that the logs do not hold (the catalog) must be made durable elsewhere here.
   */
  onCheckpoint: (() => Promise<void>) | undefined;
  /** Runs at each checkpoint before the written logs are collected: may add logs to sync (`touch`) or drop some. */
  beforeCheckpoint: (() => Promise<void>) | undefined;
  /**
   * Makes every file written so far on the journal's file system durable at once (`syncfs`): used by checkpoints
   * that must sync many logs, where one sync per log would cost a round trip each. Rejects when unavailable; the
   * checkpoint then syncs each log.
   */
  syncAll: (() => Promise<void>) | undefined;

  private constructor(
    private readonly fh: FileHandleLike,
    private salt: number,
    private readonly checkpointBytes: number,
    private readonly inlineWriteBytes: number,
  ) {}

  /**
   * Starts an empty journal in `fh` (a fresh salt, so no stale record of an earlier journal can validate). Rounds of
   * at most `inlineWriteBytes` are written synchronously.
   */
  static async create(fh: FileHandleLike, checkpointBytes: number, inlineWriteBytes = 0): Promise<Journal> {
    const j = new Journal(fh, newSalt(), checkpointBytes, inlineWriteBytes);
    await j.reset();
    return j;
  }

  /** No round queued or in flight and none owed: a group may sync its own log instead. */
  get idle(): boolean {
    return this.running === undefined && this.queue.length === 0 && !this.mustCheckpoint;
  }

  /**
   * Empties the journal (logs synced, new salt) before resolving: for an entry already made durable whose log write
   * then failed, so that it can never be replayed over what is written at that position next. Rejects when the
   * checkpoint fails (it stays owed and is retried before the next round).
   */
  discard(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('journal closed'));
    this.mustCheckpoint = true;
    return new Promise<void>((resolve, reject) => {
      this.discards.push({ resolve, reject });
      this.running ??= this.run();
    });
  }

  private settleDiscards(err?: unknown): void {
    const waiting = this.discards;
    this.discards = [];
    for (const w of waiting) {
      if (err === undefined) w.resolve();
      else w.reject(err);
    }
  }

  /** Journal bytes written since the last checkpoint (header included). */
  get bytes(): number {
    return this.size;
  }

  /**
   * Appends a catalog change; `onDurable` runs synchronously once it is durable (so that the in-memory catalog a
   * checkpoint writes out holds exactly the durable changes), then the promise resolves.
   */
  submitCatalog(body: Uint8Array, onDurable: () => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error('journal closed'));
    const head = Buffer.allocUnsafe(RECORD_HEADER_SIZE + 1);
    head.writeUInt32LE(1 + body.byteLength, 4);
    head[8] = RECORD_CATALOG;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ head, parts: [body], onDurable, resolve, reject });
      this.running ??= this.run();
    });
  }

  /** Marks a log as written since the last checkpoint. Call before submitting its entry. */
  touch(log: JournaledLog): void {
    this.dirty.add(log);
  }

  /** Forgets a log that no checkpoint needs to write or sync any more (its bytes are carried by the snapshot). */
  untouch(log: JournaledLog): void {
    this.dirty.delete(log);
  }

  /**
   * Appends a group write of stream `id` and resolves once it is durable in the journal; `onDurable` runs
   * synchronously at that moment, before any checkpoint can start.
   */
  submit(
    id: string,
    logSalt: number,
    position: number,
    parts: readonly Uint8Array[],
    onDurable?: () => void,
  ): Promise<void> {
    if (this.closed) return Promise.reject(new Error('journal closed'));
    let len = ENTRY_FIXED;
    for (const p of parts) len += p.byteLength;
    const head = Buffer.allocUnsafe(RECORD_HEADER_SIZE + ENTRY_FIXED);
    head.writeUInt32LE(len, 4);
    head[8] = RECORD_JOURNAL;
    head.write(id, 9, 32, 'hex');
    head.writeUInt32LE(logSalt >>> 0, 41);
    head.writeDoubleLE(position, 45);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ head, parts, onDurable, resolve, reject });
      this.running ??= this.run();
    });
  }

  private async run(): Promise<void> {
    // Start after the current synchronous code: entries submitted together (a new stream's first log write and its
    // catalog entry) share the first round, so that they are durable together or fail together.
    await null;
    try {
      while (this.queue.length > 0 || this.mustCheckpoint) {
        if (this.queue.length === 0) {
          // Only a checkpoint is owed (after a failed round): take it now rather than at the next round, so stale
          // entries do not linger. On failure it stays owed and is retried before the next round.
          try {
            await this.checkpoint();
            this.mustCheckpoint = false;
          } catch (err) {
            this.settleDiscards(err);
            // Entries submitted meanwhile must not be stranded: their round retries the checkpoint first (and fails
            // them if it fails again).
            if (this.queue.length === 0) break;
          }
          this.settleDiscards();
          continue;
        }
        const round = this.queue;
        this.queue = [];
        const buffers: Uint8Array[] = [];
        let bytes = 0;
        for (const e of round) {
          let crc = crc32Range(e.head, 4, e.head.byteLength, this.salt);
          for (const p of e.parts) crc = crc32Range(p, 0, p.byteLength, crc);
          e.head.writeUInt32LE(crc, 0);
          buffers.push(e.head, ...e.parts);
          bytes += e.head.byteLength;
          for (const p of e.parts) bytes += p.byteLength;
        }
        try {
          // After a failed round, stale entries of it could be followed by new ones and replayed at open over
          // data written since: a checkpoint (new salt) invalidates them first.
          if (this.mustCheckpoint) {
            try {
              await this.checkpoint();
            } catch (err) {
              this.settleDiscards(err);
              throw err;
            }
            this.mustCheckpoint = false;
            this.settleDiscards();
          }
          if (this.needsTruncate) {
            await this.fh.truncate(this.size);
            this.needsTruncate = false;
          }
          if (bytes <= this.inlineWriteBytes && this.fh.writevSync !== undefined) {
            writeAllSync(this.fh, buffers, this.size, bytes);
          } else {
            await writeAll(this.fh, buffers, this.size, bytes);
          }
          await this.fh.datasync();
        } catch (err) {
          this.mustCheckpoint = true;
          this.needsTruncate = true;
          await this.fh.truncate(this.size).then(
            () => {
              this.needsTruncate = false;
            },
            () => undefined,
          );
          for (const e of round) e.reject(err);
          continue;
        }
        this.size += bytes;
        this.stats.rounds++;
        this.stats.entries += round.length;
        for (const e of round) e.onDurable?.();
        for (const e of round) e.resolve();
        if (this.size >= this.checkpointBytes) await this.checkpoint().catch(() => undefined);
        // As for stream groups: under concurrency, one turn of the event loop lets the streams just acknowledged
        // write their next groups, so that they share the next round instead of trailing it.
        if (round.length > 1) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.running = undefined;
    }
  }

  /**
   * Syncs every log written since the last checkpoint, then empties the journal. Runs between rounds (or when the
   * journal is idle), so no entry is written while the journal is being reset. A failed log sync keeps the journal.
   */
  async checkpoint(): Promise<void> {
    await this.beforeCheckpoint?.();
    const logs = [...this.dirty];
    this.dirty.clear();
    try {
      const live = logs.filter((l) => !l.removed);
      const syncAll = this.syncAll;
      let synced = false;
      const durable: JournaledLog[] = [];
      if (syncAll !== undefined && live.length >= SYNC_ALL_FROM) {
        await eachLimited(live, async (l) => {
          if (await l.flushLog()) durable.push(l);
        });
        synced = await syncAll().then(
          () => true,
          () => false,
        );
      }
      if (!synced) {
        durable.length = 0;
        await eachLimited(live, async (l) => {
          if (await l.syncLog()) durable.push(l);
        });
      }
      for (const l of durable) l.synced();
      await this.onCheckpoint?.();
    } catch (err) {
      for (const l of logs) this.dirty.add(l);
      throw err;
    }
    await this.reset();
    this.stats.checkpoints++;
  }

  private async reset(): Promise<void> {
    this.salt = newSalt();
    await writeAll(this.fh, [encodeJournalHeader(this.salt)], 0, LOG_HEADER_SIZE);
    await this.fh.truncate(LOG_HEADER_SIZE);
    await this.fh.datasync();
    this.size = LOG_HEADER_SIZE;
    this.needsTruncate = false;
  }

  /** Waits for queued entries, takes a final checkpoint and closes the file. */
  async close(): Promise<void> {
    while (this.running !== undefined) await this.running;
    this.closed = true;
    try {
      await this.checkpoint();
    } finally {
      await this.fh.close();
    }
  }
}

export async function writeAll(
  fh: FileHandleLike,
  parts: Uint8Array[],
  position: number,
  total: number,
): Promise<void> {
  let written = 0;
  let rest = parts;
  while (written < total) {
    const { bytesWritten } = await fh.writev(rest, position + written);
    if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    written += bytesWritten;
    if (written < total) {
      let skip = bytesWritten;
      const next: Uint8Array[] = [];
      for (const p of rest) {
        if (skip >= p.byteLength) {
          skip -= p.byteLength;
          continue;
        }
        next.push(skip > 0 ? p.subarray(skip) : p);
        skip = 0;
      }
      rest = next;
    }
  }
}

/** {@link writeAll} with the handle's synchronous write (which the caller checked exists). */
export function writeAllSync(fh: FileHandleLike, parts: Uint8Array[], position: number, total: number): void {
  let written = 0;
  let rest = parts;
  while (written < total) {
    const bytesWritten = fh.writevSync!(rest, position + written);
    if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    written += bytesWritten;
    if (written < total) rest = skipBytes(rest, bytesWritten);
  }
}

/** The salt in the header of an open log, or `undefined` when the header is missing or damaged. */
export async function logSalt(fh: FileHandleLike): Promise<number | undefined> {
  const header = Buffer.alloc(LOG_HEADER_SIZE);
  const { size } = await fh.stat();
  if (size < LOG_HEADER_SIZE) return undefined;
  await fh.read(header, 0, LOG_HEADER_SIZE, 0);
  return decodeLogHeader(header);
}

/**
 * Re-applies journaled group writes of one log, in order, and syncs it. A group that was rolled back after a failed
 * commit is followed by one at the same position; whatever the rolled-back group left beyond the last write is cut.
 */
export async function replayInto(
  fh: FileHandleLike,
  entries: readonly JournalEntry[],
  sync = true,
): Promise<void> {
  let end = 0;
  let furthest = 0;
  for (const e of entries) {
    await writeAll(fh, [e.bytes], e.position, e.bytes.byteLength);
    end = e.position + e.bytes.byteLength;
    furthest = Math.max(furthest, end);
  }
  if (furthest > end) await fh.truncate(end);
  if (sync) await fh.datasync();
}

/**
 * Runs `fn` over `items`, 16 at a time: a checkpoint may have tens of thousands of logs to write out or sync, and all
 * at once would open as many files (past the process's limit).
 */
async function eachLimited<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let cursor = 0;
  const worker = async (): Promise<void> => {
    while (cursor < items.length) await fn(items[cursor++]!);
  };
  await Promise.all(Array.from({ length: Math.min(16, items.length) }, worker));
}
