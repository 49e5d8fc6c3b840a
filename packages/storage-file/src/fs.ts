import { execFile } from 'node:child_process';
import * as fsCb from 'node:fs';
import { openSync, readFileSync, writevSync } from 'node:fs';
import * as nodeFs from 'node:fs/promises';
import { dirname } from 'node:path';
import { StorageError, type StorageErrorCode } from '@streamkeep/storage';

/**
 * An open file, as {@link FileSystem.open} returns it. Only positional I/O is used: the log is written at explicit
 * offsets, never through a shared cursor.
 */
export interface FileHandleLike {
  /** Reads up to `length` bytes at `position` into `buffer` at `offset`; resolves the number of bytes read. */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  /** Writes all of `buffers`, in order, starting at `position`. */
  writev(buffers: readonly Uint8Array[], position: number): Promise<{ bytesWritten: number }>;
  /**
   * The same write done synchronously, returning the bytes written; used for small writes, which only copy into the
   * page cache. Without it, every write goes through {@link FileHandleLike.writev}.
   */
  writevSync?(buffers: readonly Uint8Array[], position: number): number;
  /** Flushes the file's data (and the metadata needed to read it back, such as its size) to stable storage. */
  datasync(): Promise<void>;
  /** Flushes data and all metadata. Used for directories. */
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

/**
 * The file-system operations `FileStorage` performs. The default is `node:fs/promises`; a custom one is meant for
 * tests that inject failures (`ENOSPC`, `EIO`, …) and must behave like the real thing otherwise.
 */
export interface FileSystem {
  /** `flags` is one of `r`, `r+`, `wx+` (create exclusively), `w+` (create or empty). */
  open(path: string, flags: OpenFlags): Promise<FileHandleLike>;
  /**
   * The same open done synchronously (a few microseconds, no thread-pool round trip): used to open logs on the
   * write path. Without it, every open goes through {@link FileSystem.open}.
   */
  openSync?(path: string, flags: OpenFlags): FileHandleLike;
  /** Creates a hard link `to` of the file `from` (used when migrating an older layout). */
  link(from: string, to: string): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
  /** Creates or replaces a file's content (not synced). */
  writeFile(path: string, data: Uint8Array, flags?: 'w' | 'wx'): Promise<void>;
  mkdir(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Removes a directory tree; succeeds when it does not exist. */
  rmrf(path: string): Promise<void>;
  /** True when the path exists. */
  exists(path: string): Promise<boolean>;
}

export type OpenFlags = 'r' | 'r+' | 'wx+' | 'w+';

/** A `node:fs/promises` handle plus the synchronous write on its descriptor. */
class NodeFileHandle implements FileHandleLike {
  constructor(private readonly fh: nodeFs.FileHandle) {}
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    return this.fh.read(buffer, offset, length, position);
  }
  writev(buffers: readonly Uint8Array[], position: number): Promise<{ bytesWritten: number }> {
    return this.fh.writev(buffers as Uint8Array[], position);
  }
  writevSync(buffers: readonly Uint8Array[], position: number): number {
    return writevSync(this.fh.fd, buffers as Uint8Array[], position);
  }
  datasync(): Promise<void> {
    return this.fh.datasync();
  }
  sync(): Promise<void> {
    return this.fh.sync();
  }
  truncate(length: number): Promise<void> {
    return this.fh.truncate(length);
  }
  stat(): Promise<{ size: number }> {
    return this.fh.stat();
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

/**
 * `mkdir -p`, one component at a time. Node's own recursive `mkdir` retries forever where a parent exists but refuses
 * children with `ENOENT` (procfs, e.g. a data directory under `/proc/x`: nodejs/node#27198), spinning at 100 % CPU;
 * here every component is tried once and the error is thrown.
 */
async function makeDirectory(path: string): Promise<void> {
  try {
    await nodeFs.mkdir(path);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EEXIST') {
      if ((await nodeFs.stat(path)).isDirectory()) return;
      throw err;
    }
    const parent = dirname(path);
    if (code !== 'ENOENT' || parent === path) throw err;
    await makeDirectory(parent);
    try {
      await nodeFs.mkdir(path);
    } catch (again) {
      if (errnoCode(again) === 'EEXIST' && (await nodeFs.stat(path)).isDirectory()) return;
      throw again;
    }
  }
}

/** The default {@link FileSystem}: `node:fs/promises`. */
export const nodeFileSystem: FileSystem = {
  open: async (path, flags) => new NodeFileHandle(await nodeFs.open(path, flags)),
  openSync: (path, flags) => new NodeFdHandle(openSync(path, flags)),
  link: (from, to) => nodeFs.link(from, to),
  readFile: (path) => nodeFs.readFile(path),
  writeFile: (path, data, flags) => nodeFs.writeFile(path, data, { flag: flags ?? 'w' }),
  mkdir: (path) => makeDirectory(path),
  readdir: (path) => nodeFs.readdir(path),
  rename: (from, to) => nodeFs.rename(from, to),
  unlink: (path) => nodeFs.unlink(path),
  rmrf: (path) => nodeFs.rm(path, { recursive: true, force: true }),
  exists: async (path) => {
    try {
      await nodeFs.stat(path);
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return false;
      throw err;
    }
  },
};

/** A descriptor from a synchronous open (Node has no public way to wrap one in a promise-API `FileHandle`). */
class NodeFdHandle implements FileHandleLike {
  constructor(readonly fd: number) {}
  writevSync(buffers: readonly Uint8Array[], position: number): number {
    return writevSync(this.fd, buffers as Uint8Array[], position);
  }
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    return new Promise((ok, fail) =>
      fsCb.read(this.fd, buffer, offset, length, position, (err, bytesRead) =>
        err ? fail(err) : ok({ bytesRead }),
      ),
    );
  }
  writev(buffers: readonly Uint8Array[], position: number): Promise<{ bytesWritten: number }> {
    return new Promise((ok, fail) =>
      fsCb.writev(this.fd, buffers as Uint8Array[], position, (err, bytesWritten) =>
        err ? fail(err) : ok({ bytesWritten }),
      ),
    );
  }
  datasync(): Promise<void> {
    return new Promise((ok, fail) => fsCb.fdatasync(this.fd, (err) => (err ? fail(err) : ok())));
  }
  sync(): Promise<void> {
    return new Promise((ok, fail) => fsCb.fsync(this.fd, (err) => (err ? fail(err) : ok())));
  }
  truncate(length: number): Promise<void> {
    return new Promise((ok, fail) => fsCb.ftruncate(this.fd, length, (err) => (err ? fail(err) : ok())));
  }
  stat(): Promise<{ size: number }> {
    return new Promise((ok, fail) => fsCb.fstat(this.fd, (err, st) => (err ? fail(err) : ok(st))));
  }
  close(): Promise<void> {
    return new Promise((ok, fail) => fsCb.close(this.fd, (err) => (err ? fail(err) : ok())));
  }
}

export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string'
    ? (err as { code: string }).code
    : undefined;
}

