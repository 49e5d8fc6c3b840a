import { formatOffset } from '@streamkeep/storage';
import { describe, expect, it } from 'vitest';
import { ManualClock, resolveOptions, StorageModel } from '../src/index.js';

// The reference model on its own, against the worked examples of the contract and the seed crate's tests, so that a
// misreading shared by the model and MemoryStorage cannot hide behind their agreement.

const bytes = (...values: number[]) => new Uint8Array(values);
const code = (o: { ok: boolean; code?: string }) => (o.ok ? 'ok' : o.code);

function fresh(limits = {}) {
  const clock = new ManualClock();
  return { clock, model: new StorageModel(clock, limits) };
}

describe('StorageModel', () => {
  it('follows the producer sequence of the contract (accept, duplicate, gap, new epoch, fenced, bad epoch seq)', () => {
    const { model } = fresh();
    model.createStream('s', { contentType: 'text/plain' });
    const p = (epoch: number, seq: number) =>
      model.appendWithProducer('s', {
        producer: { id: 'p1', epoch, seq },
        messages: [bytes(seq)],
        contentType: 'text/plain',
      });
    expect(p(0, 0)).toMatchObject({ ok: true, value: { duplicate: false } });
    expect(p(0, 0)).toMatchObject({ ok: true, value: { duplicate: true, epoch: 0, seq: 0 } });
    expect(code(p(0, 3))).toBe('PRODUCER_SEQ_GAP');
    expect(p(2, 0)).toMatchObject({ ok: true, value: { duplicate: false, epoch: 2 } });
    expect(code(p(1, 0))).toBe('PRODUCER_EPOCH_FENCED');
    expect(code(p(3, 2))).toBe('PRODUCER_INVALID_EPOCH_SEQ');
  });

  it('compares Stream-Seq by UTF-8 bytes: "10" after "2" conflicts, "10" after "09" does not', () => {
    const { model } = fresh();
    model.createStream('s', { contentType: 'text/plain' });
    const a = (seq: string) =>
      code(model.append('s', { messages: [bytes(1)], contentType: 'text/plain', seq }));
    expect(a('2')).toBe('ok');
    expect(a('10')).toBe('SEQ_CONFLICT');
    expect(a('\uE000')).toBe('ok');
    expect(a('\u{1F600}')).toBe('ok');
    expect(a('\uFFFF')).toBe('SEQ_CONFLICT');
  });

  it('bounds nested fork reads by every fork offset below (source [a, b], child forked between them)', () => {
    const { model } = fresh();
    model.createStream('src', { contentType: 'text/plain', messages: [bytes(0xa), bytes(0xb)] });
    model.createFork('parent', { source: 'src' });
    model.append('parent', { messages: [bytes(0xc)], contentType: 'text/plain' });
    const between = formatOffset(1, 1);
    expect(model.createFork('child', { source: 'parent', offset: between })).toMatchObject({ ok: true });
    expect(model.read('child', '-1')).toMatchObject({ ok: true, value: { messages: [bytes(0xa)] } });
    model.append('child', { messages: [bytes(0xd)], contentType: 'text/plain' });
    expect(model.read('child', between)).toMatchObject({ ok: true, value: { messages: [bytes(0xd)] } });
  });

  it('turns an expired source with forks into a tombstone at cleanup, and collects it with its last fork', () => {
    const { clock, model } = fresh();
    model.createStream('src', { contentType: 'text/plain', ttlSeconds: 1, messages: [bytes(1)] });
    model.createFork('f', { source: 'src', ttlSeconds: 60 });
    expect(code(model.head('src'))).toBe('ok');
    clock.advance(1_000);
    expect(code(model.head('src'))).toBe('EXPIRED');
    expect(model.cleanupExpiredStreams()).toEqual({ ok: true, value: 1 });
    expect(code(model.head('src'))).toBe('GONE');
    expect(code(model.createStream('src', { contentType: 'text/plain' }))).toBe('PATH_BLOCKED');
    expect(model.read('f', '-1')).toMatchObject({ ok: true, value: { messages: [bytes(1)] } });
    expect(model.delete('f')).toEqual({ ok: true, value: { softDeleted: false } });
    expect(model.createStream('src', { contentType: 'text/plain' })).toMatchObject({
      ok: true,
      value: { created: true },
    });
  });

  it('checks the storage-wide limit before the per-stream one, and a rejected create changes nothing', () => {
    const { clock, model } = fresh({ maxTotalBytes: 100, maxStreamBytes: 50 });
    model.createStream('a', { contentType: 'text/plain', messages: [new Uint8Array(50)] });
    expect(code(model.append('a', { messages: [new Uint8Array(10)], contentType: 'text/plain' }))).toBe(
      'STREAM_LIMIT_EXCEEDED',
    );
    model.createStream('b', { contentType: 'text/plain', messages: [new Uint8Array(40)] });
    expect(code(model.append('b', { messages: [new Uint8Array(20)], contentType: 'text/plain' }))).toBe(
      'STORAGE_LIMIT_EXCEEDED',
    );
    model.createStream('x', { contentType: 'text/plain', ttlSeconds: 0 });
    clock.advance(1);
    expect(code(model.createStream('x', { contentType: 'text/plain', messages: [new Uint8Array(60)] }))).toBe(
      'STORAGE_LIMIT_EXCEEDED',
    );
    expect(code(model.head('x'))).toBe('EXPIRED');
  });

  it('never matches a root create with an existing fork, nor a fork with an existing root', () => {
    const { model } = fresh();
    model.createStream('src', { contentType: 'text/plain', messages: [bytes(1)] });
    model.createFork('f', { source: 'src' });
    expect(code(model.createStream('f', { contentType: 'text/plain' }))).toBe('CONFIG_MISMATCH');
    expect(code(model.createFork('src', { source: 'f' }))).toBe('CONFIG_MISMATCH');
  });

  it('lets a producer duplicate through on a closed stream, and a closing retry stays a duplicate', () => {
    const { model } = fresh();
    model.createStream('s', { contentType: 'text/plain' });
    const close = { producer: { id: 'p', epoch: 0, seq: 0 }, messages: [], close: true };
    expect(model.appendWithProducer('s', close)).toMatchObject({
      ok: true,
      value: { closed: true, duplicate: false },
    });
    expect(model.appendWithProducer('s', close)).toMatchObject({ ok: true, value: { duplicate: true } });
    const next = { producer: { id: 'p', epoch: 0, seq: 5 }, messages: [bytes(1)], contentType: 'text/plain' };
    expect(code(model.appendWithProducer('s', next))).toBe('STREAM_CLOSED');
  });
});

