import { readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isStorageError } from '@streamkeep/storage';
import { afterAll, describe, expect, it } from 'vitest';
import { streamId } from '../src/catalog.js';
import { FileStorage, type RecoveryProgress } from '../src/index.js';
import { FaultyFs } from './faulty-fs.js';
import { contents, expected, fixtureClock, fixtureCopies } from './release-fixtures.js';

// Data directories written by the 0.0.0 release (format 1: a folder per stream with meta.json and log); how they
// were made is in fixtures/make-format-1.mjs. Their content as that release served it is in the .expected.json files.
const clock = fixtureClock;
const copies = fixtureCopies();
const copyOf = copies.copyOf;
afterAll(() => copies.remove());

describe('a format-1 data directory', () => {
  it('opens after migration with every stream, message, producer, tombstone and fork as before', async () => {
    const root = await copyOf('format-1');
    const phases: RecoveryProgress[] = [];
    const s = await FileStorage.open({ rootDir: root, clock, onProgress: (p) => phases.push(p) });
    expect(s.recovery.migratedFrom).toBe(1);
    expect(s.recovery.quarantined).toEqual([]);
    expect(phases.at(-1)).toMatchObject({ phase: 'migrate', streamsDone: 8, streamsTotal: 8 });
    expect(await contents(s)).toEqual(await expected('format-1'));
    // Producer state came along: the last acknowledged batch is a duplicate, the next one is new.
    const dup = await s.appendWithProducer('json/doc', {
      messages: [Buffer.from('5')],
      contentType: 'application/json',
      producer: { id: 'p1', epoch: 2, seq: 1 },
    });
    expect(dup.duplicate).toBe(true);
    // The tombstoned source still blocks its name and still serves its fork.
    await expect(s.head('src')).rejects.toMatchObject({ code: 'GONE' });
    expect((await s.read('fork-1', '-1')).messages.map(String)).toEqual(['a', 'bb', 'ccc', 'forked']);
    // Deleting the fork removes the tombstoned source with it.
    await s.delete('fork-1');
    await expect(s.head('src')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await s.close();

    expect(await readFile(join(root, 'FORMAT'), 'utf8')).toBe('streamkeep-file-storage 2\n');
    expect((await readdir(root)).sort()).toEqual(['CLEAN', 'FORMAT', 'catalog', 'journal', 'logs', 'tmp']);
    const again = await FileStorage.open({ rootDir: root, clock });
    expect(again.recovery.migratedFrom).toBeUndefined();
    expect(Object.keys(await contents(again)).sort()).toEqual(
      Object.keys(await expected('format-1'))
        .filter((n) => n !== 'fork-1')
        .sort(),
    );
    await again.close();
  });

  it('re-applies the journal a crash left behind, restoring writes that never reached a log', async () => {
    const root = await copyOf('format-1-crashed');
    // As if the last write to "a" had been lost with the page cache: only the journal still has it.
    const log = join(root, 'streams', streamId('a'), 'log');
    const size = (await readFile(log)).byteLength;
    await truncate(log, size - 10);
    const s = await FileStorage.open({ rootDir: root, clock });
    expect(s.recovery.migratedFrom).toBe(1);
    expect(await contents(s)).toEqual(await expected('format-1-crashed'));
    await s.close();
  });

  it('moves a stream whose meta.json is unreadable to quarantine/, reports it, and serves the rest', async () => {
    const root = await copyOf('format-1');
    const id = streamId('plain');
    await writeFile(join(root, 'streams', id, 'meta.json'), '{"format":1,');
    const seen: string[] = [];
    const s = await FileStorage.open({ rootDir: root, clock, onQuarantine: (q) => seen.push(q.reason) });
    expect(s.recovery.quarantined).toEqual([
      { dir: join(root, 'quarantine', id), name: undefined, reason: 'meta.json is not valid JSON' },
    ]);
    expect(seen).toEqual(['meta.json is not valid JSON']);
    const all = await expected('format-1');
    delete all.plain;
    expect(await contents(s)).toEqual(all);
    expect(await readdir(join(root, 'quarantine', id))).toEqual(['log', 'meta.json'].sort());
    await s.close();
  });

  it('is crash-safe: a migration interrupted before its commit point starts again and completes', async () => {
    const root = await copyOf('format-1');
    const faulty = new FaultyFs();
    // The switch of FORMAT to 2 (a rename) fails: everything before it is done, the commit point is not.
    faulty.fail('rename', 'EIO', 1, false, 'FORMAT');
    const failed = await FileStorage.open({ rootDir: root, clock, fileSystem: faulty }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isStorageError(failed)).toBe(true);
    expect(await readFile(join(root, 'FORMAT'), 'utf8')).toBe('streamkeep-file-storage 1\n');
    const s = await FileStorage.open({ rootDir: root, clock });
    expect(s.recovery.migratedFrom).toBe(1);
    expect(await contents(s)).toEqual(await expected('format-1'));
    await s.close();
  });
});
