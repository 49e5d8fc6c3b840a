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
    let total = 0;
    for (const p of parts) total += p.byteLength;
    // A small write goes straight to the page cache from the event loop; it has completed (or thrown) before
    // anything else runs, so it never overlaps a journal entry or a checkpoint.
    const inline = total <= core.settings.inlineWriteBytes && fh.writevSync !== undefined;
    const journal = core.journal;
    const useJournal = core.settings.useJournal;
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

/** Creates (or empties) the log file of a stream that has none yet and adopts the handle into the pool. */
async function createLog(core: Core, entry: StreamEntry): Promise<FileHandleLike> {
  const fh = await core.createLogFile(entry.record);
  core.handles.adopt(entry, fh);
  entry.logSize = LOG_HEADER_SIZE;
  return fh;
}

/** The journal's view of a log: how a checkpoint syncs it. */
export function journaledLog(core: Core, entry: StreamEntry): JournaledLog {
  return {
    get removed() {
      return entry.removed;
    },
    syncLog: async () => {
      let fh: FileHandleLike;
      try {
        fh = await core.handles.acquire(entry);
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
        core.handles.release(entry);
        // An entry dropped from memory since its write keeps no handle open.
        if (core.entries.get(entry.name) !== entry) core.handles.discard(entry);
      }
    },
  };
}
