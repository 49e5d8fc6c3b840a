import { join } from 'node:path';
import { CatalogRecord, streamId } from './catalog.js';
import type { Core, QuarantinedStream } from './core.js';
import { decodeMeta } from './format.js';
import { asBuffer, errnoCode, syncDir } from './fs.js';
import { type JournalEntry, logSalt, parseJournal, replayInto } from './journal.js';
import {
  CATALOG_FILE,
  FORMAT_FILE,
  FORMAT_TEXT,
  JOURNAL_FILE,
  LOGS_DIR,
  logDirOf,
  logPathOf,
  replaceFile,
} from './layout.js';
import type { ProgressReporter } from './progress.js';

const STREAM_ID_RE = /^[0-9a-f]{64}$/;

/**
 * Converts a format-1 root (`streams/<sha256>/{meta.json, log}`) in place, crash-safely:
 *
 * 1. the old journal is re-applied to the old logs (as format 1 did at every open) and the logs synced;
 * 2. every log gets a second name (a hard link) in `logs/`, and its meta.json becomes a catalog record;
 * 3. the catalog snapshot is written and the `logs/` folders synced;
 * 4. `FORMAT` switches to 2 (atomic rename): the commit point;
 * 5. the old folders are removed (again at the next open, if a crash interrupts this).
 *
 * A crash before step 4 leaves a format-1 root that the next open migrates from the start. The logs themselves are
 * not rewritten: format 2 keeps format 1's log encoding. A stream whose meta.json cannot be read is moved to
 * `quarantine/` and reported.
 */
export async function migrateFormat1(core: Core, progress: ProgressReporter): Promise<QuarantinedStream[]> {
  const { fs, root } = core;
  const streamsDir = join(root, 'streams');
  await fs.mkdir(streamsDir);
  const ids = (await fs.readdir(streamsDir)).filter((n) => STREAM_ID_RE.test(n));
  const journalPath = join(root, JOURNAL_FILE);
  if (await fs.exists(journalPath)) {
    const parsed = parseJournal(asBuffer(await fs.readFile(journalPath)));
    for (const [id, entries] of parsed.logs) await redoFormat1(core, join(streamsDir, id, 'log'), entries);
  }
  await fs.rmrf(join(root, LOGS_DIR));
  await fs.mkdir(join(root, LOGS_DIR));
  for (let i = 0; i < 256; i++) await fs.mkdir(join(root, LOGS_DIR, i.toString(16).padStart(2, '0')));
  const quarantined: QuarantinedStream[] = [];
  const records: CatalogRecord[] = [];
  let done = 0;
  let bytesDone = 0;
  for (const id of ids) {
    const dir = join(streamsDir, id);
    let meta: ReturnType<typeof decodeMeta>;
    try {
      meta = decodeMeta(await fs.readFile(join(dir, 'meta.json')));
      if (streamId(meta.name) !== id) throw new Error('meta.json names a stream that does not belong here');
    } catch (err) {
      if (errnoCode(err) !== undefined && errnoCode(err) !== 'ENOENT') throw err;
      const reason = errnoCode(err) === 'ENOENT' ? 'meta.json is missing' : (err as Error).message;
      const kept = join(root, 'quarantine', id);
      await fs.mkdir(join(root, 'quarantine'));
      await fs.rmrf(kept);
      await fs.rename(dir, kept);
      quarantined.push({ dir: kept, name: undefined, reason });
      continue;
    }
    let salt = 0;
    let hasFile = true;
    try {
      const fh = await fs.open(join(dir, 'log'), 'r');
      try {
        bytesDone += (await fh.stat()).size;
        salt = (await logSalt(fh)) ?? 0;
      } finally {
        await fh.close();
      }
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      hasFile = false;
    }
    const record = new CatalogRecord(
      meta.name,
      { ...meta.config },
      meta.createdAt,
      meta.fork,
      meta.tombstone,
      salt,
      true,
    );
    if (hasFile) await fs.link(join(dir, 'log'), logPathOf(root, id));
    record.summaryExact = false;
    // The byte count is learnt when the stream is first loaded; a format-1 meta.json does not hold it.
    records.push(record);
    progress.report({
      phase: 'migrate',
      streamsDone: ++done,
      streamsTotal: ids.length,
      bytesDone,
      bytesTotal: 0,
    });
  }
  core.catalog.clear();
  for (const r of records) core.catalog.set(r.name, r);
  for (let i = 0; i < 256; i++) await syncDir(fs, logDirOf(root, i.toString(16).padStart(2, '0')));
  await syncDir(fs, join(root, LOGS_DIR));
  await replaceFile(fs, root, CATALOG_FILE, core.catalog.encode());
  await replaceFile(fs, root, FORMAT_FILE, [Buffer.from(FORMAT_TEXT)]);
  core.catalog.clear();
  // The old journal was applied to the logs: the format-2 open must not apply it again.
  await fs.unlink(journalPath).catch(() => undefined);
  await syncDir(fs, root);
  progress.report(
    { phase: 'migrate', streamsDone: done, streamsTotal: ids.length, bytesDone, bytesTotal: bytesDone },
    true,
  );
  return quarantined;
}

async function redoFormat1(core: Core, path: string, entries: readonly JournalEntry[]): Promise<void> {
  let fh: Awaited<ReturnType<typeof core.fs.open>>;
  try {
    fh = await core.fs.open(path, 'r+');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  try {
    const salt = await logSalt(fh);
    const mine = entries.filter((e) => e.salt === salt);
    if (mine.length > 0) await replayInto(fh, mine);
  } finally {
    await fh.close();
  }
}
