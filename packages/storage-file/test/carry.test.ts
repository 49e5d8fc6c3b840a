import { cp, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { streamId } from '../src/catalog.js';
import { FileStorage, type FileStorageOptions } from '../src/index.js';
import { dec, enc } from './helpers.js';

// Small streams carried in the catalog snapshot instead of files of their own (src/carry.ts).

const dirs: string[] = [];
const open: FileStorage[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close().catch(() => undefined)));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true, maxRetries: 5 })));
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sk-file-carry-'));
  dirs.push(d);
  return d;
}
const logOf = (root: string, name: string) => {
  const id = streamId(name);
  return join(root, 'logs', id.slice(0, 2), id.slice(2));
};
const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );
async function logFiles(root: string): Promise<number> {
  let n = 0;
  for (const d of await readdir(join(root, 'logs'))) n += (await readdir(join(root, 'logs', d))).length;
  return n;
}
/** A copy of a live root, as a crash would leave it (the lock file of the dead process removed). */
async function crashCopy(root: string): Promise<string> {
  const copy = await tempDir();
  await cp(root, copy, { recursive: true });
  await unlink(join(copy, 'LOCK'));
  return copy;
}
async function openAt(rootDir: string, extra: Partial<FileStorageOptions> = {}): Promise<FileStorage> {
  const s = await FileStorage.open({ rootDir, syncOnAppend: true, journal: 'always', ...extra });
  open.push(s);
  return s;
}
const text = { contentType: 'text/plain' } as const;
async function readAll(s: FileStorage, name: string): Promise<string[]> {
  return (await s.read(name, '-1')).messages.map(dec);
}

