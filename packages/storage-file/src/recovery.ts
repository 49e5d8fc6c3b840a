import { join } from 'node:path';
import { StorageError } from '@streamkeep/storage';
import { applyCatalogOp, type CatalogRecord, decodeCatalogOp, streamId } from './catalog.js';
import type { Core, QuarantinedStream } from './core.js';
import { asBuffer, errnoCode, type FileHandleLike, nodeFileSystem, syncDir, syncFileSystem } from './fs.js';
import { FileSystemSyncer } from './fs-syncer.js';
import { Journal, type JournalEntry, logSalt, parseJournal, replayInto } from './journal.js';
import {
  CATALOG_FILE,
  CLEAN_FILE,
  FORMAT_1_TEXT,
  FORMAT_FILE,
  FORMAT_TEXT,
  JOURNAL_FILE,
  LOGS_DIR,
  logDirOf,
  logPathOf,
  replaceFile,
  SUBSCRIPTIONS_FILE,
  TMP_DIR,
} from './layout.js';
import { carryPending } from './log-writer.js';
import { migrateFormat1 } from './migrate.js';
import type { ProgressReporter } from './progress.js';
import { readCatalog } from './snapshot.js';

/** `<file>.<uuid>.tmp`, as {@link replaceFile} names its temporary file next to the one it replaces. */
const REPLACED_TMP =
  /^(?:catalog|subscriptions|FORMAT)\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.tmp$/;

/** What opening a root found. */
export interface RecoveryReport {
  /** Streams in the catalog (tombstones included). */
  readonly streams: number;
  /** Messages and log bytes of the streams whose logs were read at open (all of them with `verifyOnOpen`). */
  readonly messages: number;
  readonly logBytes: number;
  /** Streams whose torn tail (an interrupted write) was cut off, with the bytes removed. */
  readonly truncated: readonly { readonly name: string; readonly bytes: number }[];
  /** Journaled group writes re-applied to stream logs (writes the crash kept from reaching a log). */
  readonly redone: number;
  /** Journaled catalog changes (creates, tombstones, deletes) applied over the snapshot. */
  readonly catalogChanges: number;
  /** Journaled subscription writes (records written or deleted) applied over the `subscriptions` file. */
  readonly subscriptionChanges: number;
  /** The on-disk format the root had before this open, when it was migrated. */
  readonly migratedFrom: 1 | undefined;
  readonly quarantined: readonly QuarantinedStream[];
  readonly durationMs: number;
}

/**
 * Brings a locked root to a servable state: creates or migrates the layout, reads the catalog snapshot and the
 * subscriptions file, applies the journal (catalog changes and subscription writes, then the log writes a crash kept
 * from reaching their logs), writes a fresh snapshot (and subscriptions file) when the journal changed them, and
 * starts an empty journal. Work is bounded by the snapshot's size (names and
 * configs) and the journal's, not by the data stored: logs are verified when their stream is first used.
 */
