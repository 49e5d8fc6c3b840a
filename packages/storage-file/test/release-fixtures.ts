import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Storage } from '@streamkeep/storage';

// Data directories written by earlier releases (test/fixtures/), and what those releases served from them.

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));

/** The clock the fixtures were written with. */
export const fixtureClock = { now: () => Date.UTC(2026, 11, 6, 12, 0, 0) };

/** Copies of fixture directories, each in its own temporary directory; `remove()` deletes them all. */
export function fixtureCopies(): { copyOf(name: string): Promise<string>; remove(): Promise<void> } {
  const dirs: string[] = [];
  return {
    async copyOf(name) {
      const d = await mkdtemp(join(tmpdir(), 'sk-file-fixture-'));
      dirs.push(d);
      await cp(join(fixtures, name), d, { recursive: true });
      return d;
    },
    async remove() {
      await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true, maxRetries: 5 })));
    },
  };
}

/** Every stream's metadata and messages (large ones by size and SHA-256), as the .expected.json files hold them. */
export type Expected = Record<
  string,
  { head: unknown; messages: (string | { bytes: number; sha256: string })[] }
>;

export async function contents(s: Storage): Promise<Expected> {
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

/** What the release served from fixture `name` (its `<name>.expected.json`). */
export async function expected(name: string): Promise<Expected> {
  return JSON.parse(await readFile(join(fixtures, `${name}.expected.json`), 'utf8'));
}
