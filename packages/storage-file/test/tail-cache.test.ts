import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isStorageError } from '@streamkeep/storage';
import { codeOf } from '@streamkeep/storage-conformance/helpers';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { FileStorage, type FileStorageOptions } from '../src/index.js';
import { MessageIndex } from '../src/message-index.js';
import { CHUNK_OVERHEAD, StreamTail, TailCache } from '../src/tail-cache.js';
import { FaultyFs } from './faulty-fs.js';
import { dec, enc, ManualClock } from './helpers.js';

const SEED = 20261125;

/** A stream as the cache sees it: its index, its cached tail, and every message appended (the truth). */
class Stream {
  readonly index = new MessageIndex();
  readonly tail = new StreamTail();
  readonly all: Uint8Array[] = [];
  private cum = 0;

  append(cache: TailCache, messages: Uint8Array[]): void {
    cache.add(this.tail, this.index.count, this.cum, messages);
    for (const m of messages) {
      this.cum += m.byteLength;
      this.index.push(0, this.cum);
      this.all.push(Uint8Array.from(m));
    }
  }
}

const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill & 0xff);
/** Byte content only (cache hits are Buffers, the truth Uint8Arrays). */
const hex = (xs: readonly Uint8Array[] | undefined): string[] | undefined =>
  xs?.map((m) => Buffer.from(m.buffer, m.byteOffset, m.byteLength).toString('hex'));

