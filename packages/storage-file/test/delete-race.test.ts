import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { isStorageError } from '@streamkeep/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { type FileHandleLike, FileStorage, type FileSystem, nodeFileSystem } from '../src/index.js';
import { dec, enc } from './helpers.js';

/** A resolvable promise. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/**
 * The real file system, except that a move into trash/ can be held open after it happened (the window between a
 * delete's rename and the moment it is marked removed), and failed opens of a log are reported.
 */
class GatedFs implements FileSystem {
  hold: { moved: ReturnType<typeof gate>; release: ReturnType<typeof gate> } | undefined;
  logOpenFailed = gate();
  failDirSync = false;

  async open(path: string, flags: 'r' | 'r+' | 'wx+'): Promise<FileHandleLike> {
    let fh: FileHandleLike;
    try {
      fh = await nodeFileSystem.open(path, flags);
    } catch (err) {
      if (path.endsWith(`${sep}log`)) this.logOpenFailed.open();
      throw err;
    }
    if (flags === 'r' && this.failDirSync && path.endsWith(`${sep}streams`)) {
      this.failDirSync = false;
      return {
        ...fh,
        read: (b, o, l, p) => fh.read(b, o, l, p),
        writev: (b, p) => fh.writev(b, p),
        datasync: () => fh.datasync(),
        truncate: (n) => fh.truncate(n),
        stat: () => fh.stat(),
        close: () => fh.close(),
        sync: async () => {
          throw Object.assign(new Error('injected EIO'), { code: 'EIO' });
        },
      };
    }
    return fh;
  }
  readFile = nodeFileSystem.readFile;
  writeFile = nodeFileSystem.writeFile;
  mkdir = nodeFileSystem.mkdir;
  readdir = nodeFileSystem.readdir;
  async rename(from: string, to: string): Promise<void> {
    await nodeFileSystem.rename(from, to);
    const hold = this.hold;
    if (hold !== undefined && to.includes(`${sep}trash${sep}`)) {
      this.hold = undefined;
      hold.moved.open();
      await hold.release.promise;
    }
  }
  unlink = nodeFileSystem.unlink;
  rmrf = nodeFileSystem.rmrf;
  exists = nodeFileSystem.exists;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    if (isStorageError(err)) return err.code;
    throw err;
  }
}

let dir: string;
let storage: FileStorage | undefined;
afterEach(async () => {
  await storage?.close();
  storage = undefined;
  await rm(dir, { recursive: true, force: true, maxRetries: 5 });
});

async function setup(): Promise<{ fs: GatedFs; s: FileStorage }> {
  dir = await mkdtemp(join(tmpdir(), 'sk-file-race-'));
  const fs = new GatedFs();
  storage = await FileStorage.open({ rootDir: dir, fileSystem: fs, syncOnAppend: false });
  return { fs, s: storage };
}

describe('a read racing a delete', () => {
  it('answers NOT_FOUND, not INTERNAL, when it opens the log after the directory was moved', async () => {
    const { fs, s } = await setup();
    // Created with its initial message: the log has never been opened through the handle pool.
    await s.createStream('s', { contentType: 'text/plain', messages: [enc('a')] });
    const hold = { moved: gate(), release: gate() };
    fs.hold = hold;
    const deleted = s.delete('s');
    await hold.moved.promise;
    // The gap: the directory is in trash/, the delete has not finished.
    expect((await s.head('s')).name).toBe('s');
    const read = s.read('s', '-1');
    const outcome = codeOf(read);
    await fs.logOpenFailed.promise;
    hold.release.open();
    expect(await deleted).toEqual({ softDeleted: false });
    expect(await outcome).toBe('NOT_FOUND');
    expect(await codeOf(s.read('s', '-1'))).toBe('NOT_FOUND');
    expect(await codeOf(s.head('s'))).toBe('NOT_FOUND');
  });

  it('serves the data when the log was already open before the move', async () => {
    const { fs, s } = await setup();
    await s.createStream('s', { contentType: 'text/plain' });
    await s.append('s', { messages: [enc('a'), enc('b')], contentType: 'text/plain' });
    const hold = { moved: gate(), release: gate() };
    fs.hold = hold;
    const deleted = s.delete('s');
    await hold.moved.promise;
    const read = await s.read('s', '-1');
    expect(read.messages.map(dec)).toEqual(['a', 'b']);
    hold.release.open();
    await deleted;
    expect(await codeOf(s.read('s', '-1'))).toBe('NOT_FOUND');
  });

  it('a delete whose directory sync fails after the move is reported, and the stream is gone', async () => {
    const { fs, s } = await setup();
    await s.createStream('s', { contentType: 'text/plain', messages: [enc('abc')] });
    fs.failDirSync = true;
    expect(await codeOf(s.delete('s'))).toBe('INTERNAL');
    expect(await codeOf(s.read('s', '-1'))).toBe('NOT_FOUND');
    expect(s.totalBytes()).toBe(0);
    await s.createStream('s', { contentType: 'text/plain', messages: [enc('new')] });
    expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['new']);
  });
});
