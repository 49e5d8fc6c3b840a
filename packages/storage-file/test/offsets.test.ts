import { codeOf } from '@streamkeep/storage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { dec, enc, type Fixture, fixture } from './helpers.js';

let f: Fixture;
afterEach(async () => {
  await f?.cleanup();
});

// Parts above 2^53 − 1: parsed to doubles that formatOffset refuses, so they must be compared as strings.
const HUGE = [
  '9999999999999999_9999999999999999',
  'ffffffffffffffff_ffffffffffffffff',
  '0020000000000001_0000000000000000',
  '0000000000000001_0020000000000001',
  '0000000000000000_ffffffffffffffff',
];

describe('offsets beyond 2^53', () => {
  it('createFork answers FORK_OFFSET_BEYOND_TAIL', async () => {
    f = await fixture();
    const s = f.storage;
    await s.createStream('src', { contentType: 'text/plain', messages: [enc('a'), enc('b')] });
    for (const offset of HUGE) {
      expect(await codeOf(s.createFork('fk', { source: 'src', offset })), offset).toBe(
        'FORK_OFFSET_BEYOND_TAIL',
      );
      expect(await codeOf(s.createFork('fk', { source: 'src', offset, subOffset: 1 })), offset).toBe(
        'FORK_OFFSET_BEYOND_TAIL',
      );
    }
    expect(await s.exists('fk')).toBe(false);
    // Just past the tail, and the tail itself.
    expect(
      await codeOf(s.createFork('fk', { source: 'src', offset: '0000000000000002_0000000000000003' })),
    ).toBe('FORK_OFFSET_BEYOND_TAIL');
    const ok = await s.createFork('fk', { source: 'src', offset: '0000000000000002_0000000000000002' });
    expect(ok.nextOffset).toBe('0000000000000002_0000000000000002');
  });

  it('reads from them are empty and up to date, on plain streams and forks', async () => {
    f = await fixture();
    const s = f.storage;
    await s.createStream('src', { contentType: 'text/plain', messages: [enc('a'), enc('b')] });
    await s.createFork('fk', { source: 'src', offset: '0000000000000001_0000000000000001' });
    await s.append('fk', { messages: [enc('c')], contentType: 'text/plain' });
    await s.createStream('empty', { contentType: 'text/plain' });
    for (const name of ['src', 'fk', 'empty']) {
      const tail = (await s.head(name)).nextOffset;
      // Misaligned offsets (a small seq with a huge byte part) round up to the next message: never an error.
      for (const from of HUGE.slice(3)) {
        const r = await s.read(name, from);
        expect(r.upToDate).toBe(true);
        expect(r.nextOffset).toBe(tail);
      }
      for (const from of HUGE.slice(0, 3)) {
        for (const maxBytes of [undefined, 0, 1, 1 << 20]) {
          const r = await s.read(name, from, maxBytes === undefined ? undefined : { maxBytes });
          expect(r, `${name} ${from}`).toEqual({
            messages: [],
            nextOffset: tail,
            upToDate: true,
            closed: false,
          });
        }
      }
    }
    expect((await s.read('fk', '-1')).messages.map(dec)).toEqual(['a', 'c']);
  });
});
