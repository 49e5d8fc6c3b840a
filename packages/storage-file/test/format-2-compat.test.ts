import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../src/index.js';
import { contents, expected, fixtureClock, fixtureCopies } from './release-fixtures.js';

// Data directories written by the 0.1.0 release (format 2, catalog snapshot version 2); how they were made is in
// fixtures/make-format-2.mjs, and what that release served from them in fixtures/format-2-0.1.0.expected.json.
const clock = fixtureClock;
const copies = fixtureCopies();
afterAll(() => copies.remove());

describe('a data directory written by 0.1.0', () => {
  for (const name of ['format-2-0.1.0', 'format-2-0.1.0-crashed']) {
    it(`${name}: opens, serves what 0.1.0 served, and keeps it through writes and restarts`, async () => {
      const root = await copies.copyOf(name);
      const s = await FileStorage.open({ rootDir: root, clock });
      expect(await contents(s)).toEqual(await expected('format-2-0.1.0'));
      // Written to by this release: small streams are carried in the new snapshot from now on.
      await s.append('chat/7', { messages: [Buffer.from('more')], contentType: 'text/plain' });
      await s.createStream('new', { contentType: 'text/plain', messages: [Buffer.from('n')] });
      const after = await contents(s);
      await s.close();
      expect((await readFile(join(root, 'catalog'))).subarray(0, 8).toString('latin1')).toBe(
        'SKCAT\u0000\u0004\u0000',
      );
      expect(await readdir(root)).toContain('CLEAN');
      const r = await FileStorage.open({ rootDir: root, clock });
      expect(await contents(r)).toEqual(after);
      expect(after['chat/7']!.messages.map((m) => Buffer.from(m as string, 'base64').toString())).toEqual([
        'hello 7',
        'more',
      ]);
      await r.close();
    });
  }
});

// Data directories written before the carried region (catalog snapshot version 3: small streams' log bytes inside
// their records); how they were made is in fixtures/make-carried-snapshot-3.mjs.
describe('a data directory whose snapshot carries logs inside its records (version 3)', () => {
  for (const name of ['carried-snapshot-3', 'carried-snapshot-3-crashed']) {
    it(`${name}: opens, serves what its writer served, and keeps it through writes and restarts`, async () => {
      const root = await copies.copyOf(name);
      const s = await FileStorage.open({ rootDir: root, clock });
      expect(await contents(s)).toEqual(await expected(name));
      await s.append('chat/1', { messages: [Buffer.from('more')], contentType: 'text/plain' });
      await s.createStream('new', { contentType: 'text/plain', messages: [Buffer.from('n')] });
      const after = await contents(s);
      await s.close();
      // Rewritten in the current layout by the checkpoint of the close: carried logs after the records.
      expect((await readFile(join(root, 'catalog'))).subarray(0, 8).toString('latin1')).toBe(
        'SKCAT\u0000\u0004\u0000',
      );
      const r = await FileStorage.open({ rootDir: root, clock });
      expect(await contents(r)).toEqual(after);
      expect(after['chat/1']!.messages.map((m) => Buffer.from(m as string, 'base64').toString())).toEqual([
        'hello 1',
        'more',
      ]);
      await r.close();
    });
  }
});