describe('TailCache', () => {
  it('serves exactly the cached suffix and nothing outside it', () => {
    const cache = new TailCache(1 << 20, 1 << 20);
    const s = new Stream();
    for (let k = 0; k < 60; k++) s.append(cache, [bytes((k * 37) % 300, k), bytes(k % 3, k + 1)]);
    expect(s.tail.first).toBe(0);
    expect(s.tail.end).toBe(120);
    for (let i = 0; i < 120; i += 7) {
      for (let j = i + 1; j <= 120; j += 11) {
        expect(hex(cache.get(s.tail, s.index, i, j))).toEqual(hex(s.all.slice(i, j)));
      }
    }
    expect(cache.get(s.tail, s.index, 0, 121)).toBeUndefined();
    expect(cache.get(s.tail, s.index, 5, 5)).toBeUndefined();
  });

  it('keeps each stream within its own budget, dropping its oldest messages', () => {
    const cache = new TailCache(1 << 20, 2000);
    const s = new Stream();
    // What reads returned must stay intact while the chunks behind them are evicted and their buffers reused.
    const served: [number, Uint8Array[]][] = [];
    for (let k = 0; k < 200; k++) {
      s.append(cache, [bytes(100, k)]);
      served.push([k, cache.get(s.tail, s.index, k, k + 1)!]);
      expect(s.tail.bytes).toBeLessThanOrEqual(2000);
      expect(s.tail.end).toBe(k + 1);
      expect(hex(cache.get(s.tail, s.index, s.tail.first, k + 1))).toEqual(hex(s.all.slice(s.tail.first)));
    }
    for (const [k, got] of served) expect(hex(got)).toEqual(hex([s.all[k]!]));
    expect(s.tail.first).toBeGreaterThan(150);
    expect(cache.get(s.tail, s.index, s.tail.first - 1, 200)).toBeUndefined();
    expect(cache.bytes).toBe(s.tail.bytes);
  });

  it('over the global budget, evicts the least recently appended stream first, oldest chunk first', () => {
    // Per-stream budget 8 KiB: first chunks hold 1 KiB and cost 1 KiB + overhead.
    const chunk = 1024 + CHUNK_OVERHEAD;
    const cache = new TailCache(3 * chunk, 8192);
    const [a, b, c] = [new Stream(), new Stream(), new Stream()];
    a.append(cache, [bytes(100, 1)]);
    b.append(cache, [bytes(100, 2)]);
    c.append(cache, [bytes(100, 3)]);
    expect(cache.bytes).toBe(3 * chunk);
    expect(cache.streams).toBe(3);
    // A's second message does not fit its first chunk: a 2 KiB chunk; B, then C (least recently appended) go.
    a.append(cache, [bytes(1000, 4)]);
    expect(cache.get(b.tail, b.index, 0, 1)).toBeUndefined();
    expect(cache.get(c.tail, c.index, 0, 1)).toBeUndefined();
    expect(hex(cache.get(a.tail, a.index, 0, 2))).toEqual(hex(a.all));
    expect(cache.bytes).toBe(chunk + 2048 + CHUNK_OVERHEAD);
    // B appends: now A is the least recently appended and loses its oldest chunk only.
    b.append(cache, [bytes(100, 5)]);
    expect(cache.get(a.tail, a.index, 0, 2)).toBeUndefined();
    expect(hex(cache.get(a.tail, a.index, 1, 2))).toEqual(hex(a.all.slice(1)));
    expect(hex(cache.get(b.tail, b.index, 1, 2))).toEqual(hex(b.all.slice(1)));
    expect(cache.get(b.tail, b.index, 0, 2)).toBeUndefined();
    expect(cache.bytes).toBeLessThanOrEqual(3 * chunk);
  });

  it('does not cache a message larger than the per-stream budget, and restarts after it', () => {
    const cache = new TailCache(1 << 20, 4096);
    const s = new Stream();
    s.append(cache, [bytes(10, 1), bytes(5000, 2), bytes(20, 3)]);
    expect(s.tail.first).toBe(2);
    expect(hex(cache.get(s.tail, s.index, 2, 3))).toEqual(hex([s.all[2]!]));
    expect(cache.get(s.tail, s.index, 1, 3)).toBeUndefined();
    // A gap (messages committed without passing through the cache) restarts the suffix too.
    s.index.push(0, s.index.endOf(2) + 7);
    s.all.push(bytes(7, 9));
    cache.add(s.tail, 4, s.index.endOf(3), [bytes(3, 4)]);
    s.index.push(0, s.index.endOf(3) + 3);
    s.all.push(bytes(3, 4));
    expect(s.tail.first).toBe(4);
    expect(hex(cache.get(s.tail, s.index, 4, 5))).toEqual(hex([s.all[4]!]));
    cache.clear(s.tail);
    expect(cache.bytes).toBe(0);
    expect(cache.get(s.tail, s.index, 4, 5)).toBeUndefined();
  });

  it('law: within both budgets, and every hit equals the messages appended', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 20_000 }),
        fc.integer({ min: 0, max: 6000 }),
        fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: 3 }),
            fc.array(fc.integer({ min: 0, max: 900 }), { maxLength: 4 }),
            fc.nat(),
            fc.nat(),
          ),
          { maxLength: 60 },
        ),
        (maxBytes, maxStream, ops) => {
          const cache = new TailCache(maxBytes, Math.min(maxBytes, maxStream));
          const streams = [new Stream(), new Stream(), new Stream(), new Stream()];
          let n = 0;
          for (const [k, sizes, x, y] of ops) {
            const s = streams[k]!;
            s.append(
              cache,
              sizes.map((len) => bytes(len, n++)),
            );
            expect(cache.bytes).toBeLessThanOrEqual(maxBytes);
            expect(s.tail.bytes).toBeLessThanOrEqual(maxStream);
            expect(streams.reduce((sum, t) => sum + t.tail.bytes, 0)).toBe(cache.bytes);
            for (const t of streams) {
              const count = t.index.count;
              if (count === 0) continue;
              const i = x % count;
              const j = i + 1 + (y % (count - i));
              const hit = cache.get(t.tail, t.index, i, j);
              if (hit !== undefined) expect(hex(hit)).toEqual(hex(t.all.slice(i, j)));
              if (!t.tail.empty) expect(t.tail.end).toBe(count);
            }
          }
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// FileStorage with the cache
// ---------------------------------------------------------------------------------------------------------------

const TEXT = 'text/plain';
const dirs: string[] = [];
const open: FileStorage[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true, maxRetries: 5 });
});

async function storage(options: Partial<FileStorageOptions> = {}, dir?: string) {
  const rootDir = dir ?? (await mkdtemp(join(tmpdir(), 'sk-file-cache-')));
  if (dir === undefined) dirs.push(rootDir);
  const fs = new FaultyFs();
  const s = await FileStorage.open({
    rootDir,
    clock: new ManualClock(),
    syncOnAppend: false,
    fileSystem: fs,
    ...options,
  });
  open.push(s);
  return { s, fs, rootDir };
}