export async function recover(
  core: Core,
  progress: ProgressReporter,
  journalCheckpointBytes: number,
): Promise<Omit<RecoveryReport, 'durationMs' | 'quarantined' | 'messages' | 'logBytes' | 'truncated'>> {
  const { fs, root } = core;
  const formatPath = join(root, FORMAT_FILE);
  let migratedFrom: 1 | undefined;
  let migrated: QuarantinedStream[] = [];
  if (await fs.exists(formatPath)) {
    const text = Buffer.from(await fs.readFile(formatPath)).toString('utf8');
    if (text === FORMAT_1_TEXT) {
      migrated = await migrateFormat1(core, progress);
      migratedFrom = 1;
    } else if (text !== FORMAT_TEXT) {
      throw new StorageError('CORRUPTED', `${formatPath} names an unknown format: ${JSON.stringify(text)}`);
    }
  } else {
    await createLayout(core);
  }
  await fs.mkdir(join(root, TMP_DIR));
  for (const child of await fs.readdir(join(root, TMP_DIR))) await fs.rmrf(join(root, TMP_DIR, child));
  // Temporary siblings of files replaced atomically (`replaceFile`) that a crash left before their rename.
  for (const child of await fs.readdir(root)) {
    if (REPLACED_TMP.test(child)) await fs.unlink(join(root, child));
  }
  // A migration interrupted after its switch to format 2 leaves the old folders: they hold nothing needed.
  for (const old of ['streams', 'trash']) {
    if (await fs.exists(join(root, old))) await fs.rmrf(join(root, old));
  }

  // After a crash, streams written since the last checkpoint may hold more than the snapshot's summary says.
  const cleanPath = join(root, CLEAN_FILE);
  const clean = await fs.exists(cleanPath);
  const catalogPath = join(root, CATALOG_FILE);
  if (await fs.exists(catalogPath)) {
    try {
      core.catalog = await readCatalog(fs, catalogPath, clean);
    } catch (err) {
      throw new StorageError('CORRUPTED', `${catalogPath}: ${(err as Error).message}`);
    }
    core.carriedBytes = core.catalog.inlineBytes;
  }
  for (const q of migrated) core.quarantine.set(q.name ?? q.dir, q);
  // Absent in a root that never had a subscription at a checkpoint (or one written by an older version): none.
  const subscriptionsPath = join(root, SUBSCRIPTIONS_FILE);
  if (await fs.exists(subscriptionsPath)) {
    core.subscriptions.load(Buffer.from(await fs.readFile(subscriptionsPath)), subscriptionsPath);
  }

  const journalPath = join(root, JOURNAL_FILE);
  const hadJournal = await fs.exists(journalPath);
  let changes = 0;
  let subscriptionChanges = 0;
  let redone = 0;
  let carriedRedone = 0;
  if (hadJournal) {
    const parsed = parseJournal(asBuffer(await fs.readFile(journalPath)));
    const deleted = new Set<string>();
    // Names created by the journal's entries, by log id: the log of such a name may hold writes of an earlier stream
    // of the name too (created, deleted and created again since the checkpoint); only the current one's are redone.
    const createdIds = new Map<string, string>();
    for (const bytes of parsed.catalog) {
      let op: ReturnType<typeof decodeCatalogOp>;
      try {
        op = decodeCatalogOp(bytes);
      } catch {
        break; // a valid checksum over an entry this version cannot read: stop there, as at a torn entry
      }
      if (op.op === 'subscription') {
        // The whole record (or its removal): applying one the file already has changes nothing.
        core.subscriptions.apply(op.id, op.record);
        subscriptionChanges++;
        continue;
      }
      if (op.op !== 'tombstone') {
        // A carried log replaced or deleted: its bytes no longer count.
        const old = core.catalog.get(op.name);
        if (old !== undefined) core.carriedBytes -= old.inline?.byteLength ?? old.carried?.len ?? 0;
      }
      applyCatalogOp(core.catalog, op);
      if (op.op === 'delete') deleted.add(op.name);
      else if (op.op === 'create') {
        deleted.delete(op.name);
        createdIds.set(streamId(op.name), op.name);
      }
      changes++;
    }
    const skip = new Set([...deleted].map(streamId));
    const total = parsed.logs.size;
    // Carried streams (no file of their own): their journaled writes are applied to their carried bytes.
    const carried = new Map<string, CatalogRecord>();
    if (total > 0) {
      for (const r of core.catalog.carried()) {
        if (r.inline !== undefined || r.carried !== undefined) carried.set(r.id, r);
      }
    }
    // Many logs to repair: write them all, then sync the file system once (one sync per log took 33 s for 40,000).
    const syncAll = total >= 64 && fs === nodeFileSystem && process.platform === 'linux';
    let done = 0;
    // Logs are independent: repaired a few at a time, so that the file system's latency overlaps.
    const work = [...parsed.logs].filter(([id]) => !skip.has(id));
    let cursor = 0;
    const worker = async (): Promise<void> => {
      while (cursor < work.length) {
        const [id, entries] = work[cursor++]!;
        const record = carried.get(id);
        const name = createdIds.get(id);
        const salt = name === undefined ? undefined : core.catalog.get(name)?.salt;
        const n =
          record === undefined
            ? await redoLog(core, id, entries, salt, !syncAll)
            : await redoCarried(core, record, entries, !syncAll);
        redone += n;
        if (record !== undefined && n > 0) carriedRedone++;
        progress.report({
          phase: 'replay',
          streamsDone: ++done,
          streamsTotal: total,
          bytesDone: 0,
          bytesTotal: 0,
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, work.length) }, worker));
    if (redone > 0 && syncAll) await syncFileSystem(root);
    if (redone > 0) {
      for (const dir of new Set([...parsed.logs.keys()].map((id) => logDirOf(root, id)))) {
        await syncDir(fs, dir).catch(() => undefined);
      }
    }
  }
  // Fork counts, derived. After a clean shutdown only the records already decoded (forks, tombstones) are visited
  // and the byte total is the snapshot's; after a crash every record is.
  const exact = clean && changes === 0;
  if (exact) core.total = core.catalog.snapshotBytes;
  for (const r of exact ? [...core.catalog.decoded()] : core.catalog.values()) {
    if (!exact) core.total += r.bytes;
    if (r.fork === null) continue;
    const src = core.catalog.get(r.fork.source);
    if (src !== undefined) src.refs++;
  }
  // The catalog the journal changed is saved before the journal is emptied.
  if (changes > 0 || carriedRedone > 0 || migratedFrom !== undefined) await writeSnapshot(core);
  if (subscriptionChanges > 0) await checkpointSubscriptions(core);
  const fh = await fs.open(journalPath, hadJournal ? 'r+' : 'wx+');
  try {
    core.journal = await Journal.create(fh, journalCheckpointBytes, core.settings.inlineWriteBytes);
  } catch (err) {
    await fh.close();
    throw err;
  }
  if (clean) await fs.unlink(cleanPath);
  if (!hadJournal || clean) await syncDir(fs, root);
  core.journal.onCheckpoint = async () => {
    await checkpointCatalog(core);
    await checkpointSubscriptions(core);
  };
  core.journal.beforeCheckpoint = () => carryPending(core);
  // The real file system on Linux: a checkpoint with many logs to sync syncs the file system once instead.
  if (core.fs === nodeFileSystem && process.platform === 'linux') {
    // Made now, so that its shell starts while the process is small: see `fs-syncer.ts`.
    const syncer = new FileSystemSyncer();
    core.syncer = syncer;
    core.journal.syncAll = () => syncer.sync(root);
  }
  return {
    streams: core.catalog.size,
    redone,
    catalogChanges: changes,
    subscriptionChanges,
    migratedFrom,
  };
}

