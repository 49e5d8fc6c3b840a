import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** A data directory that cannot be used; `code` is the errno that said so. */
export class DataDirError extends Error {
  override readonly name = 'DataDirError';
  constructor(
    readonly dir: string,
    readonly code: string,
    message: string,
  ) {
    super(`data directory ${JSON.stringify(dir)}: ${message} (${code})`);
  }
}

/**
 * Makes sure `dir` exists as a directory before the file backend opens it, creating missing parents one by one.
 * Node's own `mkdir(…, { recursive: true })` never returns on a path a file system refuses with ENOENT although its
 * parent exists (`/proc/x`): it retries forever at full CPU. Walking the path here fails fast on such a path instead.
 *
 * @throws DataDirError when a part of the path is not a directory or cannot be created.
 */
export async function ensureDataDir(path: string): Promise<void> {
  const dir = resolve(path);
  const missing: string[] = [];
  for (let p = dir; ; p = dirname(p)) {
    try {
      const s = await stat(p);
      if (!s.isDirectory()) throw new DataDirError(path, 'ENOTDIR', `${p} is not a directory`);
      break;
    } catch (err) {
      if (err instanceof DataDirError) throw err;
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      if (code === 'ENOTDIR') throw new DataDirError(path, code, `a part of ${p} is not a directory`);
      if (code !== 'ENOENT') throw new DataDirError(path, code, `cannot look at ${p}`);
      missing.push(p);
      if (dirname(p) === p) break;
    }
  }
  for (const p of missing.reverse()) {
    try {
      await mkdir(p);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      if (code === 'EEXIST') continue;
      const why =
        code === 'ENOENT'
          ? 'the file system there cannot hold directories'
          : code === 'EACCES' || code === 'EPERM'
            ? 'permission denied'
            : code === 'EROFS'
              ? 'the file system is read-only'
              : 'cannot be created';
      throw new DataDirError(path, code, `${p}: ${why}`);
    }
  }
}
