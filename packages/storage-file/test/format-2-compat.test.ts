import { createHash } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Storage } from '@streamkeep/storage';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../src/index.js';

// Data directories written by the 0.1.0 release (format 2, catalog snapshot version 2); how they were made is in
// fixtures/make-format-2.mjs, and what that release served from them in fixtures/format-2-0.1.0.expected.json.
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const clock = { now: () => Date.UTC(2026, 11, 6, 12, 0, 0) };
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true, maxRetries: 5 })));
});

async function copyOf(name: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sk-file-format2-'));
  dirs.push(d);
  await cp(join(fixtures, name), d, { recursive: true });
  return d;
}

type Expected = Record<string, { head: unknown; messages: (string | { bytes: number; sha256: string })[] }>;

async function contents(s: Storage): Promise<Expected> {
  const out: Expected = {};
  for (const m of await s.listStreams({ limit: 1000 })) {
    const r = await s.read(m.name, '-1');
    out[m.name] = {
      head: JSON.parse(JSON.stringify(m)),
      messages: r.messages.map((x) =>
        x.byteLength > 1024
          ? { bytes: x.byteLength, sha256: createHash('sha256').update(x).digest('hex') }
          : Buffer.from(x).toString('base64'),
      ),
    };
  }
  return out;
}

const expected = async (): Promise<Expected> =>
  JSON.parse(await readFile(join(fixtures, 'format-2-0.1.0.expected.json'), 'utf8'));

describe('a data directory written by 0.1.0', () => {
  for (const name of ['format-2-0.1.0', 'format-2-0.1.0-crashed']) {
    it(`${name}: opens, serves what 0.1.0 served, and keeps it through writes and restarts`, async () => {
      const root = await copyOf(name);
      const s = await FileStorage.open({ rootDir: root, clock });
      expect(await contents(s)).toEqual(await expected());
      // Written to by this release: small streams are carried in the new snapshot from now on.
      await s.append('chat/7', { messages: [Buffer.from('more')], contentType: 'text/plain' });
      await s.createStream('new', { contentType: 'text/plain', messages: [Buffer.from('n')] });
      const after = await contents(s);
      await s.close();
      expect((await readFile(join(root, 'catalog'))).subarray(0, 8).toString('latin1')).toBe(
        'SKCAT\u0000\u0003\u0000',
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
