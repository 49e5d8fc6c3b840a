import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '@streamkeep/storage/testing';
import { FileStorage, type FileStorageOptions } from '../src/index.js';

export { ManualClock };

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

export interface Fixture {
  dir: string;
  storage: FileStorage;
  clock: ManualClock;
  reopen(extra?: Partial<FileStorageOptions>): Promise<FileStorage>;
  cleanup(): Promise<void>;
}

export async function fixture(extra: Partial<FileStorageOptions> = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'sk-file-test-'));
  const clock = new ManualClock();
  const open = (more: Partial<FileStorageOptions> = {}) =>
    FileStorage.open({ rootDir: dir, clock, syncOnAppend: false, ...extra, ...more });
  const f: Fixture = {
    dir,
    clock,
    storage: await open(),
    async reopen(more) {
      await f.storage.close();
      f.storage = await open(more);
      return f.storage;
    },
    async cleanup() {
      await f.storage.close();
      await rm(dir, { recursive: true, force: true, maxRetries: 5 });
    },
  };
  return f;
}
