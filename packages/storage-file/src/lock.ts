import * as nodeFs from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { StorageError } from '@streamkeep/storage';
import properLockfile from 'proper-lockfile';
import { errnoCode, type FileSystem, syncDir } from './fs.js';

export const LOCK_FILE = 'LOCK';

/** How long a holder may go without refreshing its lock before another process may take the root over. */
export const DEFAULT_LOCK_STALE_MS = 10_000;

export interface RootLockOptions {
  /**
   * A lock whose file was not refreshed for this long is stale: its holder is gone (or has been stuck for that long)
   * and another process may take the root over. The holder refreshes it every `staleMs / 2`. proper-lockfile's
   * minimum is 2,000 ms. @default 10_000
   */
  readonly staleMs?: number | undefined;
  /**
   * Called when this process finds that it lost the lock while holding it: another process replaced the lock file
   * after this one failed to refresh it for `staleMs` (a frozen process, a clock jump), or the file was removed. The
   * default throws, which ends the process: two writers on one root would corrupt it. When the root itself is gone,
   * the default only warns: there is nothing left to protect.
   */
  readonly onCompromised?: ((err: StorageError) => void) | undefined;
}

/** What `LOCK` holds: written by every release; `heartbeat` is absent in the files of releases before it. */
interface Holder {
  pid?: unknown;
  host?: unknown;
  since?: unknown;
  heartbeat?: unknown;
}

/** Roots locked by this process; a pid check cannot tell two instances of the same process apart. */
const heldInProcess = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

/**
 * proper-lockfile takes a lock by creating a directory (`mkdir`) and removes it with `rmdir`. Here the lock is the
 * `LOCK` file itself, created exclusively with the holder's identity in it, so that it stays the file earlier
 * releases read and write: a root can still be opened by (and refuse) a process of either kind. The heartbeat — the
 * file's mtime, refreshed while held — and the staleness rules are the library's.
 */
function lockFileSystem(content: () => Buffer) {
  return {
    ...nodeFs,
    mkdir: (path: string, callback: (err: NodeJS.ErrnoException | null) => void) =>
      nodeFs.writeFile(path, content(), { flag: 'wx' }, callback),
    rmdir: (path: string, callback: (err: NodeJS.ErrnoException | null) => void) =>
      nodeFs.unlink(path, callback),
    rmdirSync: (path: string) => nodeFs.unlinkSync(path),
  };
}

