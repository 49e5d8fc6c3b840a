import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../src/index.js';
import { contents, expected, fixtureClock, fixtureCopies } from './release-fixtures.js';

// Data directories written by earlier code, each opened, compared with what its writer served, written to, closed
// (the checkpoint rewrites the catalog snapshot in the current layout) and opened again:
// - format-2-0.1.0*: the 0.1.0 release (format 2, catalog snapshot version 2), made by fixtures/make-format-2.mjs;
// - carried-snapshot-3*: snapshot version 3 (small streams' log bytes inside their records), made by
//   fixtures/make-carried-snapshot-3.mjs.
// What each writer served is in fixtures/<name>.expected.json.
const clock = fixtureClock;
const copies = fixtureCopies();
afterAll(() => copies.remove());

const cases = [
  { fixture: 'format-2-0.1.0', served: 'format-2-0.1.0', stream: 'chat/7', first: 'hello 7' },
  { fixture: 'format-2-0.1.0-crashed', served: 'format-2-0.1.0', stream: 'chat/7', first: 'hello 7' },
  { fixture: 'carried-snapshot-3', served: 'carried-snapshot-3', stream: 'chat/1', first: 'hello 1' },
  {
    fixture: 'carried-snapshot-3-crashed',
    served: 'carried-snapshot-3-crashed',
    stream: 'chat/1',
    first: 'hello 1',
  },
];

describe('data directories written by earlier code', () => {
  for (const { fixture, served, stream, first } of cases) {
    it(`${fixture}: opens, serves what its writer served, and keeps it through writes and restarts`, async () => {
      const root = await copies.copyOf(fixture);
      const s = await FileStorage.open({ rootDir: root, clock });
      expect(await contents(s)).toEqual(await expected(served));
      await s.append(stream, { messages: [Buffer.from('more')], contentType: 'text/plain' });
      await s.createStream('new', { contentType: 'text/plain', messages: [Buffer.from('n')] });
      const after = await contents(s);
      await s.close();
      expect((await readFile(join(root, 'catalog'))).subarray(0, 8).toString('latin1')).toBe(
        'SKCAT\u0000\u0004\u0000',
      );
      expect(await readdir(root)).toContain('CLEAN');
      const r = await FileStorage.open({ rootDir: root, clock });
      expect(await contents(r)).toEqual(after);
      expect(after[stream]!.messages.map((m) => Buffer.from(m as string, 'base64').toString())).toEqual([
        first,
        'more',
      ]);
      await r.close();
    });
  }
});
