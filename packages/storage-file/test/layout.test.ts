import { readdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isStorageError } from '@streamkeep/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { FileStorage, type FileSystem, nodeFileSystem } from '../src/index.js';
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
    const dirs = await readdir(join(f.dir, 'streams'));
    expect(dirs).toHaveLength(names.length);
    for (const d of dirs) expect(d).toMatch(/^[0-9a-f]{64}$/);
    expect(await readdir(f.dir)).toEqual(expect.arrayContaining(['streams', 'LOCK', 'FORMAT']));
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

describe('bounded file handles', () => {
  it('keeps at most maxOpenFiles logs open across many streams', async () => {
    let open = 0;
    let peak = 0;
    const counting: FileSystem = {
      ...nodeFileSystem,
      async open(path, flags) {
        const fh = await nodeFileSystem.open(path, flags);
        if (!path.endsWith('/log')) return fh;
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
      },
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
