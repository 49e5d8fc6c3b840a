import { formatOffset } from '@streamkeep/storage';
import { codeOf } from '@streamkeep/storage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresStorage, type PostgresStorageOptions } from '../src/index.js';
import { dropSchema, freshSchema, pgUrl } from './support.js';

const T = 'text/plain';
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (m: Uint8Array) => new TextDecoder().decode(m);

const opened: PostgresStorage[] = [];
const schemas: string[] = [];

/** Two storages (two pools, two LISTEN connections) over one fresh schema: two server instances. */
async function pair(
  extra: Partial<PostgresStorageOptions> = {},
): Promise<[PostgresStorage, PostgresStorage]> {
  const schema = freshSchema('multi');
  schemas.push(schema);
  const options = { connectionString: pgUrl(), schema, ...extra };
  const [a, b] = await Promise.all([PostgresStorage.open(options), PostgresStorage.open(options)]);
  opened.push(a, b);
  return [a, b];
}

/** Resolves on the next hint to `listener`-style counters; rejects after `ms`. */
class Hints {
  count = 0;
  #waiters: (() => void)[] = [];
  readonly listener = () => {
    this.count++;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  };
  /** Waits until at least `n` hints arrived in total. */
  async atLeast(n: number, ms = 5_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.count < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${n} hints, got ${this.count}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  for (const schema of schemas.splice(0)) await dropSchema(schema);
});

