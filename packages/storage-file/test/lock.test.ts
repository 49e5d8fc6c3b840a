import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isStorageError } from '@streamkeep/storage';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nodeFileSystem } from '../src/fs.js';
import { acquireRootLock, LOCK_FILE } from '../src/lock.js';

const here = dirname(fileURLToPath(import.meta.url));
const BUILD = join(here, '..', 'node_modules', '.cache', 'lock-build');
const MODULE = pathToFileURL(join(BUILD, 'lock.js')).href;
// Takeovers use the library's minimum, so they happen within seconds. A live holder's refusal uses the default: its
// refreshes (every 5 s) keep a 5 s margin on a loaded machine, so a slow child is never mistaken for a dead one.
const STALE_MS = 2000;
const LIVE_STALE_MS = 10_000;

const dirs: string[] = [];
const children: ChildProcess[] = [];

async function tempRoot(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sk-file-lock-'));
  dirs.push(d);
  return d;
}

/** Starts a child that takes the root's lock (as a process of `host` when given); resolves once it holds it. */
function holder(root: string, staleMs: number, host?: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [join(here, 'lock-child.mjs'), JSON.stringify({ module: MODULE, root, host, staleMs })],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('locked\n')) resolve(child);
    });
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('exit', (code) => reject(new Error(`lock child exited (${code}) before locking:\n${err}`)));
  });
}

/** SIGKILL, as a crash: the child gets no chance to remove its lock. Resolves once the process is gone (reaped). */
function crash(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.on('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

async function refusal(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isStorageError(err, 'UNAVAILABLE')).toBe(true);
  return err as Error;
}

/** Tries until the lock is taken (each try itself waits up to the stale time): no assumption on how long it takes. */
async function takeOver(root: string): Promise<() => Promise<void>> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await acquireRootLock(nodeFileSystem, root, { staleMs: STALE_MS });
    } catch (err) {
      if (!isStorageError(err, 'UNAVAILABLE') || attempt >= 20) throw err;
    }
  }
}

async function lockHolder(root: string): Promise<{ pid?: number; host?: string; heartbeat?: number }> {
  return JSON.parse(await readFile(join(root, LOCK_FILE), 'utf8'));
}

beforeAll(() => {
  // The children run compiled JavaScript: the lock module (and what it imports) in a private directory.
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(
    process.execPath,
    [
      tsc,
      ...[
        '--outDir',
        BUILD,
        '--rootDir',
        join(here, '..', 'src'),
        '--module',
        'nodenext',
        '--target',
        'es2022',
      ],
      ...['--types', 'node', '--skipLibCheck', join(here, '..', 'src', 'lock.ts')],
    ],
    { stdio: 'inherit' },
  );
}, 120_000);

afterEach(async () => {
  await Promise.all(children.splice(0).map(crash));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true, maxRetries: 5 })));
});

describe('root lock', () => {
  it('is refused to a second instance in this process, and removed on release', async () => {
    const root = await tempRoot();
    const release = await acquireRootLock(nodeFileSystem, root, { staleMs: STALE_MS });
    expect(await lockHolder(root)).toMatchObject({
      pid: process.pid,
      host: hostname(),
      heartbeat: STALE_MS / 2,
    });
    await refusal(acquireRootLock(nodeFileSystem, root));
    await release();
    await release();
    await expect(stat(join(root, LOCK_FILE))).rejects.toMatchObject({ code: 'ENOENT' });
    await (await acquireRootLock(nodeFileSystem, root))();
  });

  it('refuses a live holder on this host at once, and takes over from it once it crashed', async () => {
    const root = await tempRoot();
    const child = await holder(root, LIVE_STALE_MS);
    const err = await refusal(acquireRootLock(nodeFileSystem, root));
    expect(err.message).toContain(`process ${child.pid}`);
    await crash(child);
    // Its pid is gone: no need to wait for its lock to go stale.
    const release = await acquireRootLock(nodeFileSystem, root);
    expect(await lockHolder(root)).toMatchObject({ pid: process.pid, host: hostname() });
    await release();
  });

  it('refuses a live holder on another host that keeps its lock fresh', async () => {
    const root = await tempRoot();
    await holder(root, LIVE_STALE_MS, 'another-host');
    // The pid means nothing on another host: this waits out the stale time, and the holder's refreshes win.
    const err = await refusal(acquireRootLock(nodeFileSystem, root, { staleMs: LIVE_STALE_MS }));
    expect(err.message).toContain('on another-host');
    expect(await lockHolder(root)).toMatchObject({ host: 'another-host' });
  });

  it('takes over the lock of a holder on another host that crashed (a container restarted under a new hostname)', async () => {
    const root = await tempRoot();
    const child = await holder(root, STALE_MS, 'old-container');
    await crash(child);
    const release = await takeOver(root);
    expect(await lockHolder(root)).toMatchObject({ pid: process.pid, host: hostname() });
    await release();
  });

  it('takes over a stale lock whose pid now belongs to another live process on this host (a reused pid)', async () => {
    const root = await tempRoot();
    const path = join(root, LOCK_FILE);
    const reused = {
      pid: process.ppid,
      host: hostname(),
      since: '2026-01-01T00:00:00.000Z',
      heartbeat: 1000,
    };
    await writeFile(path, JSON.stringify(reused));
    // Fresh: the live pid is taken for the holder.
    await refusal(acquireRootLock(nodeFileSystem, root, { staleMs: STALE_MS }));
    const old = new Date(Date.now() - 60_000);
    await utimes(path, old, old);
    const release = await acquireRootLock(nodeFileSystem, root, { staleMs: STALE_MS });
    expect(await lockHolder(root)).toMatchObject({ pid: process.pid });
    await release();
  });

  describe('lock files of earlier releases (pid and host, no heartbeat)', () => {
    it('refuses a live holder on this host and takes over a dead one', async () => {
      const root = await tempRoot();
      await writeFile(join(root, LOCK_FILE), JSON.stringify({ pid: process.ppid, host: hostname() }));
      await refusal(acquireRootLock(nodeFileSystem, root, { staleMs: STALE_MS }));
      // The first releases wrote no host.
      await writeFile(join(root, LOCK_FILE), JSON.stringify({ pid: process.ppid }));
      await refusal(acquireRootLock(nodeFileSystem, root, { staleMs: STALE_MS }));
      await writeFile(join(root, LOCK_FILE), JSON.stringify({ pid: 2 ** 30, host: hostname() }));
      await (await acquireRootLock(nodeFileSystem, root, { staleMs: STALE_MS }))();
    });

    it('takes over one from another host once it is older than the stale time', async () => {
      const root = await tempRoot();
      const path = join(root, LOCK_FILE);
      await writeFile(
        path,
        JSON.stringify({ pid: 1, host: 'crashed-host', since: '2026-01-01T00:00:00.000Z' }),
      );
      const old = new Date(Date.now() - 60_000);
      await utimes(path, old, old);
      await (await acquireRootLock(nodeFileSystem, root, { staleMs: STALE_MS }))();
      // A fresh one is taken over too, once it has aged: earlier releases never refreshed theirs.
      await writeFile(path, JSON.stringify({ pid: 1, host: 'crashed-host' }));
      await (await takeOver(root))();
    });

    it('takes over an empty or torn lock file once it is stale', async () => {
      const root = await tempRoot();
      await writeFile(join(root, LOCK_FILE), '{"pid": 12');
      await (await takeOver(root))();
    });
  });
});