/**
 * A new root: the logs folder, then the format marker (last, so a root without it is never half made). The fan-out
 * folders under `logs/` are made when their first log is (and synced, with `logs/`, at the next checkpoint).
 */
async function createLayout(core: Core): Promise<void> {
  const { fs, root } = core;
  await fs.mkdir(join(root, LOGS_DIR));
  await syncDir(fs, root);
  await replaceFile(fs, root, FORMAT_FILE, [Buffer.from(FORMAT_TEXT)]);
}

/**
 * Re-applies journaled group writes to one log in order. A group that was rolled back after a failed commit is
 * followed by one at the same position; whatever the rolled-back group left beyond the last write is cut. A log
 * whose header has another salt belongs to an earlier stream of the name: replaced when the entries start it anew,
 * left alone otherwise.
 *
 * `salt` is the live stream's, when the journal created it: entries of an earlier stream of the name are then
 * ignored, even when they are the last ones (the new stream's own writes need not be journaled: without
 * `syncOnAppend`, or a group that synced its own log). Otherwise the name was created before the checkpoint and
 * every entry belongs to the one stream of that salt.
 */
async function redoLog(
  core: Core,
  id: string,
  entries: JournalEntry[],
  live: number | undefined,
  sync: boolean,
): Promise<number> {
  const { fs, root } = core;
  const path = logPathOf(root, id);
  const salt = live ?? entries[entries.length - 1]!.salt;
  const mine = entries.filter((e) => e.salt === salt);
  if (mine.length === 0) return 0;
  let fh: FileHandleLike;
  try {
    fh = await fs.open(path, 'r+');
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
    if (mine[0]?.position !== 0) return 0;
    await fs.mkdir(logDirOf(root, id));
    fh = await fs.open(path, 'w+');
  }
  try {
    if ((await logSalt(fh)) !== salt) {
      if (mine[0]?.position !== 0) return 0;
      await fh.truncate(0);
    }
    await replayInto(fh, mine, sync);
    return mine.length;
  } finally {
    await fh.close();
  }
}

/**
 * Re-applies journaled group writes of a carried stream to its carried bytes, as {@link redoLog} does to a file; a
 * log that grew past the carry limit is written to a file of its own instead. Entries of an earlier stream of the
 * name (another salt) are ignored.
 */
