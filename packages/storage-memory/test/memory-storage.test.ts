import { type Storage, ZERO_OFFSET } from '@streamkeep/storage';
import { codeOf, expectCode, ManualClock } from '@streamkeep/storage/testing';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../src/index.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (m: readonly Uint8Array[]) => m.map((b) => new TextDecoder().decode(b));
const T = 'text/plain';

async function readAll(s: Storage, name: string) {
  return dec((await s.read(name, '-1')).messages);
}

describe('MemoryStorage', () => {
  it('creates idempotently and refuses a different config', async () => {
    const s = new MemoryStorage();
    expect((await s.createStream('a', { contentType: T })).created).toBe(true);
    expect((await s.createStream('a', { contentType: 'TEXT/PLAIN; charset=utf-8' })).created).toBe(false);
    expect(await codeOf(s.createStream('a', { contentType: 'application/json' }))).toBe('CONFIG_MISMATCH');
    expect(await codeOf(s.createStream('a', { contentType: T, closed: true }))).toBe('CONFIG_MISMATCH');
  });

  it('matches re-creation against the current closure (protocol §5.1)', async () => {
    const s = new MemoryStorage();
    await s.createStream('a', { contentType: T });
    await s.closeStream('a');
    expect(await codeOf(s.createStream('a', { contentType: T }))).toBe('CONFIG_MISMATCH');
    expect(await s.createStream('a', { contentType: T, closed: true })).toMatchObject({
      created: false,
      closed: true,
    });
    await s.createStream('b', { contentType: T, closed: true });
    expect((await s.createStream('b', { contentType: T, closed: true })).created).toBe(false);
    expect(await codeOf(s.createStream('b', { contentType: T }))).toBe('CONFIG_MISMATCH');
  });

  it('ignores the body of an idempotent create-with-data', async () => {
    const s = new MemoryStorage();
    await s.createStream('a', { contentType: T, messages: [enc('one')] });
    const again = await s.createStream('a', { contentType: T, messages: [enc('two')], closed: false });
    expect(again).toEqual({ created: false, nextOffset: '0000000000000001_0000000000000003', closed: false });
    expect(await readAll(s, 'a')).toEqual(['one']);
  });

  it('assigns monotonic offsets, reads suffixes and rounds mid-message offsets up', async () => {
    const s = new MemoryStorage();
    await s.createStream('a', { contentType: T });
    const r1 = await s.append('a', { messages: [enc('data')], contentType: T });
    expect(r1.nextOffset).toBe('0000000000000001_0000000000000004');
    const r2 = await s.append('a', { messages: [enc('xy'), enc('')], contentType: T });
    expect(r2.startOffset).toBe(r1.nextOffset);
    expect(dec((await s.read('a', r1.nextOffset)).messages)).toEqual(['xy', '']);
    expect(dec((await s.read('a', '0000000000000000_0000000000000001')).messages)).toEqual(['xy', '']);
    const now = await s.read('a', 'now');
    expect(now).toEqual({ messages: [], nextOffset: r2.nextOffset, upToDate: true, closed: false });
    expect((await s.read('a', '0000000000000009_0000000000000000')).messages).toEqual([]);
  });

  it('splits reads by byte budget without losing or repeating a message', async () => {
    const s = new MemoryStorage();
    await s.createStream('a', { contentType: T, messages: ['aaa', 'bb', 'c', 'dddd'].map(enc) });
    const seen: string[] = [];
    let from = '-1';
    for (;;) {
      const r = await s.read('a', from, { maxBytes: 3 });
      seen.push(...dec(r.messages));
      from = r.nextOffset;
      if (r.upToDate) break;
    }
    expect(seen).toEqual(['aaa', 'bb', 'c', 'dddd']);
  });

  it('closes atomically with an append, keeps data readable and rejects later appends', async () => {
    const s = new MemoryStorage();
    await s.createStream('a', { contentType: T });
    const r = await s.append('a', { messages: [enc('data')], contentType: T, close: true });
    expect(r.closed).toBe(true);
    const err = await expectCode(s.append('a', { messages: [enc('x')], contentType: T }), 'STREAM_CLOSED');
    expect(err.details.nextOffset).toBe('0000000000000001_0000000000000004');
    expect((await s.closeStream('a')).closed).toBe(true);
    expect(await s.read('a', '-1')).toMatchObject({ upToDate: true, closed: true });
  });

  it('applies limits globally first and leaves nothing behind on failure', async () => {
    const s = new MemoryStorage({ maxTotalBytes: 100, maxStreamBytes: 50 });
    await s.createStream('a', { contentType: T, messages: [new Uint8Array(50)] });
    expect(await codeOf(s.append('a', { messages: [new Uint8Array(10)], contentType: T, seq: 'x' }))).toBe(
      'STREAM_LIMIT_EXCEEDED',
    );
    await s.createStream('b', { contentType: T, messages: [new Uint8Array(40)] });
    expect(await codeOf(s.append('b', { messages: [new Uint8Array(20)], contentType: T }))).toBe(
      'STORAGE_LIMIT_EXCEEDED',
    );
    expect(await codeOf(s.createStream('c', { contentType: T, messages: [new Uint8Array(20)] }))).toBe(
      'STORAGE_LIMIT_EXCEEDED',
    );
    expect(await s.exists('c')).toBe(false);
    expect(s.totalBytes()).toBe(90);
    // The failed commit's Stream-Seq is still usable.
    await s.delete('b');
    await s.createStream('d', { contentType: T });
    expect(await codeOf(s.append('a', { messages: [], close: true, seq: 'x' }))).toBeUndefined();
  });

  it('answers NOT_FOUND for every operation on a missing stream', async () => {
    const s = new MemoryStorage();
    expect(await codeOf(s.append('x', { messages: [enc('a')], contentType: T }))).toBe('NOT_FOUND');
    expect(await codeOf(s.read('x', '-1'))).toBe('NOT_FOUND');
    expect(await codeOf(s.head('x'))).toBe('NOT_FOUND');
    expect(await codeOf(s.closeStream('x'))).toBe('NOT_FOUND');
    expect(await codeOf(s.delete('x'))).toBe('NOT_FOUND');
    expect(await codeOf(s.subscribe('x', () => {}))).toBe('NOT_FOUND');
    expect(await s.exists('x')).toBe(false);
  });

  it('expires lazily, renews sliding TTLs on use, and lets create replace an expired stream', async () => {
    const clock = new ManualClock();
    const s = new MemoryStorage({ clock });
    await s.createStream('a', { contentType: T, ttlSeconds: 10 });
    clock.advance(9_000);
    await s.read('a', 'now');
    clock.advance(9_000);
    expect((await s.head('a')).config.expiresAt).toBe(clock.now() + 1_000);
    clock.advance(1_000);
    expect(await codeOf(s.head('a'))).toBe('EXPIRED');
    expect(await s.exists('a')).toBe(false);
    expect((await s.createStream('a', { contentType: T })).created).toBe(true);
  });

  it('keeps an expired stream when the create that would replace it is rejected', async () => {
    const clock = new ManualClock();
    const s = new MemoryStorage({ clock, maxStreamBytes: 4 });
    await s.createStream('a', { contentType: T, ttlSeconds: 1, messages: [enc('abc')] });
    clock.advance(1_000);
    expect(await codeOf(s.createStream('a', { contentType: T, messages: [new Uint8Array(5)] }))).toBe(
      'STREAM_LIMIT_EXCEEDED',
    );
    expect(await codeOf(s.head('a'))).toBe('EXPIRED');
    expect(s.totalBytes()).toBe(3);
    expect((await s.createStream('a', { contentType: T, messages: [enc('xy')] })).created).toBe(true);
    expect(s.totalBytes()).toBe(2);
  });

  it('soft-deletes a forked source and cascades when the last fork goes', async () => {
    const s = new MemoryStorage();
    await s.createStream('src', { contentType: T, messages: [enc('a'), enc('b')] });
    await s.createFork('f', { source: 'src' });
    expect(await s.delete('src')).toEqual({ softDeleted: true });
    expect(await codeOf(s.head('src'))).toBe('GONE');
    expect(await codeOf(s.delete('src'))).toBe('GONE');
    expect(await codeOf(s.createStream('src', { contentType: T }))).toBe('PATH_BLOCKED');
    expect(await codeOf(s.createFork('g', { source: 'src' }))).toBe('FORK_FROM_TOMBSTONE');
    expect(await readAll(s, 'f')).toEqual(['a', 'b']);
    expect(await s.delete('f')).toEqual({ softDeleted: false });
    expect((await s.createStream('src', { contentType: T })).created).toBe(true);
    expect(await readAll(s, 'src')).toEqual([]);
    expect(s.totalBytes()).toBe(0);
  });

  it('bounds nested fork reads by every fork offset below', async () => {
    const s = new MemoryStorage();
    await s.createStream('src', { contentType: T, messages: [enc('a'), enc('b')] });
    await s.createFork('parent', { source: 'src' });
    await s.append('parent', { messages: [enc('c')], contentType: T });
    const between = '0000000000000001_0000000000000001';
    await s.createFork('child', { source: 'parent', offset: between });
    expect(await readAll(s, 'child')).toEqual(['a']);
    await s.append('child', { messages: [enc('d')], contentType: T });
    expect(dec((await s.read('child', between)).messages)).toEqual(['d']);
    expect(await readAll(s, 'parent')).toEqual(['a', 'b', 'c']);
  });

  it('checks fork requests and makes them idempotent only for the same lineage', async () => {
    const s = new MemoryStorage();
    await s.createStream('src', { contentType: 'application/json', messages: ['1', '2', '3'].map(enc) });
    await s.createStream('other', { contentType: 'application/json' });
    expect(await codeOf(s.createFork('f', { source: 'nope' }))).toBe('NOT_FOUND');
    expect(
      await codeOf(s.createFork('f', { source: 'src', offset: '9999999999999999_9999999999999999' })),
    ).toBe('FORK_OFFSET_BEYOND_TAIL');
    expect(
      await codeOf(s.createFork('f', { source: 'src', offset: '0000000000000001_0020000000000001' })),
    ).toBe('FORK_OFFSET_BEYOND_TAIL');
    expect(await codeOf(s.createFork('f', { source: 'src', contentType: T }))).toBe('CONTENT_TYPE_MISMATCH');
    expect(await codeOf(s.createFork('f', { source: 'src', offset: ZERO_OFFSET, subOffset: 4 }))).toBe(
      'FORK_SUB_OFFSET_OUT_OF_RANGE',
    );
    const f = await s.createFork('f', {
      source: 'src',
      offset: ZERO_OFFSET,
      subOffset: 2,
      messages: [enc('9')],
    });
    expect(f.created).toBe(true);
    expect(await readAll(s, 'f')).toEqual(['1', '2', '9']);
    expect((await s.head('f')).totalBytes).toBe(3);
    expect((await s.createFork('f', { source: 'src', offset: ZERO_OFFSET, subOffset: 2 })).created).toBe(
      false,
    );
    expect(await codeOf(s.createFork('f', { source: 'other', offset: ZERO_OFFSET }))).toBe('CONFIG_MISMATCH');
    expect(await codeOf(s.createFork('f', { source: 'src', offset: '-1' }))).toBe('CONFIG_MISMATCH');
  });

  it('turns expired referenced streams into tombstones on clean-up', async () => {
    const clock = new ManualClock();
    const s = new MemoryStorage({ clock });
    await s.createStream('src', { contentType: T, expiresAt: clock.now() + 300, messages: [enc('m')] });
    await s.createStream('lone', { contentType: T, ttlSeconds: 0 });
    await s.createFork('f', { source: 'src', expiresAt: clock.now() + 10_000 });
    clock.advance(300);
    expect(await codeOf(s.head('src'))).toBe('EXPIRED');
    expect(await s.cleanupExpiredStreams()).toBe(2);
    expect(await codeOf(s.head('src'))).toBe('GONE');
    expect(await codeOf(s.head('lone'))).toBe('NOT_FOUND');
    expect(await codeOf(s.createStream('src', { contentType: T }))).toBe('PATH_BLOCKED');
    expect(await readAll(s, 'f')).toEqual(['m']);
    expect(await s.cleanupExpiredStreams()).toBe(0);
  });

  it('keeps producers idempotent, fenced and independent', async () => {
    const s = new MemoryStorage();
    await s.createStream('a', { contentType: T });
    const p = (id: string, epoch: number, seq: number, close = false) =>
      s.appendWithProducer('a', {
        messages: [enc(`${id}${seq}`)],
        contentType: T,
        producer: { id, epoch, seq },
        close,
      });
    expect((await p('p1', 0, 0)).duplicate).toBe(false);
    expect(await p('p1', 0, 0)).toMatchObject({ duplicate: true, epoch: 0, seq: 0 });
    expect((await p('p2', 5, 0)).duplicate).toBe(false);
    expect((await p('p1', 0, 1, true)).closed).toBe(true);
    expect(await p('p1', 0, 1)).toMatchObject({ duplicate: true, closed: true });
    expect(await codeOf(p('p2', 5, 3))).toBe('STREAM_CLOSED');
    expect(await readAll(s, 'a')).toEqual(['p10', 'p20', 'p11']);
  });

  it('wakes only the subscribers of the stream that changed, after the change is readable', async () => {
    const s = new MemoryStorage();
    await s.createStream('a', { contentType: T });
    await s.createStream('b', { contentType: T });
    const seen: string[] = [];
    const sub = await s.subscribe('a', () => {
      void s.read('a', '-1').then((r) => seen.push(...dec(r.messages)));
    });
    let bHints = 0;
    await s.subscribe('b', () => bHints++);
    await s.append('a', { messages: [enc('x')], contentType: T });
    await new Promise((r) => setTimeout(r, 0));
    expect(seen).toEqual(['x']);
    expect(bHints).toBe(0);
    sub.unsubscribe();
    await s.append('a', { messages: [enc('y')], contentType: T });
    await new Promise((r) => setTimeout(r, 0));
    expect(seen).toEqual(['x']);
  });

  it('gives concurrent appenders unique, strictly increasing offsets', async () => {
    const s = new MemoryStorage();
    await s.createStream('a', { contentType: T });
    const results = await Promise.all(
      Array.from({ length: 80 }, (_, i) => s.append('a', { messages: [enc(String(i))], contentType: T })),
    );
    const starts = results.map((r) => r.startOffset);
    expect(new Set(starts).size).toBe(80);
    expect([...starts].sort()).toEqual(starts);
  });

  it('lists visible streams in UTF-8 order with paging', async () => {
    const s = new MemoryStorage();
    for (const n of ['b', '\u{1F600}', '\uFFFD', 'a/x', 'a/y']) await s.createStream(n, { contentType: T });
    expect((await s.listStreams()).map((m) => m.name)).toEqual(['a/x', 'a/y', 'b', '\uFFFD', '\u{1F600}']);
    expect((await s.listStreams({ prefix: 'a/', after: 'a/x' })).map((m) => m.name)).toEqual(['a/y']);
    expect((await s.listStreams({ limit: 1 })).map((m) => m.name)).toEqual(['a/x']);
  });

  it('answers invalid arguments as the contract decides, whatever the state, and changes nothing', async () => {
    const s = new MemoryStorage();
    await s.createStream('a', { contentType: T, ttlSeconds: 60, messages: [enc('x')] });
    const before = await s.head('a');
    for (const name of ['', 'a\uD800']) {
      expect(await codeOf(s.head(name))).toBe('INVALID_STREAM_NAME');
      expect(await codeOf(s.exists(name))).toBe('INVALID_STREAM_NAME');
      expect(await codeOf(s.read(name, '-1'))).toBe('INVALID_STREAM_NAME');
      expect(await codeOf(s.append(name, { messages: [enc('y')], contentType: T }))).toBe(
        'INVALID_STREAM_NAME',
      );
      expect(await codeOf(s.delete(name))).toBe('INVALID_STREAM_NAME');
      expect(await codeOf(s.subscribe(name, () => {}))).toBe('INVALID_STREAM_NAME');
      expect(await codeOf(s.createFork('f', { source: name }))).toBe('INVALID_STREAM_NAME');
    }
    await expect(s.read('a', '-1', { maxBytes: Number.NaN })).rejects.toThrow(RangeError);
    await expect(s.read('missing', '-1', { maxBytes: -1 })).rejects.toThrow(RangeError);
    await expect(s.listStreams({ limit: -1 })).rejects.toThrow(RangeError);
    await expect(s.listStreams({ limit: 1.5 })).rejects.toThrow(RangeError);
    await expect(s.append('a', { messages: 'x' as never })).rejects.toThrow(TypeError);
    await expect(s.subscribe('a', null as never)).rejects.toThrow(TypeError);
    expect(await s.head('a')).toEqual(before);
    expect(await readAll(s, 'a')).toEqual(['x']);
  });

  it('refuses every call after close', async () => {
    const s = new MemoryStorage();
    await s.createStream('a', { contentType: T });
    await s.close();
    await s.close();
    expect(await codeOf(s.head('a'))).toBe('STORAGE_CLOSED');
  });
});

