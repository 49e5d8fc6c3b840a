import { isStorageError } from '@streamkeep/storage';
import { DataDirError } from './data-dir.js';
import type { ServerConfig } from './settings/table.js';

/** What an errno means for a data directory, in words. */
const FILE_SYSTEM_CAUSES: Readonly<Record<string, string>> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOTDIR: 'a part of the path is not a directory',
  ENOENT: 'a part of the path does not exist',
  EEXIST: 'a file is in the way',
  ENOSPC: 'the device is full',
  EINVAL: 'the file system cannot hold a data directory there',
  ENAMETOOLONG: 'the path is too long',
};

/** The errno code of `err` or of any error in its `cause` chain. */
function errnoOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  }
  return undefined;
}

/**
 * One line for an operator about why the server could not start or open its storage: which data directory or
 * database, and the cause in words; never a stack. Messages of the errors themselves are kept, since backends
 * word them for operators; the PostgreSQL URL is never repeated (it may hold a password).
 */
export function describeStartupFailure(err: unknown, config: ServerConfig): string {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof DataDirError) return message;
  const errno = errnoOf(err);
  if (config.storage === 'file' && errno !== undefined && FILE_SYSTEM_CAUSES[errno] !== undefined) {
    return `data directory ${JSON.stringify(config.dataDir)}: ${FILE_SYSTEM_CAUSES[errno]} (${errno}: ${message})`;
  }
  if (
    config.storage === 'postgres' &&
    config.postgresUrl !== undefined &&
    !isStorageError(err, 'CORRUPTED')
  ) {
    const url = new URL(config.postgresUrl);
    const where = `PostgreSQL at ${url.host}${url.pathname}`;
    if (errno === 'ECONNREFUSED') return `${where}: connection refused`;
    if (errno === 'ENOTFOUND' || errno === 'EAI_AGAIN') return `${where}: unknown host`;
    return `${where}: ${message.replaceAll(config.postgresUrl, '<url>')}`;
  }
  return message;
}
