import { cp, mkdtemp, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Storage, StreamMetadata } from '@streamkeep/storage';
import { codeOf } from '@streamkeep/storage-conformance/helpers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamId } from '../src/catalog.js';
import { FileStorage } from '../src/index.js';
import { dec, enc, ManualClock } from './helpers.js';

const clock = new ManualClock();
const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sk-file-rec-'));
  dirs.push(d);
  return d;
}
// Every storage opened here, so that cleanup closes them (also after a failed assertion) before removing files.
const opened: FileStorage[] = [];
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close().catch(() => undefined)));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true, maxRetries: 5 })));
});

// Every log verified at open, so that the recovery report covers them all (the lazy default is tested below).
async function open(rootDir: string, c: ManualClock = clock, syncOnAppend = false): Promise<FileStorage> {
  const s = await FileStorage.open({ rootDir, clock: c, syncOnAppend, verifyOnOpen: true });
  opened.push(s);
  return s;
}
const logOf = (root: string, name: string) => {
  const id = streamId(name);
  return join(root, 'logs', id.slice(0, 2), id.slice(2));
};

async function snapshot(s: Storage) {
  const list = await s.listStreams();
  const out: Record<string, { head: StreamMetadata; data: string[] }> = {};
  for (const m of list) out[m.name] = { head: m, data: (await s.read(m.name, '-1')).messages.map(dec) };
  return out;
}