describe('onCommit', () => {
  it('reports each applied commit (not duplicates or refusals), and an observer that throws fails nothing', async () => {
    const reports: { entries: number; bytes: number; syncMs: number }[] = [];
    const s = new MemoryStorage({ onCommit: (r) => reports.push(r) });
    await s.createStream('a', { contentType: T });
    await s.append('a', { messages: [enc('xy'), enc('z')], contentType: T });
    const producer = { id: 'p', epoch: 0, seq: 0 };
    await s.appendWithProducer('a', { messages: [enc('q')], contentType: T, producer });
    await s.appendWithProducer('a', { messages: [enc('q')], contentType: T, producer });
    await expect(s.append('a', { messages: [enc('x')], contentType: 'application/json' })).rejects.toThrow();
    expect(reports).toEqual([
      { entries: 1, bytes: 3, syncMs: 0 },
      { entries: 1, bytes: 1, syncMs: 0 },
    ]);
    const failing = new MemoryStorage({
      onCommit: () => {
        throw new Error('observer failure');
      },
    });
    await failing.createStream('b', { contentType: T });
    await expect(failing.append('b', { messages: [enc('x')], contentType: T })).resolves.toBeDefined();
    expect(dec((await failing.read('b', ZERO_OFFSET)).messages)).toEqual(['x']);
  });
});