describe('small streams carried in the catalog', () => {
  it('gives small streams no file, serves them after clean and crashed restarts, and keeps appending', async () => {
    const root = await tempDir();
    const s = await openAt(root);
    const names = Array.from({ length: 300 }, (_, i) => `c${i}`);
    await Promise.all(names.map((x) => s.createStream(x, text)));
    await Promise.all(names.map((x) => s.append(x, { ...text, messages: [enc(`${x}-0`)] })));
    // Served from the journal's copy before any checkpoint.
    expect(await readAll(s, 'c7')).toEqual(['c7-0']);
    await s.close();
    open.splice(open.indexOf(s), 1);
    expect(await logFiles(root)).toBe(0);

    const r = await openAt(root);
    expect(await readAll(r, 'c0')).toEqual(['c0-0']);
    expect(await readAll(r, 'c299')).toEqual(['c299-0']);
    // Appends after the carried bytes, then a crash: the journal's writes are applied to the carried bytes.
    await Promise.all(names.map((x) => r.append(x, { ...text, messages: [enc(`${x}-1`)], seq: 's1' })));
    const crashed = await crashCopy(root);
    const c = await openAt(crashed);
    expect(c.recovery.redone).toBeGreaterThanOrEqual(300);
    expect(await logFiles(crashed)).toBe(0);
    for (const x of ['c0', 'c150', 'c299']) expect(await readAll(c, x)).toEqual([`${x}-0`, `${x}-1`]);
    // Producer and Stream-Seq state came back with the records.
    await expect(c.append('c5', { ...text, messages: [enc('again')], seq: 's1' })).rejects.toMatchObject({
      code: 'SEQ_CONFLICT',
    });
    expect((await c.head('c5')).messageCount).toBe(2);
  });

  it('reads every range of a carried log and the groups after it from memory, giving it no file', async () => {
    const root = await tempDir();
    const s = await openAt(root);
    await s.createStream('r', text);
    const offsets = ['-1'];
    for (let i = 0; i < 3; i++)
      offsets.push((await s.append('r', { ...text, messages: [enc(`m${i}`)] })).nextOffset);
    await s.close();
    open.splice(open.indexOf(s), 1);

    const r = await openAt(root);
    // Carried bytes (m0..m2) in memory, then groups the journal made durable (m3..m5, one of them two messages).
    offsets.push((await r.append('r', { ...text, messages: [enc('m3')] })).nextOffset);
    offsets.push((await r.append('r', { ...text, messages: [enc('m4'), enc('m5')] })).nextOffset);
    const all = ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'];
    // From every append's offset (the last one is the tail, after m5).
    for (const [k, offset] of offsets.entries()) {
      const from = k === offsets.length - 1 ? all.length : k;
      expect((await r.read('r', offset)).messages.map(dec), `from ${offset}`).toEqual(all.slice(from));
      // A byte budget that ends inside the pending groups.
      const one = await r.read('r', offset, { maxBytes: 1 });
      expect(one.messages.map(dec)).toEqual(all.slice(from, from + 1));
    }
    expect(await logFiles(root)).toBe(0);
  });

  it('a carried log damaged in the snapshot is refused on first use, for that stream only, across checkpoints', async () => {
    const root = await tempDir();
    const s = await openAt(root);
    const names = Array.from({ length: 20 }, (_, i) => `d${i}`);
    for (const x of names) await s.createStream(x, text);
    for (const x of names) await s.append(x, { ...text, messages: [enc(`${x} payload`)] });
    await s.close();
    open.splice(open.indexOf(s), 1);
    // One byte in the middle of the carried region (after the records), which a reader checks on first use.
    const path = join(root, 'catalog');
    const bytes = await readFile(path);
    const regionStart = bytes.readDoubleLE(16);
    expect(bytes.length - regionStart).toBeGreaterThan(20 * 10);
    bytes[Math.floor((regionStart + bytes.length) / 2)]! ^= 0x40;
    await writeFile(path, bytes);

    // Opened, written to elsewhere and checkpointed twice before the damaged stream is touched: its checksum travels
    // with its bytes into the new snapshots (never recomputed over damage).
    for (let round = 0; round < 2; round++) {
      const r = await openAt(root);
      await r.createStream(`other${round}`, { ...text, messages: [enc('x')] });
      // Listing decodes every record (not loading its log): the damaged one is then encoded, not copied.
      expect(await r.listStreams()).toHaveLength(names.length + round + 1);
      await r.close();
      open.splice(open.indexOf(r), 1);
    }
    const r = await openAt(root);
    const refused: string[] = [];
    for (const x of names) {
      try {
        expect(await readAll(r, x)).toEqual([`${x} payload`]);
      } catch (err) {
        expect(err).toMatchObject({ code: 'CORRUPTED' });
        refused.push(x);
      }
    }
    expect(refused).toHaveLength(1);
    expect(r.quarantined()).toEqual([
      expect.objectContaining({ name: refused[0], reason: expect.stringMatching(/checksum/) }),
    ]);
    expect(await readAll(r, 'other1')).toEqual(['x']);
  });

  it('a stream that outgrows the limit gets its file, complete, and keeps it across restarts', async () => {
    const root = await tempDir();
    const s = await openAt(root, { carryStreamBytes: 1024 });
    await s.createStream('grow', text);
    await s.createStream('small', text);
    await s.append('grow', { ...text, messages: [enc('a'.repeat(100))] });
    await s.append('small', { ...text, messages: [enc('tiny')] });
    await s.close();
    open.splice(open.indexOf(s), 1);
    expect(await exists(logOf(root, 'grow'))).toBe(false);

    const r = await openAt(root, { carryStreamBytes: 1024 });
    for (let i = 0; i < 20; i++) await r.append('grow', { ...text, messages: [enc(String(i).repeat(100))] });
    // A crash before the checkpoint: recovery writes the grown log to a file of its own.
    const crashed = await crashCopy(root);
    await r.close();
    open.splice(open.indexOf(r), 1);
    expect(await exists(logOf(root, 'grow'))).toBe(true);
    expect(await exists(logOf(root, 'small'))).toBe(false);
    const expected = ['a'.repeat(100), ...Array.from({ length: 20 }, (_, i) => String(i).repeat(100))];
    for (const dir of [root, crashed]) {
      const t = await openAt(dir, { carryStreamBytes: 1024 });
      expect(await readAll(t, 'grow')).toEqual(expected);
      expect(await readAll(t, 'small')).toEqual(['tiny']);
      await t.close();
      open.splice(open.indexOf(t), 1);
      expect(await exists(logOf(dir, 'grow'))).toBe(true);
      const again = await openAt(dir, { carryStreamBytes: 1024 });
      expect(await readAll(again, 'grow')).toEqual(expected);
    }
  });

  it('past the carry budget, streams get files of their own', async () => {
    const root = await tempDir();
    const s = await openAt(root, { carryBudgetBytes: 4096 });
    const names = Array.from({ length: 100 }, (_, i) => `b${i}`);
    await Promise.all(names.map((x) => s.createStream(x, text)));
    await Promise.all(names.map((x) => s.append(x, { ...text, messages: [enc('x'.repeat(100))] })));
    await s.close();
    open.splice(open.indexOf(s), 1);
    const files = await logFiles(root);
    // About 4 KiB of ~150-byte logs carried, the rest in files.
    expect(files).toBeGreaterThan(60);
    expect(files).toBeLessThan(100);
    const r = await openAt(root, { carryBudgetBytes: 4096 });
    for (const x of names) expect(await readAll(r, x)).toEqual(['x'.repeat(100)]);
  });

  it('a deleted carried stream is gone, and a new stream of the same name starts empty', async () => {
    const root = await tempDir();
    const s = await openAt(root);
    await s.createStream('d', text);
    await s.append('d', { ...text, messages: [enc('old')] });
    await s.close();
    open.splice(open.indexOf(s), 1);
    const r = await openAt(root);
    await r.delete('d');
    const crashedAfterDelete = await crashCopy(root);
    await r.createStream('d', text);
    await r.append('d', { ...text, messages: [enc('new')] });
    const crashedAfterCreate = await crashCopy(root);
    await r.close();
    open.splice(open.indexOf(r), 1);
    const t = await openAt(root);
    expect(await readAll(t, 'd')).toEqual(['new']);
    const a = await openAt(crashedAfterDelete);
    await expect(a.head('d')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const b = await openAt(crashedAfterCreate);
    expect(await readAll(b, 'd')).toEqual(['new']);
  });

  it('a carried stream written out, dropped from memory and loaded again loses nothing in a crash', async () => {
    const root = await tempDir();
    // Two loaded streams at most: the others are dropped and loaded again (from the carried bytes or the file).
    const opts = { maxLoadedStreams: 2, carryStreamBytes: 2048, journalCheckpointBytes: 64 * 1024 };
    const s = await openAt(root, opts);
    const names = Array.from({ length: 8 }, (_, i) => `m${i}`);
    const want = new Map<string, string[]>(names.map((x) => [x, []]));
    await Promise.all(names.map((x) => s.createStream(x, text)));
    for (let round = 0; round < 40; round++) {
      for (const x of names) {
        const m = `${x}:${round}:${'y'.repeat(round * 3)}`;
        await s.append(x, { ...text, messages: [enc(m)] });
        want.get(x)!.push(m);
        // Reads in between: from the carried bytes, or after writing them to a file.
        if ((round + x.length) % 7 === 0) expect(await readAll(s, x)).toEqual(want.get(x));
      }
      if (round % 10 === 9) {
        const copy = await crashCopy(root);
        const c = await openAt(copy, opts);
        for (const x of names) expect(await readAll(c, x)).toEqual(want.get(x));
        await c.close();
        open.splice(open.indexOf(c), 1);
      }
    }
    await s.close();
    open.splice(open.indexOf(s), 1);
    const r = await openAt(root, opts);
    for (const x of names) expect(await readAll(r, x)).toEqual(want.get(x));
  }, 120_000);

  it('with carrying off, every written stream has its log file after a checkpoint', async () => {
    const root = await tempDir();
    const s = await openAt(root, { carryStreamBytes: 0 });
    await s.createStream('f', text);
    await s.append('f', { ...text, messages: [enc('x')] });
    await s.close();
    open.splice(open.indexOf(s), 1);
    expect(await exists(logOf(root, 'f'))).toBe(true);
  });
});