describe('torn tails', () => {
  let base: string;
  let lastStart: number;
  let lastEnd: number;
  let headBefore: StreamMetadata;

  beforeAll(async () => {
    base = await tempDir();
    const s = await open(base);
    await s.createStream('s', { contentType: 'text/plain', messages: [enc('zero')] });
    await s.append('s', { messages: [enc('one'), enc('two')], contentType: 'text/plain', seq: 'a' });
    await s.createStream('other', { contentType: 'text/plain', messages: [enc('intact')] });
    headBefore = await s.head('s');
    lastStart = (await stat(logOf(base, 's'))).size;
    clock.advance(1000);
    await s.appendWithProducer('s', {
      messages: [enc('three'), enc('four')],
      contentType: 'text/plain',
      producer: { id: 'p', epoch: 1, seq: 0 },
      seq: 'b',
      close: true,
    });
    await s.close();
    lastEnd = (await stat(logOf(base, 's'))).size;
  });

  // Each of these loops opens a copied root once per byte position: seconds on a busy machine.
  it('cuts the last record at every byte position and never serves part of it', {
    timeout: 120_000,
  }, async () => {
    expect(lastEnd - lastStart).toBeGreaterThan(40);
    for (let cut = lastStart; cut < lastEnd; cut++) {
      const root = await tempDir();
      await cp(base, root, { recursive: true });
      await truncate(logOf(root, 's'), cut);
      const s = await open(root);
      expect(s.recovery.truncated).toEqual(cut === lastStart ? [] : [{ name: 's', bytes: cut - lastStart }]);
      expect(await s.head('s')).toEqual(headBefore);
      expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['zero', 'one', 'two']);
      expect((await s.read('other', '-1')).messages.map(dec)).toEqual(['intact']);
      // The producer batch was never acknowledged: a retry is new, not a duplicate, and lands exactly once.
      const retry = await s.appendWithProducer('s', {
        messages: [enc('three'), enc('four')],
        contentType: 'text/plain',
        producer: { id: 'p', epoch: 1, seq: 0 },
        seq: 'b',
        close: true,
      });
      expect(retry.duplicate).toBe(false);
      await s.close();
      const again = await open(root);
      expect(again.recovery.truncated).toEqual([]);
      expect((await again.read('s', '-1')).messages.map(dec)).toEqual([
        'zero',
        'one',
        'two',
        'three',
        'four',
      ]);
      expect((await again.head('s')).closed).toBe(true);
      await again.close();
      await rm(root, { recursive: true, force: true, maxRetries: 5 });
    }
  });

  it('drops zero-filled or random garbage after the last record', async () => {
    // A large random tail too: the partial record of a big torn write of incompressible payloads looks like this.
    const random = Buffer.alloc(4 << 20);
    let x = 12345;
    for (let i = 0; i < random.length; i += 4) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      random.writeUInt32LE(x, i);
    }
    for (const junk of [
      Buffer.alloc(4096),
      Buffer.from('\u0005\u0000\u0000\u0000garbage-after-the-end'),
      random,
    ]) {
      const root = await tempDir();
      await cp(base, root, { recursive: true });
      await writeFile(logOf(root, 's'), junk, { flag: 'a' });
      const s = await open(root);
      expect(s.recovery.truncated).toEqual([{ name: 's', bytes: junk.length }]);
      expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['zero', 'one', 'two', 'three', 'four']);
      await s.close();
    }
  });

  it('cuts at a zero-filled hole (unsynced blocks lost in a power failure) so that a prefix remains', async () => {
    const root = await tempDir();
    await cp(base, root, { recursive: true });
    const bytes = await readFile(logOf(root, 's'));
    const second = 16 + 8 + bytes.readUInt32LE(16 + 4);
    bytes.fill(0, second, lastStart);
    await writeFile(logOf(root, 's'), bytes);
    const s = await open(root);
    expect(s.quarantined()).toEqual([]);
    expect(s.recovery.truncated).toEqual([{ name: 's', bytes: lastEnd - second }]);
    expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['zero']);
    await s.close();
  });

  it('quarantines a log with a flipped byte in the middle; the rest of the root is served', {
    timeout: 120_000,
  }, async () => {
    // Every byte of the first record (crc, length, body) and the second; the last record is followed by nothing.
    for (let at = 16; at < lastStart; at++) {
      const root = await tempDir();
      await cp(base, root, { recursive: true });
      const bytes = await readFile(logOf(root, 's'));
      bytes[at]! ^= 0x40;
      await writeFile(logOf(root, 's'), bytes);
      const s = await open(root);
      expect(s.quarantined().map((q) => q.name)).toEqual(['s']);
      expect(await codeOf(s.read('s', '-1'))).toBe('CORRUPTED');
      expect(await codeOf(s.append('s', { messages: [enc('x')], contentType: 'text/plain' }))).toBe(
        'CORRUPTED',
      );
      expect(await codeOf(s.createStream('s', { contentType: 'text/plain' }))).toBe('CORRUPTED');
      expect(await codeOf(s.exists('s'))).toBe('CORRUPTED');
      expect((await s.listStreams()).map((m) => m.name)).toEqual(['other']);
      expect((await s.read('other', '-1')).messages.map(dec)).toEqual(['intact']);
      // The damaged file is left untouched for inspection.
      expect((await readFile(logOf(root, 's'))).equals(bytes)).toBe(true);
      await s.close();
      await rm(root, { recursive: true, force: true, maxRetries: 5 });
    }
  });

  it('refuses streams with a missing log or a damaged log header', async () => {
    const damage: [string, (root: string) => Promise<void>][] = [
      ['missing log', (r) => unlink(logOf(r, 's'))],
      [
        'log header',
        async (r) => {
          const b = await readFile(logOf(r, 's'));
          b[2] = 0;
          await writeFile(logOf(r, 's'), b);
        },
      ],
      [
        'log of another stream',
        async (r) => {
          await writeFile(logOf(r, 's'), await readFile(logOf(r, 'other')));
        },
      ],
    ];
    for (const [what, fn] of damage) {
      const root = await tempDir();
      await cp(base, root, { recursive: true });
      await fn(root);
      const s = await open(root);
      expect(s.quarantined().length, what).toBe(1);
      expect(await codeOf(s.head('s')), what).toBe('CORRUPTED');
      expect((await s.read('other', '-1')).messages.map(dec)).toEqual(['intact']);
      await s.close();
    }
  });

  it('verifies a log lazily by default: damage is found on first use, reported once, and the rest is served', async () => {
    const root = await tempDir();
    await cp(base, root, { recursive: true });
    const bytes = await readFile(logOf(root, 's'));
    bytes[20]! ^= 0x40;
    await writeFile(logOf(root, 's'), bytes);
    const seen: string[] = [];
    const s = await FileStorage.open({
      rootDir: root,
      clock,
      syncOnAppend: false,
      onQuarantine: (q) => seen.push(`${q.name}: ${q.reason}`),
    });
    opened.push(s);
    expect(s.quarantined()).toEqual([]);
    expect((await s.read('other', '-1')).messages.map(dec)).toEqual(['intact']);
    expect(await codeOf(s.read('s', '-1'))).toBe('CORRUPTED');
    expect(await codeOf(s.head('s'))).toBe('CORRUPTED');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(/^s: /);
    expect(s.quarantined().map((q) => [q.name, q.dir])).toEqual([['s', logOf(root, 's')]]);
    await s.close();
  });

  it("cuts a torn tail lazily, on the stream's first use", async () => {
    const root = await tempDir();
    await cp(base, root, { recursive: true });
    await truncate(logOf(root, 's'), lastEnd - 3);
    const s = await FileStorage.open({ rootDir: root, clock, syncOnAppend: false });
    opened.push(s);
    expect((await stat(logOf(root, 's'))).size).toBe(lastEnd - 3);
    expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['zero', 'one', 'two']);
    expect((await stat(logOf(root, 's'))).size).toBe(lastStart);
    await s.close();
  });

  it('refuses to open a root whose catalog snapshot is damaged', async () => {
    const root = await tempDir();
    await cp(base, root, { recursive: true });
    const cat = await readFile(join(root, 'catalog'));
    cat[cat.length - 10]! ^= 1;
    await writeFile(join(root, 'catalog'), cat);
    expect(await codeOf(FileStorage.open({ rootDir: root, clock, syncOnAppend: false }))).toBe('CORRUPTED');
  });
});

