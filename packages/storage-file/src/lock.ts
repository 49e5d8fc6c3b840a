import { hostname } from 'node:os';
import { join } from 'node:path';
import { StorageError } from '@streamkeep/storage';
import { errnoCode, type FileSystem, syncDir } from './fs.js';

export const LOCK_FILE = 'LOCK';

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
 * Takes the root's lock: `LOCK` created exclusively with this process's pid and host. A lock left by a dead process
 * on this host is stale and taken over; a live holder (or another instance in this process) is refused.
 *
 * @throws StorageError `UNAVAILABLE` when another live process or instance holds the root.
 */
export async function acquireRootLock(fs: FileSystem, root: string): Promise<() => Promise<void>> {
  const path = join(root, LOCK_FILE);
  if (heldInProcess.has(root)) {
    throw new StorageError('UNAVAILABLE', `storage root ${root} is already open in this process`);
  }
  const content = Buffer.from(
    JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() }),
  );
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fs.writeFile(path, content, 'wx');
      await syncDir(fs, root);
      heldInProcess.add(root);
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        heldInProcess.delete(root);
        await fs.unlink(path).catch(() => undefined);
      };
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
    let holder: { pid?: unknown; host?: unknown } = {};
    try {
      holder = JSON.parse(Buffer.from(await fs.readFile(path)).toString('utf8'));
    } catch {
      // Unreadable or half-written lock: a crash between create and write. Treat as stale.
    }
    const pid = typeof holder.pid === 'number' ? holder.pid : undefined;
    const sameHost = holder.host === undefined || holder.host === hostname();
    if (pid !== undefined && (!sameHost || (pid !== process.pid && alive(pid)))) {
      throw new StorageError(
        'UNAVAILABLE',
        `storage root ${root} is locked by process ${pid}${sameHost ? '' : ` on ${String(holder.host)}`}`,
      );
    }
    await fs.unlink(path).catch((err) => {
      if (errnoCode(err) !== 'ENOENT') throw err;
    });
  }
  throw new StorageError('UNAVAILABLE', `could not lock storage root ${root}`);
}