async function readHolder(
  fs: FileSystem,
  path: string,
): Promise<{ holder: Holder; stat: nodeFs.Stats } | undefined> {
  try {
    const stat = await nodeFs.promises.stat(path);
    let holder: unknown;
    try {
      holder = JSON.parse(Buffer.from(await fs.readFile(path)).toString('utf8'));
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      // Empty or torn: a holder that died between creating the file and writing it, or one writing it right now.
      // Only the heartbeat can tell.
    }
    return { holder: typeof holder === 'object' && holder !== null ? (holder as Holder) : {}, stat };
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Removes the lock file of a holder known to be dead, unless it changed since it was read: another process that
 * found the same dead holder may have replaced it with its own lock in the meantime, which must stay. (The window
 * left, between this check and the unlink, is a few microseconds wide and needs two processes taking over the same
 * dead holder's root at once.)
 */
async function removeDead(fs: FileSystem, path: string, seen: nodeFs.Stats): Promise<void> {
  const now = await nodeFs.promises.stat(path).catch(() => undefined);
  if (now === undefined || now.ino !== seen.ino || now.mtimeMs !== seen.mtimeMs) return;
  await fs.unlink(path).catch((err) => {
    if (errnoCode(err) !== 'ENOENT') throw err;
  });
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/**
 * Takes the root's lock: the `LOCK` file, created exclusively with this process's pid and host and kept fresh
 * (its mtime refreshed every `staleMs / 2`, by proper-lockfile) while the root is open.
 *
 * - A holder on this host is judged by its pid: a dead one is taken over at once, a live one is refused at once while
 *   its lock is fresh (a stale lock with a live pid: the pid was reused, and the lock is taken over).
 * - A holder on another host (a container restarted under a new hostname, a host sharing the volume) or an unknown
 *   one is judged by the heartbeat: its lock is taken over once it went `staleMs` without a refresh, and this call
 *   waits that long (polling) before it gives up on a holder that keeps it fresh.
 * - A lock file written by an earlier release (no heartbeat) from another host is therefore taken over once it is
 *   `staleMs` old: those releases never refreshed it, so its age says nothing about its holder.
 *
 * @throws StorageError `UNAVAILABLE` when another live process or instance holds the root.
 */
export async function acquireRootLock(
  fs: FileSystem,
  root: string,
  options: RootLockOptions = {},
): Promise<() => Promise<void>> {
  const absRoot = resolve(root);
  const path = join(absRoot, LOCK_FILE);
  if (heldInProcess.has(absRoot)) {
    throw new StorageError('UNAVAILABLE', `storage root ${root} is already open in this process`);
  }
  const staleMs = Math.max(options.staleMs ?? DEFAULT_LOCK_STALE_MS, 2000);
  const host = hostname();
  const content = () =>
    Buffer.from(
      JSON.stringify({ pid: process.pid, host, since: new Date().toISOString(), heartbeat: staleMs / 2 }),
    );
  const lockFs = lockFileSystem(content);
  const onCompromised = options.onCompromised ?? defaultOnCompromised(absRoot);
  // A fresh lock of a live holder elsewhere stays fresh; one of a dead holder is stale after at most `staleMs`.
  const deadline = Date.now() + staleMs + 2000;
  let holderNote = '';
  for (;;) {
    const seen = await readHolder(fs, path);
    if (seen !== undefined) {
      const { holder, stat } = seen;
      const pid = typeof holder.pid === 'number' ? holder.pid : undefined;
      // Files of the first releases carry no host: they were all on this one.
      const sameHost = holder.host === undefined || holder.host === host;
      holderNote =
        pid === undefined ? '' : ` by process ${pid}${sameHost ? '' : ` on ${String(holder.host)}`}`;
      if (pid !== undefined && sameHost) {
        if (pid !== process.pid && alive(pid)) {
          // A live pid is the holder while its lock is fresh. Once the lock is stale, the pid belongs to another
          // process now (a container restarted under the same hostname reuses low pids), and the library takes the
          // lock over below. Earlier releases never refreshed theirs: for them the pid alone decides.
          if (holder.heartbeat === undefined || stat.mtimeMs >= Date.now() - staleMs) {
            throw new StorageError('UNAVAILABLE', `storage root ${root} is locked${holderNote}`);
          }
        } else {
          // Dead, or this process's own pid in an earlier life (pid 1 of a restarted container).
          await removeDead(fs, path, stat);
        }
      }
    }
    try {
      let compromised = false;
      const release = await properLockfile.lock(absRoot, {
        lockfilePath: path,
        realpath: false,
        stale: staleMs,
        fs: lockFs,
        onCompromised: (err) => {
          compromised = true;
          heldInProcess.delete(absRoot);
          onCompromised(
            new StorageError('UNAVAILABLE', `lost the lock on storage root ${root}: ${err.message}`, {
              cause: err,
            }),
          );
        },
      });
      heldInProcess.add(absRoot);
      let released: Promise<void> | undefined;
      const releaseOnce = () => {
        released ??= (async () => {
          if (compromised) return; // the file is someone else's now
          heldInProcess.delete(absRoot);
          await release().catch((err) => {
            if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ERELEASED') throw err;
          });
        })();
        return released;
      };
      try {
        await syncDir(fs, absRoot);
      } catch (err) {
        await releaseOnce().catch(() => undefined);
        throw err;
      }
      return releaseOnce;
    } catch (err) {
      if (errnoCode(err) !== 'ELOCKED') throw err;
    }
    if (Date.now() >= deadline) {
      throw new StorageError(
        'UNAVAILABLE',
        `storage root ${root} is locked${holderNote}, and the lock is kept fresh: its holder is alive`,
      );
    }
    await sleep(Math.min(500, staleMs / 4));
  }
}

function defaultOnCompromised(root: string): (err: StorageError) => void {
  return (err) => {
    if (!nodeFs.existsSync(root)) {
      process.emitWarning(err.message, { code: 'STREAMKEEP_LOCK_LOST' });
      return;
    }
    throw err;
  };
}
