import { cp, mkdtemp, rm, stat, truncate, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { streamId } from '../src/catalog.js';
import { FileStorage } from '../src/index.js';
import { dec, enc } from './helpers.js';

const dirs: string[] = [];
const open: FileStorage[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true, maxRetries: 5 })));
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sk-file-journal-'));
  dirs.push(d);
  return d;
}
const logOf = (root: string, name: string) => {
  const id = streamId(name);
  return join(root, 'logs', id.slice(0, 2), id.slice(2));
};

/** A copy of a live root, as a crash would leave it (the lock file of the dead process removed). */
async function crashCopy(root: string): Promise<string> {
  const copy = await tempDir();
  await cp(root, copy, { recursive: true });
  await unlink(join(copy, 'LOCK'));
  return copy;
}

describe('commit journal', () => {
  it('restores acknowledged group writes that never reached a stream log', async () => {
    const root = await tempDir();
    // 'always': every group goes through the journal, so no log was synced after creation and losing it is possible.
    const s = await FileStorage.open({ rootDir: root, syncOnAppend: true, journal: 'always' });
    open.push(s);
    await s.createStream('a', { contentType: 'text/plain', messages: [enc('a0')] });
    await s.createStream('b', { contentType: 'text/plain' });
    // "b" has no log yet: its first append creates it.
    const created = { a: (await stat(logOf(root, 'a'))).size };
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        s.append(i % 2 ? 'a' : 'b', { messages: [enc(`m${i}`)], contentType: 'text/plain' }),
      ),
    );
    await s.appendWithProducer('a', {
      messages: [enc('p')],
      contentType: 'text/plain',
      producer: { id: 'p', epoch: 0, seq: 0 },
      close: true,
    });
    const expected = {
      a: (await s.read('a', '-1')).messages.map(dec),
      b: (await s.read('b', '-1')).messages.map(dec),
    };
    // Lose everything the logs received after creation, as a power cut before their checkpoint sync would.
    const copy = await crashCopy(root);
    await truncate(logOf(copy, 'a'), created.a);
    // Even the creation of b's log is lost (if it was created at all: a first write reaches its log with the
    // stream's next groups): the journal recreates it.
    await rm(logOf(copy, 'b'), { force: true });
    const r = await FileStorage.open({ rootDir: copy, syncOnAppend: true });
    open.push(r);
    expect(r.recovery.redone).toBeGreaterThan(0);
    expect((await r.read('a', '-1')).messages.map(dec)).toEqual(expected.a);
    expect((await r.read('b', '-1')).messages.map(dec)).toEqual(expected.b);
    expect((await r.head('a')).closed).toBe(true);
    const dup = await r.appendWithProducer('a', {
      messages: [enc('p')],
      contentType: 'text/plain',
      producer: { id: 'p', epoch: 0, seq: 0 },
    });
    expect(dup.duplicate).toBe(true);
  });

  it('checkpoints: syncs the logs, empties the journal, and recovery still has everything', async () => {
    const root = await tempDir();
    const s = await FileStorage.open({
      rootDir: root,
      syncOnAppend: true,
      journal: 'always',
      journalCheckpointBytes: 4096,
    });
    open.push(s);
    await s.createStream('c', { contentType: 'text/plain' });
    for (let i = 0; i < 100; i++)
      await s.append('c', { messages: [enc(`x${i}`.repeat(20))], contentType: 'text/plain' });
    expect((await stat(join(root, 'journal'))).size).toBeLessThan(4096 + 1024);
    const expected = (await s.read('c', '-1')).messages.map(dec);
    const copy = await crashCopy(root);
    const r = await FileStorage.open({ rootDir: copy });
    open.push(r);
    expect((await r.read('c', '-1')).messages.map(dec)).toEqual(expected);
  });

  it('ignores entries of a deleted stream and of an older stream by the same name', async () => {
    const root = await tempDir();
    const s = await FileStorage.open({ rootDir: root, syncOnAppend: true });
    open.push(s);
    await s.createStream('d', { contentType: 'text/plain' });
    await s.append('d', { messages: [enc('old')], contentType: 'text/plain' });
    await s.delete('d');
    await s.createStream('d', { contentType: 'text/plain', messages: [enc('new')] });
    await s.createStream('gone', { contentType: 'text/plain' });
    await s.append('gone', { messages: [enc('x')], contentType: 'text/plain' });
    await s.delete('gone');
    const copy = await crashCopy(root);
    const r = await FileStorage.open({ rootDir: copy });
    open.push(r);
    expect((await r.read('d', '-1')).messages.map(dec)).toEqual(['new']);
    expect(await r.exists('gone')).toBe(false);
    expect(r.recovery.truncated).toEqual([]);
  });

  // The new stream's own writes are not journaled here (appends bypass the journal without syncOnAppend or with
  // `journal: false`; a create's first write always goes through it): the journal's last entries for the log are the
  // old stream's first write at position 0, which must not be replayed over the new stream's file.
  it.each([
    ['without syncOnAppend', { syncOnAppend: false }],
    ['synced, journal off for appends', { syncOnAppend: true, journal: false }],
    ['synced, journal on', { syncOnAppend: true }],
  ] as const)('keeps a re-created stream written past the journal after a crash (%s)', async (_, options) => {
    const root = await tempDir();
    const s = await FileStorage.open({ rootDir: root, ...options, carryStreamBytes: 0 });
    open.push(s);
    await s.createStream('r', { contentType: 'text/plain', messages: [enc('old')], closed: true });
    await s.delete('r');
    await s.createStream('r', { contentType: 'text/plain' });
    await s.append('r', { messages: [enc('new')], contentType: 'text/plain' });
    await s.append('r', { messages: [enc('newer')], contentType: 'text/plain', close: true });
    const copy = await crashCopy(root);
    const r = await FileStorage.open({ rootDir: copy });
    open.push(r);
    expect((await r.read('r', '-1')).messages.map(dec)).toEqual(['new', 'newer']);
    expect((await r.head('r')).closed).toBe(true);
    expect(r.recovery.quarantined).toEqual([]);
  });

  it('checkpoints at close after deleting a stream dropped from memory with its log not yet synced', async () => {
    const root = await tempDir();
    // One loaded stream: creating the next drops the one before, whose first write the checkpoint still owes a sync.
    const s = await FileStorage.open({
      rootDir: root,
      syncOnAppend: false,
      maxLoadedStreams: 1,
      carryStreamBytes: 0,
    });
    await s.createStream('x', { contentType: 'text/plain', messages: [enc('x')] });
    await s.createStream('y', { contentType: 'text/plain', messages: [enc('y')] });
    await s.delete('x');
    await s.close();
    // The final checkpoint went through: the journal is empty and the shutdown is marked clean.
    expect((await stat(join(root, 'journal'))).size).toBe(16);
    expect((await stat(join(root, 'CLEAN'))).isFile()).toBe(true);
    const r = await FileStorage.open({ rootDir: root, syncOnAppend: false });
    open.push(r);
    expect(await r.exists('x')).toBe(false);
    expect((await r.read('y', '-1')).messages.map(dec)).toEqual(['y']);
  });

  it('a clean close leaves an empty journal', async () => {
    const root = await tempDir();
    const s = await FileStorage.open({ rootDir: root, syncOnAppend: true });
    await s.createStream('e', { contentType: 'text/plain' });
    await s.append('e', { messages: [enc('1')], contentType: 'text/plain' });
    await s.close();
    expect((await stat(join(root, 'journal'))).size).toBe(16);
    const r = await FileStorage.open({ rootDir: root, syncOnAppend: false });
    open.push(r);
    expect(r.recovery.redone).toBe(0);
    // Lifecycle changes use the journal even without syncOnAppend: it stays, empty.
    expect((await stat(join(root, 'journal'))).size).toBe(16);
  });
});

