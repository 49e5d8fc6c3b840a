import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileSystemSyncer } from '../src/fs-syncer.js';

// The checkpoint's file-system-wide sync through one helper started once (src/fs-syncer.ts). Linux only, as in use.
const linux = process.platform === 'linux';
const syncers: FileSystemSyncer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of syncers.splice(0)) s.close();
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe.runIf(linux)('file-system sync helper', () => {
  it('answers every sync, in order, concurrent ones included, from one process', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sk-syncer-'));
    dirs.push(dir);
    await writeFile(join(dir, 'f'), 'x');
    const s = new FileSystemSyncer();
    syncers.push(s);
    await s.sync(dir);
    await Promise.all(Array.from({ length: 5 }, () => s.sync(dir)));
  });

  it('rejects what it cannot do, so that the caller syncs file by file', async () => {
    const s = new FileSystemSyncer();
    syncers.push(s);
    await expect(s.sync(join(tmpdir(), 'no such directory here'))).rejects.toThrow(/failed/);
    await expect(s.sync('two\nlines')).rejects.toThrow(/newline/);
    // Still serving after a failure.
    await s.sync(tmpdir());
    s.close();
    await expect(s.sync(tmpdir())).rejects.toThrow(/not running/);
  });
});