describe('two PostgresStorage instances over one database', () => {
  it('alternating appends wake subscribers on both instances after every commit', async () => {
    const [a, b] = await pair();
    await a.createStream('s', { contentType: T });
    const onA = new Hints();
    const onB = new Hints();
    await a.subscribe('s', onA.listener);
    await b.subscribe('s', onB.listener);
    for (let i = 0; i < 20; i++) {
      const writer = i % 2 === 0 ? a : b;
      const result = await writer.append('s', { messages: [enc(`m${i}`)], contentType: T });
      expect(result.startOffset).toBe(formatOffset(i, i < 10 ? 2 * i : 20 + 3 * (i - 10)));
      // Each commit reaches the other instance's subscriber (and the writer's own) before the next one is made.
      await onA.atLeast(i + 1);
      await onB.atLeast(i + 1);
      for (const reader of [a, b]) {
        const read = await reader.read('s', result.startOffset);
        expect(read.messages.map(dec)).toEqual([`m${i}`]);
        expect(read.nextOffset).toBe(result.nextOffset);
      }
    }
    const closed = await b.closeStream('s');
    await onA.atLeast(21);
    expect(closed.closed).toBe(true);
    expect((await a.head('s')).closed).toBe(true);
    expect(await codeOf(a.append('s', { messages: [enc('x')], contentType: T }))).toBe('STREAM_CLOSED');
  });

  it('a live reader on one instance follows a writer on the other without missing a message', async () => {
    const [a, b] = await pair();
    await a.createStream('live', { contentType: T });
    const total = 60;
    let wake: (() => void) | undefined;
    await b.subscribe('live', () => wake?.());
    const reader = (async () => {
      const seen: string[] = [];
      let offset = '-1';
      while (seen.length < total) {
        const woken = new Promise<void>((resolve) => {
          wake = resolve;
        });
        const read = await b.read('live', offset, { maxBytes: 16 });
        seen.push(...read.messages.map(dec));
        offset = read.nextOffset;
        if (read.upToDate && seen.length < total) {
          await Promise.race([
            woken,
            new Promise((_, reject) =>
              setTimeout(() => reject(new Error(`stalled at ${seen.length}`)), 5_000),
            ),
          ]);
        }
      }
      return seen;
    })();
    const written: string[] = [];
    for (let i = 0; i < total; i++) {
      written.push(`w${i}`);
      await a.append('live', { messages: [enc(`w${i}`)], contentType: T });
      if (i % 7 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    expect(await reader).toEqual(written);
  });

  it('producer fencing and Stream-Seq hold across instances', async () => {
    const [a, b] = await pair();
    await a.createStream('p', { contentType: T });
    const send = (s: PostgresStorage, epoch: number, seq: number, data: string) =>
      s.appendWithProducer('p', { messages: [enc(data)], contentType: T, producer: { id: 'w', epoch, seq } });

    expect((await send(a, 0, 0, 'a0')).duplicate).toBe(false);
    expect((await send(b, 0, 1, 'b1')).duplicate).toBe(false);
    const retry = await send(a, 0, 1, 'b1-retry');
    expect(retry).toMatchObject({ duplicate: true, epoch: 0, seq: 1 });
    expect(await codeOf(send(b, 0, 3, 'gap'))).toBe('PRODUCER_SEQ_GAP');
    expect((await send(b, 1, 0, 'new epoch')).duplicate).toBe(false);
    expect(await codeOf(send(a, 0, 2, 'zombie'))).toBe('PRODUCER_EPOCH_FENCED');
    expect((await b.read('p', '-1')).messages.map(dec)).toEqual(['a0', 'b1', 'new epoch']);

    await a.append('p', { messages: [enc('s1')], contentType: T, seq: '0001' });
    expect(await codeOf(b.append('p', { messages: [enc('s1')], contentType: T, seq: '0001' }))).toBe(
      'SEQ_CONFLICT',
    );
    await b.append('p', { messages: [enc('s2')], contentType: T, seq: '0002' });
    expect((await a.head('p')).lastSeq).toBe('0002');
  });

  it('concurrent appends from both instances get unique, strictly increasing offsets in writer order', async () => {
    const [a, b] = await pair({ pool: { max: 4 } });
    await a.createStream('c', { contentType: T });
    const writers = [a, a, b, b].map((storage, w) =>
      (async () => {
        const offsets: string[] = [];
        for (let i = 0; i < 25; i++) {
          // Sizes vary so that byte offsets, not only message counts, must be allocated without overlap.
          const body = `${w}:${i}:${'x'.repeat((w + i) % 5)}`;
          const result = await storage.append('c', { messages: [enc(body)], contentType: T });
          offsets.push(result.startOffset);
        }
        return offsets;
      })(),
    );
    const perWriter = await Promise.all(writers);
    for (const offsets of perWriter) {
      for (let i = 1; i < offsets.length; i++) expect(offsets[i]! > offsets[i - 1]!).toBe(true);
    }
    const all = perWriter.flat().sort();
    expect(new Set(all).size).toBe(100);

    // The stream holds exactly the 100 messages, each at the offset its append returned.
    const read = await b.read('c', '-1');
    expect(read.messages.length).toBe(100);
    let seq = 0;
    let bytes = 0;
    const byOffset = new Map<string, string>();
    for (const message of read.messages) {
      byOffset.set(formatOffset(seq, bytes), dec(message));
      seq++;
      bytes += message.byteLength;
    }
    expect([...byOffset.keys()].sort()).toEqual(all);
    perWriter.forEach((offsets, w) => {
      offsets.forEach((offset, i) => {
        expect(byOffset.get(offset)!.startsWith(`${w}:${i}:`)).toBe(true);
      });
    });
    expect(read.nextOffset).toBe(formatOffset(seq, bytes));
  });

  it('racing producer retries on both instances write once', async () => {
    const [a, b] = await pair();
    await a.createStream('r', { contentType: T });
    for (let seq = 0; seq < 10; seq++) {
      const results = await Promise.all(
        [a, b, a, b].map((s) =>
          s.appendWithProducer('r', {
            messages: [enc(`m${seq}`)],
            contentType: T,
            producer: { id: 'p', epoch: 0, seq },
          }),
        ),
      );
      expect(results.filter((r) => !r.duplicate).length).toBe(1);
    }
    expect((await a.read('r', '-1')).messages.map(dec)).toEqual(
      Array.from({ length: 10 }, (_, i) => `m${i}`),
    );
  });

  it('racing creates of one name: one creates, the other sees the equal stream', async () => {
    const [a, b] = await pair();
    for (let i = 0; i < 10; i++) {
      const results = await Promise.all([
        a.createStream(`n${i}`, { contentType: T, messages: [enc('first')] }),
        b.createStream(`n${i}`, { contentType: T, messages: [enc('first')] }),
      ]);
      expect(results.map((r) => r.created).sort()).toEqual([false, true]);
      expect((await a.read(`n${i}`, '-1')).messages.map(dec)).toEqual(['first']);
    }
  });

  it('the storage-wide byte limit holds across instances under concurrent appends', async () => {
    const [a, b] = await pair({ maxTotalBytes: 100 });
    await a.createStream('x', { contentType: T });
    await b.createStream('y', { contentType: T });
    const attempts = Array.from({ length: 16 }, (_, i) =>
      codeOf(
        (i % 2 === 0 ? a : b).append(i % 4 < 2 ? 'x' : 'y', {
          messages: [enc('0123456789')],
          contentType: T,
        }),
      ),
    );
    const outcomes = await Promise.all(attempts);
    expect(outcomes.filter((o) => o === undefined).length).toBe(10);
    expect(outcomes.filter((o) => o === 'STORAGE_LIMIT_EXCEEDED').length).toBe(6);
    expect(await a.totalBytes()).toBe(100);
    expect(await b.totalBytes()).toBe(100);
  });

  it('a delete on one instance gives subscribers on the other their last hint', async () => {
    const [a, b] = await pair();
    await a.createStream('d', { contentType: T });
    const onB = new Hints();
    const sub = await b.subscribe('d', onB.listener);
    await a.delete('d');
    await onB.atLeast(1);
    expect(await codeOf(b.head('d'))).toBe('NOT_FOUND');
    // Dropped after the last hint: a new stream of the same name does not wake the old subscription.
    await a.createStream('d', { contentType: T });
    await a.append('d', { messages: [enc('new')], contentType: T });
    await new Promise((r) => setTimeout(r, 100));
    expect(onB.count).toBe(1);
    sub.unsubscribe();
  });

  it('a fork racing a delete of the same name on the other instance: both succeed, state stays consistent', async () => {
    const [a, b] = await pair();
    await a.createStream('parent', { contentType: T, messages: [enc('p')] });
    for (let i = 0; i < 30; i++) {
      await b.createFork('child', { source: 'parent' }).catch(() => {});
      const [deleted, forked] = await Promise.all([
        a.delete('child'),
        b.createFork('child', { source: 'parent' }),
      ]);
      expect(deleted.softDeleted).toBe(false);
      // Either the fork saw the old child (same lineage: idempotent) before the delete, or it created a new one after.
      const exists = await a.exists('child');
      expect(exists).toBe(forked.created);
      expect((await a.head('parent')).totalBytes).toBe(1);
    }
  });

  it('crossed forks that deadlock in PostgreSQL are retried and answer by the contract', async () => {
    const [a, b] = await pair();
    await a.createStream('x', { contentType: T });
    await b.createStream('y', { contentType: T });
    for (let i = 0; i < 10; i++) {
      // fork x←y locks x then y; fork y←x locks y then x: PostgreSQL may abort one as a deadlock victim.
      const outcomes = await Promise.all([
        codeOf(a.createFork('x', { source: 'y' })),
        codeOf(b.createFork('y', { source: 'x' })),
      ]);
      expect(outcomes).toEqual(['CONFIG_MISMATCH', 'CONFIG_MISMATCH']);
    }
  });

  it('forks and soft deletes made on one instance are seen by the other', async () => {
    const [a, b] = await pair();
    await a.createStream('src', { contentType: T, messages: [enc('1'), enc('2')] });
    await b.createFork('fork', { source: 'src', messages: [enc('3')] });
    expect((await a.delete('src')).softDeleted).toBe(true);
    expect(await codeOf(b.head('src'))).toBe('GONE');
    expect(await codeOf(b.createStream('src', { contentType: T }))).toBe('PATH_BLOCKED');
    expect((await b.read('fork', '-1')).messages.map(dec)).toEqual(['1', '2', '3']);
    expect((await b.delete('fork')).softDeleted).toBe(false);
    // The tombstoned source went with its last fork.
    expect(await codeOf(a.head('src'))).toBe('NOT_FOUND');
    expect(await a.totalBytes()).toBe(0);
  });
});