describe('FileStorage tail cache', () => {
  it('serves reads of the tail, of forks and of their ancestors without reading the log', async () => {
    for (const [cacheBytes, cached] of [
      [undefined, true],
      [0, false],
    ] as const) {
      const { s, fs } = await storage({ tailCacheBytes: cacheBytes });
      await s.createStream('s', { contentType: TEXT });
      const first = await s.append('s', { messages: [enc('a'), enc('b')], contentType: TEXT });
      await s.append('s', { messages: [enc('c')], contentType: TEXT });
      await s.createFork('f', { source: 's', offset: first.nextOffset });
      await s.append('f', { messages: [enc('d')], contentType: TEXT });
      const reads = fs.reads;
      expect((await s.read('s', first.nextOffset)).messages.map(dec)).toEqual(['c']);
      expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['a', 'b', 'c']);
      expect((await s.read('f', '-1')).messages.map(dec)).toEqual(['a', 'b', 'd']);
      if (cached) {
        expect(fs.reads).toBe(reads);
        expect(s.tailCacheBytes()).toBeGreaterThan(0);
      } else {
        expect(fs.reads).toBeGreaterThanOrEqual(reads + 3);
        expect(s.tailCacheBytes()).toBe(0);
      }
    }
  });

  it.each([
    ['EIO', 'INTERNAL', true],
    ['ENOSPC', 'INSUFFICIENT_STORAGE', false],
  ])(
    'a failed inline write (%s) leaves nothing cached and nothing readable',
    async (code, expected, partial) => {
      for (const syncOnAppend of [false, true]) {
        const { s, fs } = await storage({ syncOnAppend });
        await s.createStream('s', { contentType: TEXT });
        const ok = await s.append('s', { messages: [enc('kept')], contentType: TEXT });
        const cachedBytes = s.tailCacheBytes();
        const syncWrites = fs.syncWrites;
        fs.fail('writev', code, 1, partial);
        expect(await codeOf(s.append('s', { messages: [enc('lost'.repeat(400))], contentType: TEXT }))).toBe(
          expected,
        );
        expect(s.tailCacheBytes()).toBe(cachedBytes);
        expect((await s.read('s', ok.nextOffset)).messages).toEqual([]);
        expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['kept']);
        const next = await s.append('s', { messages: [enc('next')], contentType: TEXT });
        expect(next.startOffset).toBe(ok.nextOffset);
        expect(fs.syncWrites).toBeGreaterThan(syncWrites);
        const reads = fs.reads;
        expect((await s.read('s', ok.nextOffset)).messages.map(dec)).toEqual(['next']);
        expect(fs.reads).toBe(reads);
      }
    },
  );

  it('forgets deleted streams; a re-created stream serves only its own messages; reopen starts empty', async () => {
    const { s, rootDir } = await storage();
    await s.createStream('s', { contentType: TEXT });
    await s.append('s', { messages: [enc('old-1'), enc('old-2')], contentType: TEXT });
    expect(s.tailCacheBytes()).toBeGreaterThan(0);
    await s.delete('s');
    expect(s.tailCacheBytes()).toBe(0);
    await s.createStream('s', { contentType: TEXT });
    await s.append('s', { messages: [enc('new')], contentType: TEXT });
    expect((await s.read('s', '-1')).messages.map(dec)).toEqual(['new']);
    // A tombstoned source keeps serving its forks.
    await s.createFork('f', { source: 's' });
    await s.delete('s');
    expect((await s.read('f', '-1')).messages.map(dec)).toEqual(['new']);
    await s.close();
    open.splice(open.indexOf(s), 1);
    const { s: again } = await storage({}, rootDir);
    expect(again.tailCacheBytes()).toBe(0);
    expect((await again.read('f', '-1')).messages.map(dec)).toEqual(['new']);
  });

  it('law: reads are identical with the cache off, tiny and at its default size', async () => {
    const name = fc.constantFrom('a', 'b', 'c', 'd');
    const op = fc.oneof(
      { arbitrary: fc.record({ t: fc.constant('create' as const), name }), weight: 2 },
      {
        arbitrary: fc.record({
          t: fc.constant('append' as const),
          name,
          sizes: fc.array(fc.oneof(fc.integer({ min: 0, max: 200 }), fc.constant(3000)), {
            minLength: 1,
            maxLength: 4,
          }),
        }),
        weight: 6,
      },
      {
        arbitrary: fc.record({ t: fc.constant('fork' as const), name, source: name, at: fc.nat() }),
        weight: 2,
      },
      { arbitrary: fc.record({ t: fc.constant('delete' as const), name }), weight: 1 },
      {
        arbitrary: fc.record({
          t: fc.constant('read' as const),
          name,
          at: fc.nat(),
          maxBytes: fc.option(fc.integer({ min: 0, max: 2000 }), { nil: undefined }),
        }),
        weight: 6,
      },
      { arbitrary: fc.record({ t: fc.constant('reopen' as const) }), weight: 1 },
    );
    type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;
    const configs: Partial<FileStorageOptions>[] = [
      { tailCacheBytes: 0, inlineWriteBytes: 0 },
      { tailCacheBytes: 3000, tailCacheStreamBytes: 1500 },
      {},
    ];
    const run = async (ops: Op[], config: Partial<FileStorageOptions>): Promise<unknown[]> => {
      const rootDir = await mkdtemp(join(tmpdir(), 'sk-file-cache-law-'));
      const openIt = () => FileStorage.open({ rootDir, syncOnAppend: false, ...config });
      let s = await openIt();
      const offsets: string[] = ['-1', 'now'];
      const out: unknown[] = [];
      const attempt = async (fn: () => Promise<unknown>): Promise<unknown> => {
        try {
          return await fn();
        } catch (err) {
          if (isStorageError(err)) return { code: err.code };
          throw err;
        }
      };
      try {
        let n = 0;
        for (const o of ops) {
          const at = 'at' in o ? offsets[o.at % offsets.length]! : undefined;
          switch (o.t) {
            case 'create':
              out.push(await attempt(() => s.createStream(o.name, { contentType: TEXT })));
              break;
            case 'append': {
              const messages = o.sizes.map((len) => bytes(len, n++));
              const r = await attempt(() => s.append(o.name, { messages, contentType: TEXT }));
              if (r !== null && typeof r === 'object' && 'nextOffset' in r)
                offsets.push(r.nextOffset as string);
              out.push(r);
              break;
            }
            case 'fork':
              out.push(await attempt(() => s.createFork(o.name, { source: o.source, offset: at })));
              break;
            case 'delete':
              out.push(await attempt(() => s.delete(o.name)));
              break;
            case 'read': {
              const r = await attempt(() => s.read(o.name, at!, { maxBytes: o.maxBytes }));
              out.push(
                r !== null && typeof r === 'object' && 'messages' in r
                  ? {
                      ...r,
                      messages: (r.messages as Uint8Array[]).map((m) => Buffer.from(m).toString('hex')),
                    }
                  : r,
              );
              break;
            }
            case 'reopen':
              await s.close();
              s = await openIt();
              break;
          }
        }
        // Finally every stream from the start.
        for (const nm of ['a', 'b', 'c', 'd']) {
          const r = await attempt(() => s.read(nm, '-1'));
          out.push(
            r !== null && typeof r === 'object' && 'messages' in r
              ? (r.messages as Uint8Array[]).map((m) => Buffer.from(m).toString('hex'))
              : r,
          );
        }
        return out;
      } finally {
        await s.close();
        await rm(rootDir, { recursive: true, force: true, maxRetries: 5 });
      }
    };
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40 }), async (ops) => {
        const [off, tiny, dflt] = [
          await run(ops, configs[0]!),
          await run(ops, configs[1]!),
          await run(ops, configs[2]!),
        ];
        expect(tiny).toEqual(off);
        expect(dflt).toEqual(off);
      }),
      { seed: SEED, numRuns: 40 },
    );
  }, 120_000);
});
