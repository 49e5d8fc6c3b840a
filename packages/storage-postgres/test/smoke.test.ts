import { describe, expect, it } from 'vitest';
import { PostgresStorage } from '../src/index.js';
import { dropSchema, freshSchema, pgUrl } from './support.js';

const enc = (s: string) => new TextEncoder().encode(s);

describe('smoke', () => {
  it('creates, appends, reads', async () => {
    const schema = freshSchema();
    const t0 = performance.now();
    const s = await PostgresStorage.open({ connectionString: pgUrl(), schema });
    console.log('open ms', performance.now() - t0);
    await s.createStream('a', { contentType: 'text/plain', messages: [enc('x')] });
    const r = await s.append('a', { messages: [enc('yy'), enc('')], contentType: 'text/plain' });
    expect(r.startOffset).toBe('0000000000000001_0000000000000001');
    const read = await s.read('a', '-1');
    expect(read.messages.map((m) => new TextDecoder().decode(m))).toEqual(['x', 'yy', '']);
    const b = await s.read('a', '-1', { maxBytes: 1 });
    expect(b.messages.length).toBe(1);
    expect(b.nextOffset).toBe('0000000000000001_0000000000000001');
    await s.createFork('f', {
      source: 'a',
      offset: '0000000000000001_0000000000000001',
      messages: [enc('z')],
    });
    const fr = await s.read('f', '-1');
    expect(fr.messages.map((m) => new TextDecoder().decode(m))).toEqual(['x', 'z']);
    const t1 = performance.now();
    for (let i = 0; i < 100; i++) await s.append('a', { messages: [enc('q')], contentType: 'text/plain' });
    console.log('append ms', (performance.now() - t1) / 100);
    const t2 = performance.now();
    for (let i = 0; i < 100; i++) await s.read('a', '-1', { maxBytes: 10 });
    console.log('read ms', (performance.now() - t2) / 100);
    const t3 = performance.now();
    await s.close();
    await dropSchema(schema);
    console.log('close+drop ms', performance.now() - t3);
  });
});