describe('deferred log writes', () => {
  it('past the budget of streams with pending writes, the oldest are written out and nothing is lost', async () => {
    const root = await tempDir();
    // Every stream gets a file of its own here (none is carried in the catalog: see carry.test.ts).
    const s = await FileStorage.open({
      rootDir: root,
      syncOnAppend: true,
      journal: 'always',
      carryStreamBytes: 0,
    });
    open.push(s);
    // More streams with one small pending write each than the 4,096 the writer lets wait for their log file.
    const n = 5_000;
    const names = Array.from({ length: n }, (_, i) => `d${i}`);
    for (let i = 0; i < n; i += 100) {
      await Promise.all(names.slice(i, i + 100).map((x) => s.createStream(x, { contentType: 'text/plain' })));
    }
    for (let i = 0; i < n; i += 100) {
      await Promise.all(
        names.slice(i, i + 100).map((x) => s.append(x, { messages: [enc(x)], contentType: 'text/plain' })),
      );
    }
    // The background flusher creates the oldest streams' logs, while the newest stay in the journal only.
    const exists = (x: string) =>
      stat(logOf(root, x)).then(
        () => true,
        () => false,
      );
    for (let i = 0; !(await exists('d0')); i++) {
      expect(i).toBeLessThan(600);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await exists(names[n - 1]!)).toBe(false);
    // A crash now: the journal restores what the logs lack.
    const copy = await crashCopy(root);
    const r = await FileStorage.open({ rootDir: copy });
    open.push(r);
    for (const x of [names[0]!, names[n >> 1]!, names[n - 1]!]) {
      const got = await r.read(x, '-1');
      expect(got.messages.map(dec)).toEqual([x]);
    }
    expect((await r.listStreams({ limit: n + 1 })).length).toBe(n);
  }, 120_000);
});

describe('stream summaries in the catalog', () => {
  it('lists streams without reading their logs after a clean shutdown, and exactly after a crash', async () => {
    const root = await tempDir();
    const s = await FileStorage.open({ rootDir: root, syncOnAppend: true, journal: 'always' });
    open.push(s);
    for (let i = 0; i < 20; i++) {
      await s.createStream(`s${i}`, { contentType: 'text/plain', messages: [enc('x'.repeat(i))] });
    }
    await s.append('s3', { messages: [enc('more')], contentType: 'text/plain', seq: 'a1' });
    await s.closeStream('s4');
    const before = await s.listStreams();
    // A crash copy taken now: the catalog snapshot was never written, the journal holds everything.
    const crashed = await crashCopy(root);
    await s.close();
    const clean = await FileStorage.open({ rootDir: root, syncOnAppend: true });
    open.push(clean);
    expect(await clean.listStreams()).toEqual(before);
    expect(clean.loadedStreams()).toBe(0);
    const after = await FileStorage.open({ rootDir: crashed, syncOnAppend: true });
    open.push(after);
    expect(await after.listStreams()).toEqual(before);
    // A crash after a checkpoint: the snapshot exists but is older than the logs, so listing loads them.
    await after.append('s5', { messages: [enc('late')], contentType: 'text/plain' });
    const expected = await after.listStreams();
    const again = await crashCopy(crashed);
    const r = await FileStorage.open({ rootDir: again, syncOnAppend: true });
    open.push(r);
    expect(await r.listStreams()).toEqual(expected);
  });
});
