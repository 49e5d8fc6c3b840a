import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock, Storage } from '@streamkeep/storage';
import type { HarnessContext, HarnessInstance, StorageHarness } from './harness.js';

// Test helpers for backend authors (`@streamkeep/storage-conformance/helpers`): what every backend's own tests
// otherwise write again — a hand-moved clock, checking a rejection's code, temporary directories and a harness over
// them. No vitest here: they work under any runner.

// `ManualClock`, `codeOf` and `expectCode` need nothing from the kit: they live in `@streamkeep/storage/testing` (so a
// package the kit depends on, such as storage-memory, can use them too) and are re-exported here unchanged.
export { codeOf, expectCode, ManualClock } from '@streamkeep/storage/testing';

/** A directory for temporary files: `/dev/shm` (memory-backed, so syncs are free) when `memory` and present. */
function scratchRoot(memory: boolean): string {
  return memory && existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
}

/** A fresh temporary directory and the function that removes it. */
export interface TempDir {
  readonly path: string;
  remove(): Promise<void>;
}

/** Options of {@link makeTempDir} and {@link tempDirHarness}. */
export interface TempDirOptions {
  /** Directory name prefix. @default 'streamkeep-' */
  readonly prefix?: string | undefined;
  /**
   * Put it on a memory-backed file system (`/dev/shm`) when there is one: a backend that syncs every create costs a
   * disk flush per instance elsewhere. Leave it off for tests about what reaches the disk. @default false
   */
  readonly memory?: boolean | undefined;
}

export async function makeTempDir(options: TempDirOptions = {}): Promise<TempDir> {
  const path = await mkdtemp(join(scratchRoot(options.memory === true), options.prefix ?? 'streamkeep-'));
  return { path, remove: () => rm(path, { recursive: true, force: true, maxRetries: 5 }) };
}

/** Runs `body` with a fresh temporary directory and removes it afterwards, also when `body` throws. */
export async function withTempDir<T>(
  body: (path: string) => Promise<T>,
  options?: TempDirOptions,
): Promise<T> {
  const dir = await makeTempDir(options);
  try {
    return await body(dir.path);
  } finally {
    await dir.remove();
  }
}

/** What {@link tempDirHarness} passes to `open`: the kit's clock and limits, and the instance's own directory. */
export interface TempDirContext {
  readonly rootDir: string;
  readonly clock: Clock;
  readonly limits: HarnessContext['limits'];
}

/**
 * A {@link StorageHarness} for a disk backend: every instance gets a new temporary directory, `reopen` closes the
 * current storage and opens a new one over the same directory, and `teardown` closes whichever is current and removes
 * the directory.
 *
 * @example
 * ```ts
 * describeStorageConformance('FileStorage', tempDirHarness(({ rootDir, clock, limits }) =>
 *   FileStorage.open({ rootDir, clock, ...limits })));
 * ```
 */
export function tempDirHarness(
  open: (context: TempDirContext) => Promise<Storage>,
  options: TempDirOptions = {},
): StorageHarness {
  return {
    async create({ clock, limits }): Promise<HarnessInstance> {
      const dir = await makeTempDir(options);
      let storage: Storage;
      try {
        storage = await open({ rootDir: dir.path, clock, limits });
      } catch (err) {
        await dir.remove();
        throw err;
      }
      return {
        get storage() {
          return storage;
        },
        async reopen() {
          await storage.close();
          storage = await open({ rootDir: dir.path, clock, limits });
          return storage;
        },
        async teardown() {
          try {
            await storage.close();
          } finally {
            await dir.remove();
          }
        },
      };
    },
  };
}
