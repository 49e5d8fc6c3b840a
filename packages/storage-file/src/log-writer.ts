import {
  carryAtCheckpoint,
  carryNow,
  carryOverBudget,
  forgetPending,
  settleCarry,
  uncarryPending,
} from './carry.js';
import type { Core } from './core.js';
import { encodeLogHeader, LOG_HEADER_SIZE } from './format.js';
import { classifyIoError, errnoCode, type FileHandleLike } from './fs.js';
import { type JournaledLog, writeAll, writeAllSync } from './journal.js';
import type { StreamEntry } from './stream-entry.js';

/**
 * Writes `parts` at `pos` (the end of the verified log) and makes them durable as configured. On failure the file is
 * cut back to `pos` so that no partial or unacknowledged record stays behind the next write; if even that fails, the
 * cut is retried before the next write.
 *
 * A stream without a log file yet (`logSize` 0) gets one here: created (replacing any file an earlier stream of the
 * same name left behind), with the header written in front of `parts`. Such a first write always goes through the
 * journal when there is one, so that the file itself is recreated from the journal after a crash.
 */
export async function writeAt(
  core: Core,
  entry: StreamEntry,
  parts: Uint8Array[],
  pos: number,
  what: string,
): Promise<void> {
  const journal = core.journal;
  const useJournal = core.settings.useJournal;
  let total = 0;
  for (const p of parts) total += p.byteLength;
  if (
    useJournal !== false &&
    total <= core.settings.inlineWriteBytes &&
    (entry.logSize === 0 ||
      entry.unwritten !== null ||
      useJournal === 'always' ||
      !journal.idle ||
      core.directSyncs > 0)
  ) {
    // A first write carries the log's header, and the log file is created when the bytes are written out.
    if (entry.logSize === 0) {
      return deferredWrite(
        core,
        entry,
        [encodeLogHeader(entry.salt), ...parts],
        0,
        total + LOG_HEADER_SIZE,
        what,
      );
    }
    return deferredWrite(core, entry, parts, pos, total, what);
  }
  // Written now: whatever earlier groups are still pending (or carried) goes first, so that the file has no gap.
  if (entry.pending.length > 0 || entry.unwritten !== null) {
    try {
      await flushPending(core, entry);
    } catch (err) {
      throw classifyIoError(err, what);
    }
  }
  let fresh = false;
  if (entry.logSize === 0) {
    fresh = true;
    parts = [encodeLogHeader(entry.salt), ...parts];
    pos = 0;
  }
  let fh: FileHandleLike | undefined;
  try {
    fh = fresh ? await createLog(core, entry) : core.handles.acquireOpen(entry);
    fh ??= await core.handles.acquire(entry);
  } catch (err) {
    throw classifyIoError(err, what);
  }
  try {
    if (entry.needsTruncate) {
      await fh.truncate(pos);
      entry.needsTruncate = false;
    }
    if (fresh) total += LOG_HEADER_SIZE;
    // A small write goes straight to the page cache from the event loop; it has completed (or thrown) before
    // anything else runs, so it never overlaps a journal entry or a checkpoint.
    const inline = total <= core.settings.inlineWriteBytes && fh.writevSync !== undefined;
    if (useJournal !== false && (fresh || useJournal === 'always' || !journal.idle || core.directSyncs > 0)) {
      // Other syncs are in flight: join the journal's next round, shared with every stream in it. The log write
      // and the journal entry are issued together, so that the groups of all streams reach the same round instead
      // of trailing behind their log writes; the commit completes once both are done (the journal holds the
      // durable copy, the log serves reads). The entry of a failed log write must never be replayed (the append
      // is reported as failed): the journal is emptied (logs synced, new salt) before the failure is reported.
      // An inline log write fails before its entry is submitted, so it has nothing to discard.
      entry.journaled ??= journaledLog(core, entry);
      journal.touch(entry.journaled);
      if (inline) {
        writeAllSync(fh, parts, pos, total);
        await journal.submit(entry.record.id, entry.salt, pos, parts);
      } else {
        const written = writeAll(fh, parts, pos, total);
        entry.logWrite = written;
        const [logged, durable] = await Promise.allSettled([
          written,
          journal.submit(entry.record.id, entry.salt, pos, parts),
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
      if (core.settings.syncOnAppend) {
        // Nothing else is syncing: a sync of the log itself is one write and one sync cheaper than the journal.
        core.directSyncs++;
        try {
          await fh.datasync();
        } finally {
          core.directSyncs--;
        }
      }
    }
    if (fresh) {
      entry.record.hasLog = true;
      core.catalogDirty = true;
    }
  } catch (err) {
    if (fresh) {
      // Nothing of this stream's data is durable: no log at all is the state to return to.
      entry.logSize = 0;
      core.handles.discard(entry);
      await core.fs.unlink(entry.path).catch(() => undefined);
    } else {
      entry.needsTruncate = true;
      try {
        await fh.truncate(pos);
        entry.needsTruncate = false;
      } catch {
        // retried before the next write
      }
    }
    throw classifyIoError(err, what);
  } finally {
    core.handles.release(entry);
  }
}

/** Pending bytes of one stream that are written out at once (one write instead of one per group). */
const FLUSH_BYTES = 64 * 1024;
const FLUSH_PARTS = 512;

/**
 * A group made durable by the journal alone: the log receives its bytes later, together with the stream's other
 * pending groups, when they reach {@link FLUSH_BYTES}, when a read needs them, or at the next checkpoint (which syncs
 * the log before the journal is emptied). One write into each of thousands of files per round costs the event loop
 * more than the round's sync; written in batches, appends spread over many streams cost about what appends to a
 * few streams do. A crash before the flush loses nothing: recovery re-applies the journal to the logs.
 */
async function deferredWrite(
  core: Core,
  entry: StreamEntry,
  parts: Uint8Array[],
  pos: number,
  total: number,
  what: string,
): Promise<void> {
  // A log without a file is not the checkpoint's to write unless it cannot be carried (`carryPending` decides).
  if (core.settings.carryStreamBytes === 0 || (pos !== 0 && entry.unwritten === null)) {
    entry.journaled ??= journaledLog(core, entry);
    core.journal.touch(entry.journaled);
  }
  try {
    await core.journal.submit(entry.record.id, entry.salt, pos, parts, () => {
      // Synchronously at durability, so that a checkpoint starting right after the round flushes these bytes too.
      if (entry.pending.length === 0) {
        entry.pendingAt = pos;
        core.pendingStreams.add(entry);
        if (pos === 0 || entry.unwritten !== null) {
          // A log without a file yet: a candidate for carrying (carry.ts) rather than a file creation.
          entry.pendingCarry = true;
          core.carryPendingStreams++;
        }
      }
      for (const p of parts) entry.pending.push(p);
      entry.pendingBytes += total;
      core.pendingBytes += total;
      if (entry.pendingCarry) core.carryPendingBytes += total;
    });
  } catch (err) {
    throw classifyIoError(err, what);
  }
  // Durable already: a failed write is retried by the next flush (a read or the checkpoint needs it to succeed).
  if (entry.pendingBytes >= FLUSH_BYTES || entry.pending.length >= FLUSH_PARTS) {
    await flushPending(core, entry).catch(() => undefined);
  }
  // Memory held for pending writes is bounded, and so is the number of streams with pending writes (each may owe a
  // file creation, and a checkpoint or a close writes them all out). Past the budget, a background flusher writes
  // out the streams pending longest, a few at a time, off the appenders' path: a first write's file is created in
  // the thread pool while the event loop goes on serving appends. Only past twice the budget does a writer wait.
  if (overBudget(core, 1)) {
    const flusher = startFlusher(core);
    if (overBudget(core, 2)) await flusher;
  }
}

function overBudget(core: Core, factor: number): boolean {
  if (core.settings.carryStreamBytes === 0) {
    return core.pendingBytes > PENDING_BUDGET * factor || core.pendingStreams.size > PENDING_STREAMS * factor;
  }
  // Streams without a file yet are carried at the checkpoint instead of getting one: they count against the carry
  // budget (memory, and the snapshot's size), not against the file creations a checkpoint owes.
  return (
    core.pendingBytes - core.carryPendingBytes > PENDING_BUDGET * factor ||
    core.pendingStreams.size - core.carryPendingStreams > PENDING_STREAMS * factor ||
    carryOverBudget(core, factor)
  );
}

/** Streams the background flusher writes out concurrently: half the thread pool (four threads by default), so that
 * the journal's syncs and the reads always find a free thread. */
const FLUSH_CONCURRENCY = 2;

/** Starts (or joins) the background flusher, which writes out the oldest pending streams until under budget. */
function startFlusher(core: Core): Promise<void> {
  if (core.flusher !== null) return core.flusher;
  const run = (async () => {
    try {
      while (overBudget(core, 1)) {
        const batch: StreamEntry[] = [];
        // Carry candidates get files only when the carry budget is what is exceeded.
        const keepCarried = core.settings.carryStreamBytes > 0 && !carryOverBudget(core, 1);
        for (const e of core.pendingStreams) {
          if (e.flushing !== null || (keepCarried && e.pendingCarry)) continue;
          batch.push(e);
          if (batch.length >= FLUSH_CONCURRENCY) break;
        }
        if (batch.length === 0) break;
        const done = await Promise.allSettled(batch.map((e) => flushPending(core, e, true)));
        // A failing file system (ENOSPC, EIO) makes no progress: stop, the next deferred write starts over.
        if (done.every((r) => r.status === 'rejected')) break;
      }
    } finally {
      core.flusher = null;
    }
  })();
  core.flusher = run;
  core.drains.add(run);
  void run.finally(() => core.drains.delete(run));
  return run;
}

/**
 * Pending bytes across all streams beyond which the oldest are written out. Large enough that a stream of thousands
 * appended to now and then collects several groups per write; the checkpoint writes out everything anyway.
 */
const PENDING_BUDGET = 16 * 1024 * 1024;
const PENDING_STREAMS = 4096;

/**
 * Writes a stream's pending groups to its log (see {@link deferredWrite}). In the `background`, a log file is created
 * through the thread pool rather than on the event loop.
 */
export async function flushPending(core: Core, entry: StreamEntry, background = false): Promise<void> {
  while (entry.flushing !== null) await entry.flushing.catch(() => undefined);
  if ((entry.pending.length === 0 && entry.unwritten === null) || entry.removed) return;
  const run = (async () => {
    const pendingParts = entry.pending.slice();
    const pendingBytes = entry.pendingBytes;
    const unwritten = entry.unwritten;
    let parts = pendingParts;
    let at = entry.pendingAt;
    let bytes = pendingBytes;
    if (unwritten !== null) {
      // A carried log: its bytes go in front, and the file is created now.
      parts = [unwritten, ...pendingParts];
      at = 0;
      bytes += unwritten.byteLength;
    }
    // Bytes from position 0 start with the header: the stream's first write (or its carried log), whose log is
    // created now (replacing any file an earlier stream of the same name left behind).
    let fh: FileHandleLike;
    if (at === 0) {
      // A first write that failed before may have left its handle open: close it, the file is created again.
      core.handles.discard(entry);
      fh = await core.createLogFile(entry.record, background);
      entry.record.noFile = false;
      core.handles.adopt(entry, fh);
    } else {
      fh = core.handles.acquireOpen(entry) ?? (await core.handles.acquire(entry));
    }
    try {
      if (fh.writevSync !== undefined && bytes <= Math.max(FLUSH_BYTES, core.settings.inlineWriteBytes) * 2) {
        writeAllSync(fh, parts, at, bytes);
      } else {
        await writeAll(fh, parts, at, bytes);
      }
    } finally {
      core.handles.release(entry);
    }
    entry.pending.splice(0, pendingParts.length);
    forgetPending(core, entry, pendingBytes);
    entry.pendingAt = at + bytes;
    if (at === 0) {
      if (unwritten !== null) entry.record.materialized = true;
      entry.unwritten = null;
      uncarryPending(core, entry);
      entry.record.hasLog = true;
      core.catalogDirty = true;
      // The next checkpoint syncs the new file (which then replaces the carried copy, if any).
      entry.journaled ??= journaledLog(core, entry);
      core.journal.touch(entry.journaled);
    }
  })();
  entry.flushing = run;
  try {
    await run;
  } finally {
    entry.flushing = null;
  }
}

/** Creates (or empties) the log file of a stream that has none yet and adopts the handle into the pool. */
async function createLog(core: Core, entry: StreamEntry): Promise<FileHandleLike> {
  const fh = await core.createLogFile(entry.record);
  entry.record.noFile = false;
  core.handles.adopt(entry, fh);
  entry.logSize = LOG_HEADER_SIZE;
  return fh;
}

/**
 * Before a checkpoint: the streams whose pending writes start a log without a file are carried now, or, when they
 * cannot be (too large, over the budget), handed to the checkpoint to be written to files and synced.
 */
export async function carryPending(core: Core): Promise<void> {
  for (const e of [...core.pendingStreams]) {
    if (!e.pendingCarry || e.removed) continue;
    if (core.settings.carryStreamBytes > 0) {
      while (e.flushing !== null) await e.flushing.catch(() => undefined);
      if (e.removed || carryNow(core, e)) continue;
    }
    e.journaled ??= journaledLog(core, e);
    core.journal.touch(e.journaled);
  }
}

/** The journal's view of a log: how a checkpoint syncs it. */
export function journaledLog(core: Core, entry: StreamEntry): JournaledLog {
  return new EntryLog(core, entry);
}

// A class rather than an object of four closures: one per loaded stream that writes a file (~40 bytes, not ~250).
class EntryLog implements JournaledLog {
  constructor(
    private readonly core: Core,
    private readonly entry: StreamEntry,
  ) {}

  // The record too: a stream deleted while not loaded marks its record only, and this entry, dropped from memory
  // since its write, would otherwise have the checkpoint sync a file that is gone (or the name's next stream's).
  get removed(): boolean {
    return this.entry.removed || this.entry.record.removed;
  }

  async flushLog(): Promise<boolean> {
    const { core, entry } = this;
    await entry.logWrite?.catch(() => undefined);
    if (await carryAtCheckpoint(core, entry)) return false;
    await flushPending(core, entry);
    return true;
  }

  async syncLog(): Promise<boolean> {
    const { core, entry } = this;
    // Write out what the log still lacks first (this may create it); a checkpoint right after a round may also
    // overtake the log write of one of its groups: sync after it.
    await entry.logWrite?.catch(() => undefined);
    if (await carryAtCheckpoint(core, entry)) return false;
    if (entry.pending.length > 0 || entry.unwritten !== null) await flushPending(core, entry);
    let fh: FileHandleLike;
    try {
      fh = await core.handles.acquire(entry);
    } catch (err) {
      // A log being deleted needs no checkpoint once the delete went through.
      if (errnoCode(err) === 'ENOENT' && entry.deleting !== null) await entry.deleting;
      if (this.removed) return false;
      throw err;
    }
    try {
      await fh.datasync();
    } finally {
      core.handles.release(entry);
      // An entry dropped from memory since its write keeps no handle open.
      if (core.entries.get(entry.name) !== entry) core.handles.discard(entry);
    }
    return true;
  }

  synced(): void {
    settleCarry(this.core, this.entry);
  }
}