const INSUFFICIENT = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);
const TRANSIENT = new Set([
  'EINTR',
  'EAGAIN',
  'EWOULDBLOCK',
  'ETIMEDOUT',
  'EBUSY',
  'EMFILE',
  'ENFILE',
  'ENOMEM',
]);

/** Maps an I/O failure to the contract's backend-health codes; `StorageError`s pass through unchanged. */
export function classifyIoError(err: unknown, what: string): StorageError {
  if (err instanceof StorageError) return err;
  const code = errnoCode(err);
  let storageCode: StorageErrorCode = 'INTERNAL';
  if (code !== undefined && INSUFFICIENT.has(code)) storageCode = 'INSUFFICIENT_STORAGE';
  else if (code !== undefined && TRANSIENT.has(code)) storageCode = 'UNAVAILABLE';
  return new StorageError(storageCode, `${what} failed${code === undefined ? '' : ` (${code})`}`, {
    cause: err,
  });
}

/** Opens a directory and fsyncs it, so that entries created, renamed or removed in it survive a crash. */
export async function syncDir(fs: FileSystem, path: string): Promise<void> {
  const fh = await fs.open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * `syncfs` of the file system holding `path`, through coreutils' `sync --file-system` (Node has no binding): one
 * call that makes every file written there durable, instead of one `fdatasync` per file (about 100 ms against 1.2 s
 * for 5,000 small logs here). Rejects when the command is missing or fails. Linux reports write-back errors through
 * `syncfs` since 5.8.
 */
export function syncFileSystem(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('sync', ['--file-system', path], { timeout: 600_000 }, (err) => (err ? reject(err) : resolve()));
  });
}

/** A quarter of the process's open-file limit, between 256 and 16384; 1024 where the limit cannot be read. */
export function defaultMaxOpenFiles(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m !== null) return Math.min(16384, Math.max(256, Math.floor(Number(m[1]) / 4)));
  } catch {
    // not Linux
  }
  return 1024;
}

/**
 * `bytes` as a Buffer without copying them (`Buffer.from` of a Uint8Array copies: 100 ms for a 10 MB catalog).
 */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
