import { cp, mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { codeOf } from '@streamkeep/storage-conformance/helpers';
import { afterEach, describe, expect, it } from 'vitest';
import { FileStorage } from '../src/index.js';
import { FaultyFs, type Op } from './faulty-fs.js';
import { dec, enc, ManualClock } from './helpers.js';

let dir: string;
let storage: FileStorage | undefined;
afterEach(async () => {
  await storage?.close();
  await rm(dir, { recursive: true, force: true, maxRetries: 5 });
});

async function setup(syncOnAppend: boolean, journal: boolean | 'always' = true, inlineWriteBytes?: number) {
  dir = await mkdtemp(join(tmpdir(), 'sk-file-fault-'));
  const fs = new FaultyFs();
  const clock = new ManualClock();
  storage = await FileStorage.open({
    rootDir: dir,
    clock,
    syncOnAppend,
    journal,
    fileSystem: fs,
    maxTotalBytes: 100_000,
    inlineWriteBytes,
  });
  await storage.createStream('s', { contentType: 'text/plain', messages: [enc('first')] });
  return { fs, clock, s: storage };
}

const cases: {
  op: Op;
  code: string;
  expected: string;
  sync: boolean;
  partial?: boolean;
  path?: string;
  journal?: 'always';
}[] = [
  { op: 'writev', code: 'ENOSPC', expected: 'INSUFFICIENT_STORAGE', sync: false },
  { op: 'writev', code: 'ENOSPC', expected: 'INSUFFICIENT_STORAGE', sync: true, partial: true },
  { op: 'writev', code: 'EIO', expected: 'INTERNAL', sync: false, partial: true },
  { op: 'writev', code: 'EAGAIN', expected: 'UNAVAILABLE', sync: false },
  { op: 'datasync', code: 'EIO', expected: 'INTERNAL', sync: true },
  { op: 'datasync', code: 'ENOSPC', expected: 'INSUFFICIENT_STORAGE', sync: true },
  { op: 'datasync', code: 'EDQUOT', expected: 'INSUFFICIENT_STORAGE', sync: true },
  // The same through the commit journal: its write or its sync fails.
  {
    op: 'writev',
    code: 'ENOSPC',
    expected: 'INSUFFICIENT_STORAGE',
    sync: true,
    path: 'journal',
    journal: 'always',
  },
  {
    op: 'writev',
    code: 'EIO',
    expected: 'INTERNAL',
    sync: true,
    partial: true,
    path: 'journal',
    journal: 'always',
  },
  { op: 'datasync', code: 'EIO', expected: 'INTERNAL', sync: true, path: 'journal', journal: 'always' },
];

describe('injected I/O failures', () => {
  // Every case on the synchronous write path (the default for writes this small) and on the thread pool only.
  for (const c of cases.flatMap((x) => [
    { ...x, inline: undefined },
    { ...x, inline: 0 },
  ])) {
    it(`${c.code} on ${c.path ?? ''} ${c.op}${c.partial ? ' (partial)' : ''}${c.sync ? ' with syncOnAppend' : ''}${c.inline === 0 ? ', thread-pool writes' : ', inline writes'}: fails cleanly and resumes`, async () => {
      const { fs, s } = await setup(c.sync, c.journal, c.inline);
      await s.append('s', { messages: [enc('second')], contentType: 'text/plain', seq: '1' });
      const head = await s.head('s');
      const total = s.totalBytes();
      const seen: number[] = [];
      await s.subscribe('s', () => seen.push(1));
      fs.fail(c.op, c.code, 1, c.partial, c.path);
      // A producer batch, a Stream-Seq and a close in the failed commit: none of it may stick.
      const failed = s.appendWithProducer('s', {
        messages: [enc('lost'), enc('x'.repeat(40_000))],
        contentType: 'text/plain',
        producer: { id: 'p', epoch: 0, seq: 0 },
        seq: '2',
        close: true,
      });
      expect(await codeOf(failed)).toBe(c.expected);
      expect(await s.head('s')).toEqual(head);
      expect(s.totalBytes()).toBe(total);
      expect(seen).toEqual([]);
      expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['first', 'second']);
      // Fault cleared: the same request is accepted as new, at the same offsets.
      const ok = await s.appendWithProducer('s', {
        messages: [enc('third')],
        contentType: 'text/plain',
        producer: { id: 'p', epoch: 0, seq: 0 },
        seq: '2',
      });
      expect(ok.duplicate).toBe(false);
      expect(ok.startOffset).toBe(head.nextOffset);
      expect(fs.syncWrites > 0).toBe(c.inline === undefined);
      await s.close();
      storage = await FileStorage.open({ rootDir: dir, syncOnAppend: c.sync });
      expect(storage.recovery.truncated).toEqual([]);
      expect((await storage.read('s', '-1')).messages.map(dec)).toEqual(['first', 'second', 'third']);
      expect((await storage.head('s')).closed).toBe(false);
    });
  }

  // A group written to its log right away (here: through the thread pool; small groups are deferred, see below).
  it.each([['thread-pool log writes', 0]])(
    'a log write that fails while its journal entry succeeded is never replayed (%s)',
    async (_, inline) => {
      const { fs, s } = await setup(true, 'always', inline);
      fs.fail('writev', 'EIO', 1, true, '/log');
      expect(await codeOf(s.append('s', { messages: [enc('failed')], contentType: 'text/plain' }))).toBe(
        'INTERNAL',
      );
      // A crash now: the copy's journal must not bring the failed group back.
      const copy = await mkdtemp(join(tmpdir(), 'sk-file-fault-copy-'));
      try {
        await cp(dir, copy, { recursive: true });
        await unlink(join(copy, 'LOCK'));
        const crashed = await FileStorage.open({ rootDir: copy });
        expect((await crashed.read('s', '-1')).messages.map(dec)).toEqual(['first']);
        await crashed.close();
      } finally {
        await rm(copy, { recursive: true, force: true, maxRetries: 5 });
      }
      await s.append('s', { messages: [enc('next')], contentType: 'text/plain' });
      expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['first', 'next']);
    },
  );

  it('a deferred log write that fails is retried by the next read or checkpoint, and is never lost', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sk-file-fault-'));
    const fs = new FaultyFs();
    // No tail cache: a read of the pending group must go to the log, which needs the flush.
    storage = await FileStorage.open({ rootDir: dir, fileSystem: fs, journal: 'always', tailCacheBytes: 0 });
    const s = storage;
    await s.createStream('s', { contentType: 'text/plain', messages: [enc('first')] });
    await s.append('s', { messages: [enc('pending')], contentType: 'text/plain' });
    fs.fail('writev', 'EIO', 1, false, `${sep}logs${sep}`);
    expect(await codeOf(s.read('s', '-1'))).toBe('INTERNAL');
    expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['first', 'pending']);
    await s.append('s', { messages: [enc('again')], contentType: 'text/plain' });
    // A crash now: the journal has what the log may lack.
    const copy = await mkdtemp(join(tmpdir(), 'sk-file-fault-copy-'));
    try {
      await cp(dir, copy, { recursive: true });
      await unlink(join(copy, 'LOCK'));
      const crashed = await FileStorage.open({ rootDir: copy });
      expect((await crashed.read('s', '-1')).messages.map(dec)).toEqual(['first', 'pending', 'again']);
      await crashed.close();
    } finally {
      await rm(copy, { recursive: true, force: true, maxRetries: 5 });
    }
    // A failed flush at the checkpoint of close() keeps the journal: the next open still has everything. close()
    // reports the failure, after releasing everything (the lock too: the open below would fail otherwise).
    fs.fail('writev', 'EIO', 1, false, `${sep}logs${sep}`);
    const closing = s.close();
    expect(await codeOf(closing)).toBe('INTERNAL');
    expect(await codeOf(s.close())).toBe('INTERNAL');
    expect(await codeOf(s.head('s'))).toBe('STORAGE_CLOSED');
    storage = await FileStorage.open({ rootDir: dir });
    expect((await storage.read('s', '-1')).messages.map(dec)).toEqual(['first', 'pending', 'again']);
  });

  it.each([
    ['inline writes', undefined],
    ['thread-pool writes', 0],
  ])('retries the cut-back of a failed write before the next write (%s)', async (_, inline) => {
    const { fs, s } = await setup(true, false, inline);
    fs.fail('writev', 'EIO', 1, true);
    fs.fail('truncate', 'EIO', 1);
    expect(await codeOf(s.append('s', { messages: [enc('a'.repeat(100))], contentType: 'text/plain' }))).toBe(
      'INTERNAL',
    );
    fs.fail('truncate', 'EAGAIN', 1);
    expect(await codeOf(s.append('s', { messages: [enc('b')], contentType: 'text/plain' }))).toBe(
      'UNAVAILABLE',
    );
    await s.append('s', { messages: [enc('c')], contentType: 'text/plain' });
    expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['first', 'c']);
    await s.close();
    storage = await FileStorage.open({ rootDir: dir });
    expect(storage.recovery.truncated).toEqual([]);
    expect((await storage.read('s', '-1')).messages.map(dec)).toEqual(['first', 'c']);
  });

  it('fails every append of a group together and keeps later groups working', async () => {
    const { fs, s } = await setup(true);
    fs.fail('datasync', 'EIO', 1);
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        s.append('s', { messages: [enc(`m${i}`)], contentType: 'text/plain' }),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    const data = (await s.read('s', '-1')).messages.map(dec);
    expect(data.length).toBe(1 + ok);
    // Whatever succeeded did so in call order, after the failed group.
    expect(data.slice(1)).toEqual(results.flatMap((r, i) => (r.status === 'fulfilled' ? [`m${i}`] : [])));
    expect(ok).toBeGreaterThan(0);
    expect(ok).toBeLessThan(20);
  });

  it('leaves nothing behind when creating, deleting or tombstoning fails', async () => {
    // Lifecycle changes are durable through the journal: its failures are theirs. After a failed round the journal
    // owes a checkpoint; a successful create (of a stream dropped again at the end) makes sure it was taken before
    // the next fault is set up, so that each fault hits the operation it is meant for.
    const { fs, s } = await setup(false);
    const settle = async (name: string) => {
      await s.createStream(name, { contentType: 'text/plain' });
      await s.delete(name);
    };
    fs.fail('datasync', 'ENOSPC', 1, false, 'journal');
    expect(await codeOf(s.createStream('n', { contentType: 'text/plain', messages: [enc('abc')] }))).toBe(
      'INSUFFICIENT_STORAGE',
    );
    expect(await codeOf(s.head('n'))).toBe('NOT_FOUND');
    expect(s.totalBytes()).toBe(5);
    await settle('x1');
    fs.fail('writev', 'EIO', 1, false, 'journal');
    expect(await codeOf(s.createFork('f', { source: 's' }))).toBe('INTERNAL');
    expect(await s.exists('f')).toBe(false);
    await settle('x2');
    await s.createFork('f', { source: 's' });
    fs.fail('datasync', 'EIO', 1, false, 'journal');
    expect(await codeOf(s.delete('s'))).toBe('INTERNAL');
    expect((await s.head('s')).name).toBe('s');
    await settle('x3');
    fs.fail('writev', 'EIO', 1, true, 'journal');
    expect(await codeOf(s.delete('f'))).toBe('INTERNAL');
    expect(await s.exists('f')).toBe(true);
    await s.close();
    storage = await FileStorage.open({ rootDir: dir });
    expect((await storage.listStreams()).map((m) => m.name)).toEqual(['f', 's']);
    expect(await storage.delete('s')).toEqual({ softDeleted: true });
    expect(await storage.delete('f')).toEqual({ softDeleted: false });
    expect(await storage.listStreams()).toEqual([]);
    expect(storage.totalBytes()).toBe(0);
  });
});
