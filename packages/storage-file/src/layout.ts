import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { FileSystem } from './fs.js';
import { syncDir } from './fs.js';

/**
 * The on-disk layout of a storage root (format 2):
 *
 * ```
 * <root>/LOCK                 the process holding the root
 * <root>/FORMAT               "streamkeep-file-storage 2"
 * <root>/catalog              snapshot of the stream table, written at checkpoints (see catalog.ts)
 * <root>/journal              commit journal: group writes, catalog changes and subscription writes since the
 *                             snapshots (see journal.ts)
 * <root>/subscriptions        snapshot of the subscription records, written at checkpoints (subscription-table.ts);
 *                             absent until the first checkpoint with a subscription
 * <root>/logs/<ab>/<cdef…>    one log per stream, named by the SHA-256 of the stream's name, split after two hex
 *                             digits so that no directory holds more than a few hundred entries per 100k streams
 * <root>/tmp/                 scratch space, emptied at open
 * ```
 *
 * Format 1 (`streams/<sha256>/{meta.json, log}`, one directory per stream) is migrated at open (migrate.ts).
 */

export const FORMAT_FILE = 'FORMAT';
export const FORMAT_TEXT = 'streamkeep-file-storage 2\n';
export const FORMAT_1_TEXT = 'streamkeep-file-storage 1\n';
export const CATALOG_FILE = 'catalog';
export const JOURNAL_FILE = 'journal';
export const SUBSCRIPTIONS_FILE = 'subscriptions';
export const LOGS_DIR = 'logs';
export const TMP_DIR = 'tmp';
/**
 * Present while the root is closed after a clean shutdown (written after the final checkpoint, removed at open before
 * anything is written): the snapshot's stream summaries are then exact.
 */
export const CLEAN_FILE = 'CLEAN';

/** The fan-out directory of a stream id (first two hex digits). */
export function logDirOf(root: string, id: string): string {
  return join(root, LOGS_DIR, id.slice(0, 2));
}

/** The log file of a stream id. */
export function logPathOf(root: string, id: string): string {
  return join(root, LOGS_DIR, id.slice(0, 2), id.slice(2));
}

/** Creates `path` exclusively with `parts` and syncs it. */
export async function writeSynced(fs: FileSystem, path: string, parts: Uint8Array[]): Promise<void> {
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
export async function replaceFile(
  fs: FileSystem,
  dir: string,
  file: string,
  parts: Uint8Array[],
): Promise<void> {
  const tmp = join(dir, `${file}.${randomUUID()}.tmp`);
  try {
    await writeSynced(fs, tmp, parts);
    await fs.rename(tmp, join(dir, file));
  } catch (err) {
    await fs.unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDir(fs, dir);
}

export function skipBytes(parts: readonly Uint8Array[], n: number): Uint8Array[] {
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
