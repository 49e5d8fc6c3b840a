import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { codeOf } from '@streamkeep/storage-conformance/helpers';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type FileHandleLike,
  FileStorage,
  type FileSystem,
  nodeFileSystem,
  type OpenFlags,
} from '../src/index.js';
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
 * The real file system, except that an unlink can be held open after it happened (the window between a delete's
 * durable journal entry and the end of the call), an open of a log can be held before it happens, failed opens of a
 * log are reported, and the journal's next sync can be made to fail.
 */
class GatedFs implements FileSystem {
  hold: { moved: ReturnType<typeof gate>; release: ReturnType<typeof gate> } | undefined;
  holdOpen: { entered: ReturnType<typeof gate>; release: ReturnType<typeof gate> } | undefined;
  logOpenFailed = gate();
  failJournalSync = false;

  async open(path: string, flags: OpenFlags): Promise<FileHandleLike> {
    const isLog = path.includes(`${sep}logs${sep}`);
    const held = this.holdOpen;
    if (isLog && held !== undefined && flags === 'r+') {
      this.holdOpen = undefined;
      held.entered.open();
      await held.release.promise;
    }
    let fh: FileHandleLike;
    try {
      fh = await nodeFileSystem.open(path, flags);
    } catch (err) {
      if (isLog) this.logOpenFailed.open();
      throw err;
    }
    if (path.endsWith(`${sep}journal`)) {
      return {
        read: (b, o, l, p) => fh.read(b, o, l, p),
        writev: (b, p) => fh.writev(b, p),
        truncate: (n) => fh.truncate(n),
        stat: () => fh.stat(),
        close: () => fh.close(),
        sync: () => fh.sync(),
        datasync: async () => {
          if (this.failJournalSync) {
            this.failJournalSync = false;
            throw Object.assign(new Error('injected EIO'), { code: 'EIO' });
          }
          return fh.datasync();
        },
      };
    }
    return fh;
  }
  readFile = nodeFileSystem.readFile;
  writeFile = nodeFileSystem.writeFile;
  mkdir = nodeFileSystem.mkdir;
  readdir = nodeFileSystem.readdir;
  rename = nodeFileSystem.rename;
  async unlink(path: string): Promise<void> {
    await nodeFileSystem.unlink(path);
    const hold = this.hold;
    if (hold !== undefined && path.includes(`${sep}logs${sep}`)) {
      this.hold = undefined;
      hold.moved.open();
      await hold.release.promise;
    }
  }
  link = nodeFileSystem.link;
  rmrf = nodeFileSystem.rmrf;
  exists = nodeFileSystem.exists;
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
  // One open log at a time, so that a stream's handle is closed as soon as another stream is used.
  storage = await FileStorage.open({ rootDir: dir, fileSystem: fs, syncOnAppend: false, maxOpenFiles: 1 });
  return { fs, s: storage };
}

describe('a read racing a delete', () => {
  it('answers NOT_FOUND, not INTERNAL, when it opens the log after the delete removed it', async () => {
    const { fs, s } = await setup();
    await s.createStream('s', { contentType: 'text/plain', messages: [enc('a')] });
    // Another stream takes the only handle: the next read of "s" opens its log.
    await s.createStream('t', { contentType: 'text/plain', messages: [enc('b')] });
    const held = { entered: gate(), release: gate() };
    fs.holdOpen = held;
    const outcome = codeOf(s.read('s', '-1'));
    await held.entered.promise;
    // The read has the stream and waits to open its log; meanwhile the delete completes.
    expect(await s.delete('s')).toEqual({ softDeleted: false });
    held.release.open();
    await fs.logOpenFailed.promise;
    expect(await outcome).toBe('NOT_FOUND');
    expect(await codeOf(s.read('s', '-1'))).toBe('NOT_FOUND');
    expect(await codeOf(s.head('s'))).toBe('NOT_FOUND');
  });

  it('serves the data when the log was already open before it was removed', async () => {
    const { fs, s } = await setup();
    await s.createStream('s', { contentType: 'text/plain' });
    await s.append('s', { messages: [enc('a'), enc('b')], contentType: 'text/plain' });
    const hold = { moved: gate(), release: gate() };
    fs.hold = hold;
    const deleted = s.delete('s');
    await hold.moved.promise;
    // The delete is durable (the stream is gone for new requests), its call not finished.
    expect(await codeOf(s.head('s'))).toBe('NOT_FOUND');
    hold.release.open();
    await deleted;
    expect(await codeOf(s.read('s', '-1'))).toBe('NOT_FOUND');
  });

  it('a delete whose journal sync fails is reported, and the stream stays whole', async () => {
    const { fs, s } = await setup();
    await s.createStream('s', { contentType: 'text/plain', messages: [enc('abc')] });
    fs.failJournalSync = true;
    expect(await codeOf(s.delete('s'))).toBe('INTERNAL');
    expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['abc']);
    expect(s.totalBytes()).toBe(3);
    expect(await s.delete('s')).toEqual({ softDeleted: false });
    expect(await codeOf(s.read('s', '-1'))).toBe('NOT_FOUND');
    expect(s.totalBytes()).toBe(0);
    await s.createStream('s', { contentType: 'text/plain', messages: [enc('new')] });
    expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['new']);
  });
});

describe('a tombstone racing the removal of its last fork', () => {
  // Found by the conformance kit: the fork's removal looked for a tombstone to cascade to before the source's
  // tombstone was durable, and the source stayed a tombstone nobody forks (GONE instead of NOT_FOUND).
  it('deleting a source and its only fork together leaves neither', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sk-file-race-'));
    const s = await FileStorage.open({ rootDir: dir, syncOnAppend: true });
    try {
      for (let i = 0; i < 30; i++) {
        await s.createStream(`src${i}`, { contentType: 'text/plain', messages: [enc('x')] });
        await s.createFork(`fork${i}`, { source: `src${i}` });
        await Promise.all([s.delete(`src${i}`), s.delete(`fork${i}`)]);
        expect(await codeOf(s.head(`src${i}`))).toBe('NOT_FOUND');
        expect(await codeOf(s.head(`fork${i}`))).toBe('NOT_FOUND');
      }
    } finally {
      await s.close();
      await rm(dir, { recursive: true, force: true, maxRetries: 5 });
    }
  });

  it('a source and its fork expiring together are both removed by the clean-up', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sk-file-race-'));
    let t = 1_000_000;
    const clock = { now: () => t };
    let s = await FileStorage.open({ rootDir: dir, clock, syncOnAppend: false });
    try {
      for (let i = 0; i < 30; i++) {
        await s.createStream(`src${i}`, { contentType: 'text/plain', ttlSeconds: 1, messages: [enc('x')] });
        await s.createFork(`fork${i}`, { source: `src${i}` });
      }
      // Opened again: a source must be loaded from its log (I/O) to be tombstoned, its fork (no log) at once.
      await s.close();
      s = await FileStorage.open({ rootDir: dir, clock, syncOnAppend: false, inlineWriteBytes: 0 });
      t += 2_500;
      await s.cleanupExpiredStreams();
      for (let i = 0; i < 30; i++) {
        expect(await codeOf(s.head(`src${i}`))).toBe('NOT_FOUND');
        expect(await codeOf(s.head(`fork${i}`))).toBe('NOT_FOUND');
      }
    } finally {
      await s.close();
      await rm(dir, { recursive: true, force: true, maxRetries: 5 });
    }
  });
});