async function redoCarried(
  core: Core,
  record: CatalogRecord,
  entries: JournalEntry[],
  sync: boolean,
): Promise<number> {
  const mine = entries.filter((e) => e.salt === record.salt);
  if (mine.length === 0) return 0;
  const carried = record.inline ?? (await core.catalog.readCarried(record.carried!));
  // Damaged: left as it is, for its first load to quarantine it with the reason.
  if (carried === 'damaged') return 0;
  let buf = Buffer.from(carried);
  let end = 0;
  let furthest = 0;
  for (const e of mine) {
    end = e.position + e.bytes.byteLength;
    if (end > buf.byteLength) {
      const grown = Buffer.alloc(end);
      buf.copy(grown);
      buf = grown;
    }
    e.bytes.copy(buf, e.position);
    furthest = Math.max(furthest, end);
  }
  if (furthest > end) buf = buf.subarray(0, end);
  if (buf.byteLength <= core.settings.carryStreamBytes) {
    core.setInline(record, buf);
    return mine.length;
  }
  await redoLog(
    core,
    record.id,
    [{ id: record.id, salt: record.salt, position: 0, bytes: buf }],
    record.salt,
    sync,
  );
  record.hasLog = true;
  core.setInline(record, undefined);
  return mine.length;
}

/** Writes the whole catalog as the new snapshot (atomically replacing the old one). */
export async function writeSnapshot(core: Core): Promise<void> {
  await core.catalog.loadRegion();
  await replaceFile(core.fs, core.root, CATALOG_FILE, core.catalog.encode());
}

/**
 * The journal's checkpoint hook: the log folders with files created or removed since the last checkpoint are
 * synced, then the catalog is saved, so that emptying the journal loses no lifecycle change.
 */
async function checkpointCatalog(core: Core): Promise<void> {
  if (!core.catalogDirty && core.dirtyDirs.size === 0) return;
  await core.catalog.loadRegion();
  const parts = core.catalog.encode();
  core.catalogDirty = false;
  const dirs = [...core.dirtyDirs];
  core.dirtyDirs.clear();
  try {
    for (const d of dirs) {
      await syncDir(core.fs, d).catch((err) => {
        if (errnoCode(err) !== 'ENOENT') throw err;
      });
    }
    if (core.newLogDirs) {
      await syncDir(core.fs, join(core.root, LOGS_DIR));
      core.newLogDirs = false;
    }
    await replaceFile(core.fs, core.root, CATALOG_FILE, parts);
  } catch (err) {
    for (const d of dirs) core.dirtyDirs.add(d);
    core.catalogDirty = true;
    throw err;
  }
}

/**
 * The other half of the checkpoint hook: the subscription table, when it changed, replaces the `subscriptions` file
 * atomically, so that emptying the journal loses no subscription write. Encoded before any I/O: the journal writes
 * no round while a checkpoint runs, so the table holds exactly what the journal made durable.
 */
async function checkpointSubscriptions(core: Core): Promise<void> {
  const table = core.subscriptions;
  if (!table.dirty) return;
  const parts = table.encode();
  table.dirty = false;
  try {
    await replaceFile(core.fs, core.root, SUBSCRIPTIONS_FILE, parts);
  } catch (err) {
    table.dirty = true;
    throw err;
  }
}

/** Loads every stream now (`verifyOnOpen`): each log's checksums are verified and torn tails cut. */
export async function verifyAll(
  core: Core,
  concurrency: number,
  progress: ProgressReporter,
): Promise<{ messages: number; logBytes: number }> {
  const names = [...core.catalog.keys()];
  let cursor = 0;
  let messages = 0;
  let logBytes = 0;
  const worker = async (): Promise<void> => {
    while (cursor < names.length) {
      const name = names[cursor++]!;
      try {
        const e = await core.load(name);
        messages += e.index.count;
        logBytes += e.logSize;
      } catch {
        // quarantined: listed in the report
      }
      progress.report({
        phase: 'verify',
        streamsDone: cursor,
        streamsTotal: names.length,
        bytesDone: logBytes,
        bytesTotal: 0,
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, names.length) }, worker));
  progress.report(
    {
      phase: 'verify',
      streamsDone: names.length,
      streamsTotal: names.length,
      bytesDone: logBytes,
      bytesTotal: logBytes,
    },
    true,
  );
  return { messages, logBytes };
}
