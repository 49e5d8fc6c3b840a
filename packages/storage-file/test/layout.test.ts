import { readdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, sep } from 'node:path';
import { isStorageError } from '@streamkeep/storage';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type FileHandleLike,
  FileStorage,
  type FileSystem,
  nodeFileSystem,
  type OpenFlags,
} from '../src/index.js';
import { MessageIndex } from '../src/message-index.js';
import { dec, enc, type Fixture, fixture } from './helpers.js';

let f: Fixture | undefined;
afterEach(async () => {
  await f?.cleanup();
  f = undefined;
});

describe('names on disk', () => {
  it('maps any name to a fixed-length, safe directory and never decodes it', async () => {
    f = await fixture();
    const names = [
      '../../etc/passwd',
      '/absolute',
      'a/b/c/d',
      'back\\slash',
      '.',
      '..',
      'nul\u0000byte',
      '😀 ünïcödé 名前',
      'x'.repeat(10_000),
      'CON',
    ];
    for (const [i, name] of names.entries()) {
      await f.storage.createStream(name, { contentType: 'text/plain', messages: [enc(String(i))] });
    }
    const files: string[] = [];
    for (const d of await readdir(join(f.dir, 'logs'))) {
      expect(d).toMatch(/^[0-9a-f]{2}$/);
      for (const file of await readdir(join(f.dir, 'logs', d))) files.push(d + file);
    }
    expect(files).toHaveLength(names.length);
    for (const id of files) expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(await readdir(f.dir)).toEqual(expect.arrayContaining(['logs', 'journal', 'LOCK', 'FORMAT']));
    const s = await f.reopen();
    for (const [i, name] of names.entries()) {
      expect((await s.read(name, '-1')).messages.map(dec)).toEqual([String(i)]);
    }
  });
});

describe('root lock', () => {
  it('refuses a root held by a live process and takes over a stale lock', async () => {
    f = await fixture();
    await f.storage.close();
    // A live holder: the parent of this process.
    await writeFile(join(f.dir, 'LOCK'), JSON.stringify({ pid: process.ppid, host: hostname() }));
    const err = await FileStorage.open({ rootDir: f.dir }).catch((e: unknown) => e);
    expect(isStorageError(err, 'UNAVAILABLE')).toBe(true);
    // A dead holder (pid far above any pid limit) is stale.
    await writeFile(join(f.dir, 'LOCK'), JSON.stringify({ pid: 2 ** 30, host: hostname() }));
    f.storage = await FileStorage.open({ rootDir: f.dir });
    expect(await f.storage.listStreams()).toEqual([]);
  });
});

describe('the root directory', () => {
  it('is created with its parents, and a root that cannot exist fails at once instead of retrying', async () => {
    f = await fixture();
    const nested = join(f.dir, 'a', 'b', 'c');
    const s = await FileStorage.open({ rootDir: nested });
    await s.createStream('x', { contentType: 'text/plain' });
    await s.close();
    // procfs refuses new entries with ENOENT although the parent exists (Node's recursive mkdir spins on it); a
    // path through a regular file fails with ENOTDIR.
    await expect(FileStorage.open({ rootDir: '/proc/streamkeep-test/data' })).rejects.toThrow();
    await writeFile(join(f.dir, 'plain-file'), 'x');
    await expect(FileStorage.open({ rootDir: join(f.dir, 'plain-file', 'data') })).rejects.toThrow();
  });
});

describe('bounded file handles', () => {
  it('keeps at most maxOpenFiles logs open across many streams', async () => {
    let open = 0;
    let peak = 0;
    // Log files (not folders, which are opened read-only to be synced), through either kind of open.
    const count = (path: string, flags: OpenFlags, fh: FileHandleLike): FileHandleLike => {
      if (!path.includes(`${sep}logs${sep}`) || flags === 'r') return fh;
      open++;
      peak = Math.max(peak, open);
      return {
        ...fh,
        read: fh.read.bind(fh),
        writev: fh.writev.bind(fh),
        datasync: fh.datasync.bind(fh),
        sync: fh.sync.bind(fh),
        truncate: fh.truncate.bind(fh),
        stat: fh.stat.bind(fh),
        close: async () => {
          open--;
          await fh.close();
        },
      };
    };
    const counting: FileSystem = {
      ...nodeFileSystem,
      open: async (path, flags) => count(path, flags, await nodeFileSystem.open(path, flags)),
      openSync: (path, flags) => count(path, flags, nodeFileSystem.openSync!(path, flags)),
    };
    f = await fixture({ maxOpenFiles: 4, fileSystem: counting, recoveryConcurrency: 2 });
    const s = f.storage;
    for (let i = 0; i < 40; i++) await s.createStream(`s${i}`, { contentType: 'text/plain' });
    peak = 0;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 40; i++) {
        await s.append(`s${i}`, { messages: [enc(`${round}`)], contentType: 'text/plain' });
        expect((await s.read(`s${(i * 7) % 40}`, '-1')).messages.length).toBeGreaterThanOrEqual(round);
      }
    }
    expect(peak).toBeLessThanOrEqual(5);
    expect((await s.read('s39', '-1')).messages.map(dec)).toEqual(['0', '1', '2']);
  });
});

describe('MessageIndex', () => {
  it('indexes across chunk boundaries and splits by byte budget', () => {
    const idx = new MessageIndex();
    let cum = 0;
    for (let i = 0; i < 200_000; i++) {
      cum += i % 5;
      idx.push(i * 10, cum);
    }
    expect(idx.count).toBe(200_000);
    expect(idx.position(70_000)).toBe(700_000);
    expect(idx.before(65_536)).toBe(idx.endOf(65_535));
    expect(idx.size(65_537)).toBe(65_537 % 5);
    // Budget: at least one message, never past the budget otherwise.
    expect(idx.takeWithin(3, 200_000, 0)).toBe(4);
    const j = idx.takeWithin(100, 200_000, 1000);
    expect(idx.before(j) - idx.before(100)).toBeLessThanOrEqual(1000);
    expect(idx.before(j + 1) - idx.before(100)).toBeGreaterThan(1000);
    // 16 bytes per message plus at most one partly used chunk.
    expect(idx.memoryBytes()).toBeLessThanOrEqual(16 * (200_000 + 65_536));
  });
});
