import type { Core } from './core.js';
import type { StreamEntry } from './stream-entry.js';

/**
 * Carrying small streams in the catalog snapshot.
 *
 * A stream's first write used to cost a file of its own (created when the journal's copy is written out). With
 * streams by the hundred thousand (one per session, per chat), most hold a few hundred bytes, and creating their files
 * cost more than everything else an append does: every journal `fdatasync` also committed the file system's metadata
 * of the files created since the previous one. So a stream whose whole log (header and records) is at most
 * `carryStreamBytes` gets no file: at a checkpoint its log bytes, until then durable in the journal, are written into
 * the catalog snapshot with its record (`CatalogRecord.inline`), which the checkpoint writes anyway.
 *
 * - **Loading** a carried stream replays its records from those bytes (no file read); the entry keeps them as
 *   `unwritten`, reads are served from them.
 * - **Appending** to it journals the new groups as for any stream; they stay pending after the carried bytes.
 * - **A file is created** when the stream outgrows `carryStreamBytes`, when all carried logs together exceed
 *   `carryBudgetBytes`, or when something needs the bytes in a file (a large direct write, a read past the carried
 *   bytes): the file gets the carried bytes in front, and the next checkpoint syncs it and only then drops the
 *   carried copy (`settleCarry`). Until then the carried copy is authoritative: a crash in between leaves a file the
 *   catalog does not trust, which the stream's next flush or the recovery replaces.
 * - **Recovery** re-applies journaled writes of a carried stream to its carried bytes (in memory), and creates the
 *   file only when they outgrow the limit.
 */

/** Accounts for `bytes` of a stream's pending writes gone (written out, carried or dropped) from `entry.pending`. */
export function forgetPending(core: Core, entry: StreamEntry, bytes: number): void {
  entry.pendingBytes -= bytes;
  core.pendingBytes -= bytes;
  if (entry.pendingCarry) core.carryPendingBytes -= bytes;
  if (entry.pending.length === 0) {
    core.pendingStreams.delete(entry);
    uncarryPending(core, entry);
  }
}

/** The stream's pending writes no longer start a log without a file (it has one now, or none are left). */
export function uncarryPending(core: Core, entry: StreamEntry): void {
  if (!entry.pendingCarry) return;
  entry.pendingCarry = false;
  core.carryPendingStreams--;
  core.carryPendingBytes -= entry.pendingBytes;
}

/** Forgets the pending writes of a stream whose log is gone (deleted). */
export function dropPending(core: Core, entry: StreamEntry): void {
  entry.pending = [];
  forgetPending(core, entry, entry.pendingBytes);
}

/** Whether the bytes of logs without files (carried and pending) exceed `factor` times the carry budget. */
export function carryOverBudget(core: Core, factor: number): boolean {
  return core.carryPendingBytes + core.carriedBytes > core.settings.carryBudgetBytes * factor;
}

/**
 * At a checkpoint, before a written log is flushed and synced: carries it instead when it has no file and is small
 * enough (its bytes become the record's `inline`, written by the snapshot this checkpoint writes next). True when the
 * log is carried (nothing to write or sync), false when it must be flushed and synced as usual.
 */
export async function carryAtCheckpoint(core: Core, entry: StreamEntry): Promise<boolean> {
  if (core.settings.carryStreamBytes === 0 || entry.removed) return false;
  while (entry.flushing !== null) await entry.flushing.catch(() => undefined);
  if (entry.removed) return false;
  return carryNow(core, entry);
}

/**
 * Makes a log without a file a carried one now, if it is small enough and the budget allows: its pending bytes join
 * the carried ones in the record's `inline` (which the next snapshot writes; until then the journal holds them). False
 * when it has a file, or must get one.
 */
export function carryNow(core: Core, entry: StreamEntry): boolean {
  const unwritten = entry.unwritten;
  const noFile = unwritten !== null || (entry.pending.length > 0 && entry.pendingAt === 0);
  if (!noFile || entry.flushing !== null) return false;
  const size = (unwritten?.byteLength ?? 0) + entry.pendingBytes;
  const before = entry.record.inline?.byteLength ?? 0;
  if (
    size > core.settings.carryStreamBytes ||
    core.carriedBytes - before + size > core.settings.carryBudgetBytes
  ) {
    return false;
  }
  if (entry.pending.length === 0) return true;
  const parts = unwritten === null ? entry.pending : [unwritten, ...entry.pending];
  const bytes = Buffer.concat(parts, size);
  core.setInline(entry.record, bytes);
  const pendingBytes = entry.pendingBytes;
  entry.pending = [];
  forgetPending(core, entry, pendingBytes);
  entry.unwritten = bytes;
  // Nothing of it is left for a checkpoint to write or sync: the snapshot carries it.
  if (entry.journaled !== undefined) core.journal.untouch(entry.journaled);
  return true;
}

/**
 * After a checkpoint synced a stream's log (flushed, so complete): the file takes over from the carried copy, which
 * the snapshot written next no longer holds.
 */
export function settleCarry(core: Core, entry: StreamEntry): void {
  if (entry.unwritten === null && entry.record.inline !== undefined && !entry.removed) {
    core.setInline(entry.record, undefined);
  }
}