describe('options and clock', () => {
  it('defaults to 200 runs; the environment overrides the run count and fills in a seed, an explicit seed wins', () => {
    expect(resolveOptions().numRuns).toBe(200);
    process.env.STREAMKEEP_CONFORMANCE_RUNS = '7';
    process.env.STREAMKEEP_CONFORMANCE_SEED = '-42';
    try {
      expect(resolveOptions({ numRuns: 50 })).toMatchObject({ numRuns: 7, seed: -42 });
      // A replay recipe keeps its own seed whatever the environment pins.
      expect(resolveOptions({ seed: 1, path: '3:1', replayPath: 'AB' })).toMatchObject({
        seed: 1,
        path: '3:1',
        replayPath: 'AB',
      });
      expect(() => resolveOptions({ path: '3:1' })).toThrow(/needs the seed/);
    } finally {
      delete process.env.STREAMKEEP_CONFORMANCE_RUNS;
      delete process.env.STREAMKEEP_CONFORMANCE_SEED;
    }
    expect(() => resolveOptions({ numRuns: 0 })).toThrow(RangeError);
  });

  it('never moves a ManualClock backwards', () => {
    const clock = new ManualClock(1_000);
    clock.advance(5);
    expect(clock.now()).toBe(1_005);
    clock.set(2_000);
    expect(() => clock.set(1_999)).toThrow(RangeError);
    expect(() => clock.advance(-1)).toThrow(RangeError);
  });
});