describe('reopen after every kind of operation', () => {
  it('restores exactly what was acknowledged', async () => {
    const root = await tempDir();
    const c = new ManualClock();
    let s = await open(root, c, true);
    const steps: [string, () => Promise<unknown>][] = [
      ['create', () => s.createStream('a', { contentType: 'text/plain' })],
      [
        'create with data, closed, ttl',
        () =>
          s.createStream('b', {
            contentType: 'application/json',
            messages: [enc('1'), enc('2')],
            ttlSeconds: 60,
          }),
      ],
      [
        'create closed with deadline',
        () => s.createStream('c', { contentType: 'x/y', closed: true, expiresAt: c.now() + 1e6 }),
      ],
      ['append', () => s.append('a', { messages: [enc('m1'), enc('')], contentType: 'text/plain' })],
      [
        'append with seq',
        () => s.append('a', { messages: [enc('m2')], contentType: 'text/plain', seq: '001' }),
      ],
      [
        'producer append',
        () =>
          s.appendWithProducer('a', {
            messages: [enc('p0')],
            contentType: 'text/plain',
            producer: { id: 'w', epoch: 2, seq: 0 },
          }),
      ],
      [
        'producer bump',
        () => s.appendWithProducer('a', { messages: [], producer: { id: 'w', epoch: 2, seq: 1 } }),
      ],
      [
        'read renews ttl',
        () => {
          c.advance(5000);
          return s.read('b', '-1');
        },
      ],
      ['fork', () => s.createFork('b2', { source: 'b', subOffset: 0 })],
      ['fork with sub-offset', () => s.createFork('b3', { source: 'b', offset: '-1', subOffset: 1 })],
      ['append to fork', () => s.append('b2', { messages: [enc('3')], contentType: 'application/json' })],
      ['soft delete', () => s.delete('b')],
      ['close', () => s.closeStream('a', { seq: '002' })],
      ['hard delete', () => s.delete('c')],
      [
        'expire and clean up',
        () => {
          c.advance(120_000);
          return s.cleanupExpiredStreams();
        },
      ],
    ];
    for (const [what, step] of steps) {
      await step();
      const before = await snapshot(s);
      const total = s.totalBytes();
      await s.close();
      s = await open(root, c, true);
      expect(await snapshot(s), what).toEqual(before);
      expect(s.totalBytes(), what).toBe(total);
    }
    // After the last step, the expired forks and their tombstoned source are gone; producer state survived.
    const dup = await s.appendWithProducer('a', {
      messages: [],
      close: true,
      producer: { id: 'w', epoch: 2, seq: 1 },
    });
    expect(dup.duplicate).toBe(true);
    expect(await codeOf(s.head('b'))).toBe('NOT_FOUND');
    await s.close();
  });
});
