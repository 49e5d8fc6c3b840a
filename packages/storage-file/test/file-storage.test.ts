import { codeOf } from '@streamkeep/storage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { dec, enc, type Fixture, fixture } from './helpers.js';

let f: Fixture;
afterEach(async () => {
  await f?.cleanup();
});

describe('FileStorage basics', () => {
  it('creates, appends, reads and survives reopen', async () => {
    f = await fixture();
    const s = f.storage;
    expect(await s.createStream('a/b/ünï', { contentType: 'text/plain', messages: [enc('x')] })).toEqual({
      created: true,
      nextOffset: '0000000000000001_0000000000000001',
      closed: false,
    });
    const r = await s.append('a/b/ünï', {
      messages: [enc('hello'), enc(''), enc('world')],
      contentType: 'text/plain',
    });
    expect(r.startOffset).toBe('0000000000000001_0000000000000001');
    expect(r.nextOffset).toBe('0000000000000004_000000000000000b');
    const read = await s.read('a/b/ünï', '-1');
    expect(read.messages.map(dec)).toEqual(['x', 'hello', '', 'world']);
    expect(read.upToDate).toBe(true);
    const part = await s.read('a/b/ünï', '-1', { maxBytes: 3 });
    expect(part.messages.map(dec)).toEqual(['x']);
    expect(part.upToDate).toBe(false);
    const mid = await s.read('a/b/ünï', part.nextOffset, { maxBytes: 5 });
    expect(mid.messages.map(dec)).toEqual(['hello', '']);
    await s.appendWithProducer('a/b/ünï', {
      messages: [enc('p')],
      contentType: 'text/plain',
      producer: { id: 'p1', epoch: 0, seq: 0 },
      seq: 'b',
    });
    await s.closeStream('a/b/ünï');
    const before = await s.head('a/b/ünï');
    const s2 = await f.reopen();
    expect(await s2.head('a/b/ünï')).toEqual(before);
    expect((await s2.read('a/b/ünï', '-1')).messages.map(dec)).toEqual(['x', 'hello', '', 'world', 'p']);
    const dup = await s2.appendWithProducer('a/b/ünï', {
      messages: [enc('p')],
      contentType: 'text/plain',
      producer: { id: 'p1', epoch: 0, seq: 0 },
    });
    expect(dup.duplicate).toBe(true);
    expect(s2.totalBytes()).toBe(12);
  });

  it('rejects by code and keeps state on rule errors', async () => {
    f = await fixture();
    const s = f.storage;
    expect(await codeOf(s.append('nope', { messages: [enc('x')], contentType: 'a/b' }))).toBe('NOT_FOUND');
    await s.createStream('s', { contentType: 'a/b' });
    expect(await codeOf(s.append('s', { messages: [enc('x')], contentType: 'c/d' }))).toBe(
      'CONTENT_TYPE_MISMATCH',
    );
    await s.append('s', { messages: [enc('x')], contentType: 'a/b', seq: '5' });
    expect(await codeOf(s.append('s', { messages: [enc('x')], contentType: 'a/b', seq: '4' }))).toBe(
      'SEQ_CONFLICT',
    );
    expect(await codeOf(s.createStream('s', { contentType: 'c/d' }))).toBe('CONFIG_MISMATCH');
    expect((await s.head('s')).messageCount).toBe(1);
  });

  it('forks read ancestors within bounds, soft delete and cascade survive reopen', async () => {
    f = await fixture();
    let s = f.storage;
    await s.createStream('src', { contentType: 'text/plain', messages: [enc('a'), enc('b')] });
    const parent = await s.createFork('parent', { source: 'src' });
    await s.append('parent', { messages: [enc('c')], contentType: 'text/plain' });
    await s.createFork('child', { source: 'parent', offset: '0000000000000001_0000000000000001' });
    expect((await s.read('child', '-1')).messages.map(dec)).toEqual(['a']);
    await s.append('child', { messages: [enc('d')], contentType: 'text/plain' });
    expect((await s.read('child', '0000000000000001_0000000000000001')).messages.map(dec)).toEqual(['d']);
    expect((await s.read('parent', '-1')).messages.map(dec)).toEqual(['a', 'b', 'c']);
    expect(parent.nextOffset).toBe('0000000000000002_0000000000000002');
    expect(await s.delete('src')).toEqual({ softDeleted: true });
    expect(await codeOf(s.head('src'))).toBe('GONE');
    s = await f.reopen();
    expect(await codeOf(s.head('src'))).toBe('GONE');
    expect(await codeOf(s.createStream('src', { contentType: 'text/plain' }))).toBe('PATH_BLOCKED');
    expect((await s.read('child', '-1')).messages.map(dec)).toEqual(['a', 'd']);
    expect(await s.delete('child')).toEqual({ softDeleted: false });
    expect(await s.delete('parent')).toEqual({ softDeleted: false });
    expect(await codeOf(s.head('src'))).toBe('NOT_FOUND');
    s = await f.reopen();
    expect(await s.listStreams()).toEqual([]);
    expect(s.totalBytes()).toBe(0);
  });

  it('recovers logs spanning several scan windows, with records larger than a window', async () => {
    f = await fixture();
    let s = f.storage;
    await s.createStream('big', { contentType: 'application/octet-stream' });
    const expected: number[] = [];
    // Small records up to just past the first 8 MiB window, one 9 MiB record, then small ones again.
    const small = new Uint8Array(1000);
    for (let i = 0; i < 8600; i += 100) {
      const batch = Array.from({ length: 100 }, (_, k) => small.fill((i + k) & 0xff).slice());
      await s.append('big', { messages: batch, contentType: 'application/octet-stream' });
      for (let k = 0; k < 100; k++) expected.push(1000);
    }
    await s.append('big', {
      messages: [new Uint8Array(9 << 20).fill(9)],
      contentType: 'application/octet-stream',
    });
    expected.push(9 << 20);
    for (let i = 0; i < 300; i++) {
      await s.append('big', {
        messages: [small.fill(i & 0xff).slice()],
        contentType: 'application/octet-stream',
      });
      expected.push(1000);
    }
    const head = await s.head('big');
    s = await f.reopen();
    expect(s.recovery.truncated).toEqual([]);
    expect(s.quarantined()).toEqual([]);
    expect(await s.head('big')).toEqual(head);
    const all = (await s.read('big', '-1')).messages;
    expect(all.map((m) => m.byteLength)).toEqual(expected);
    expect(all[8599]![0]).toBe(8599 & 0xff);
    expect(all[8600]!.every((b) => b === 9)).toBe(true);
    expect(all[8601]![0]).toBe(0);
    expect(all[8900]![999]).toBe(299 & 0xff);
  });

  it('sub-offsets copy a prefix', async () => {
    f = await fixture();
    const s = f.storage;
    await s.createStream('j', { contentType: 'application/json', messages: [enc('1'), enc('2'), enc('3')] });
    await s.createFork('jf', { source: 'j', offset: '-1', subOffset: 2 });
    expect((await s.read('jf', '-1')).messages.map(dec)).toEqual(['1', '2']);
    await s.createStream('t', { contentType: 'text/plain', messages: [enc('hello')] });
    await s.createFork('tf', { source: 't', offset: '-1', subOffset: 3 });
    expect((await s.read('tf', '-1')).messages.map(dec)).toEqual(['hel']);
    expect(await codeOf(s.createFork('tf2', { source: 't', offset: '-1', subOffset: 6 }))).toBe(
      'FORK_SUB_OFFSET_OUT_OF_RANGE',
    );
  });

  it('answers arguments of the wrong type with TypeError before any lookup, and changes nothing', async () => {
    f = await fixture();
    const s = f.storage;
    await s.createStream('a', { contentType: 'text/plain', messages: [enc('x')] });
    const before = await s.head('a');
    await expect(
      s.append('a', { messages: [enc('y')], contentType: 'text/plain', seq: null as never }),
    ).rejects.toThrow(TypeError);
    await expect(s.append('missing', { messages: 'y' as never })).rejects.toThrow(TypeError);
    await expect(s.closeStream('a', { seq: 1 as never })).rejects.toThrow(TypeError);
    await expect(s.createFork('f', { source: 'a', subOffset: '1' as never })).rejects.toThrow(TypeError);
    await expect(s.read('a', '-1', { maxBytes: -1 })).rejects.toThrow(RangeError);
    expect(await codeOf(s.exists(''))).toBe('INVALID_STREAM_NAME');
    expect(await s.head('a')).toEqual(before);
    expect((await s.read('a', '-1')).messages.map(dec)).toEqual(['x']);
  });

  it('TTL renewals by reads survive reopen; cleanup removes expired streams', async () => {
    f = await fixture();
    let s = f.storage;
    await s.createStream('ttl', { contentType: 'text/plain', ttlSeconds: 10 });
    f.clock.advance(5000);
    await s.read('ttl', 'now');
    const head = await s.head('ttl');
    s = await f.reopen();
    expect((await s.head('ttl')).config.expiresAt).toBe(head.config.expiresAt);
    f.clock.advance(10_000);
    expect(await codeOf(s.head('ttl'))).toBe('EXPIRED');
    expect(await s.cleanupExpiredStreams()).toBe(1);
    expect(await codeOf(s.head('ttl'))).toBe('NOT_FOUND');
  });

  it('groups concurrent appends and keeps call order', async () => {
    f = await fixture({ syncOnAppend: true });
    const s = f.storage;
    await s.createStream('g', { contentType: 'text/plain' });
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        s.append('g', { messages: [enc(String(i))], contentType: 'text/plain' }),
      ),
    );
    results.forEach((r, i) => {
      expect(r.startOffset.startsWith(i.toString(16).padStart(16, '0'))).toBe(true);
    });
    const s2 = await f.reopen();
    expect((await s2.read('g', '-1')).messages.map(dec)).toEqual(
      Array.from({ length: 200 }, (_, i) => String(i)),
    );
  });

  it('reports every applied commit to onCommit, grouped as written; a throwing observer fails nothing', async () => {
    const reports: { entries: number; bytes: number; syncMs: number }[] = [];
    f = await fixture({ syncOnAppend: true, onCommit: (r) => reports.push(r) });
    const s = f.storage;
    await s.createStream('g', { contentType: 'text/plain' });
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        s.append('g', { messages: [enc(String(i % 10))], contentType: 'text/plain' }),
      ),
    );
    const producer = { id: 'p', epoch: 0, seq: 0 };
    await s.appendWithProducer('g', { messages: [enc('dup')], contentType: 'text/plain', producer });
    await s.appendWithProducer('g', { messages: [enc('dup')], contentType: 'text/plain', producer });
    expect(await codeOf(s.append('g', { messages: [enc('x')], contentType: 'application/json' }))).toBe(
      'CONTENT_TYPE_MISMATCH',
    );
    // 101 commits applied (the duplicate and the refusal are not), in groups of one or more.
    expect(reports.reduce((n, r) => n + r.entries, 0)).toBe(101);
    expect(reports.reduce((n, r) => n + r.bytes, 0)).toBe(103);
    for (const r of reports) {
      expect(r.entries).toBeGreaterThanOrEqual(1);
      expect(r.syncMs).toBeGreaterThanOrEqual(0);
    }
    await f.cleanup();
    f = await fixture({
      onCommit: () => {
        throw new Error('observer failure');
      },
    });
    await f.storage.createStream('h', { contentType: 'text/plain' });
    await f.storage.append('h', { messages: [enc('x')], contentType: 'text/plain' });
    expect((await f.storage.read('h', '-1')).messages.map(dec)).toEqual(['x']);
  });

  it('locks the root', async () => {
    f = await fixture();
    const { FileStorage } = await import('../src/index.js');
    expect(await codeOf(FileStorage.open({ rootDir: f.dir }))).toBe('UNAVAILABLE');
  });
});
