#!/usr/bin/env node
// Checks the packages as a user gets them: packs every published package and the server (pnpm pack, which rewrites
// `workspace:` and `catalog:` ranges), lints each tarball (publint --strict, attw), installs them all into an empty
// project with plain `npm install`, and there: checks LICENSE and source maps, imports every package, type-checks a
// small consumer with tsc (no skipLibCheck), runs `streamkeep --version`, and does a create / append / read round trip
// over HTTP on loopback against the installed server with the file backend, across a restart.
//
// Run after a build: `pnpm build && node scripts/pack-check.mjs` (the root `check` script does both). Needs Node and
// npm, and the npm registry for the packages' own dependencies. Cleans up its temporary directory and child processes.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const LICENSE = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
const rootPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const started = Date.now();
const children = new Set();
let tmp;

const secs = (since) => `${((Date.now() - since) / 1000).toFixed(1)} s`;
const say = (line) => process.stdout.write(`${line}\n`);

class CheckFailed extends Error {}
function fail(message) {
  throw new CheckFailed(message);
}

/**
 * The environment of the user's side: without the `npm_*` variables that `pnpm run` sets for this script, which npm
 * would read as its own configuration.
 */
const userEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

/**
 * Runs a command; resolves its exit code, stdout and combined output, or fails with the output. `shell` only for
 * `npm`/`npx` on Windows (.cmd files).
 */
function run(cmd, args, { cwd = ROOT, env, clean = false, allowFailure = false } = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      env: { ...(clean ? userEnv : process.env), ...env },
      shell: process.platform === 'win32' && !cmd.endsWith('.exe') && cmd !== process.execPath,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let out = '';
    let stdout = '';
    child.stdout.on('data', (d) => {
      out += d;
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      children.delete(child);
      if (code === 0 || allowFailure) resolvePromise({ code, stdout, out });
      else reject(new CheckFailed(`${cmd} ${args.join(' ')} (in ${cwd}) exited with ${code}:\n${out}`));
    });
  });
}

/** The pnpm this repository pins: the one running us (`pnpm run check`), else `npx pnpm@<packageManager>`. */
function pnpm(args, opts) {
  const execPath = process.env.npm_execpath;
  if (execPath !== undefined && /pnpm/.test(execPath) && /\.c?js$/.test(execPath)) {
    return run(process.execPath, [execPath, ...args], opts);
  }
  return run('npx', ['-y', rootPkg.packageManager, ...args], opts);
}

/** A bin of a root dev dependency, run with this Node (no shell, no .cmd). */
function rootBin(pkgName, binName) {
  const dir = join(ROOT, 'node_modules', pkgName);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin[binName];
  return join(dir, bin);
}

/** The catalog's version of a dependency, so the consumer builds with the versions the repository tests with. */
function catalogVersion(name) {
  const yaml = readFileSync(join(ROOT, 'pnpm-workspace.yaml'), 'utf8');
  for (const line of yaml.split('\n')) {
    const m = /^\s+"?([^":]+)"?:\s*(\S+)\s*$/.exec(line);
    if (m !== null && m[1] === name) return m[2];
  }
  fail(`no catalog entry for ${name} in pnpm-workspace.yaml`);
}

/** Runs `task` over `items`, two at a time (the CI machine has two cores). */
async function eachInPairs(items, task) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]);
  };
  await Promise.all([worker(), worker()]);
}

function workspacePackages() {
  const found = [];
  for (const group of ['packages', 'apps']) {
    for (const name of readdirSync(join(ROOT, group)).sort()) {
      const dir = join(ROOT, group, name);
      if (!existsSync(join(dir, 'package.json'))) continue;
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      // Every published package, and the server (packed even while private: it is what `npx streamkeep` runs).
      if (pkg.private === true && pkg.name !== '@streamkeep/server') continue;
      found.push({ dir, pkg });
    }
  }
  return found;
}

async function pack(packages) {
  const t = Date.now();
  await eachInPairs(packages, async (p) => {
    if (!existsSync(join(p.dir, 'dist'))) fail(`${p.pkg.name} is not built (no dist/): run the build first`);
    const dest = join(tmp, 'tarballs', relative(ROOT, p.dir).replace(/[\\/]/g, '-'));
    await mkdir(dest, { recursive: true });
    await pnpm(['pack', '--pack-destination', dest], { cwd: p.dir });
    const tgz = readdirSync(dest).filter((f) => f.endsWith('.tgz'));
    if (tgz.length !== 1) fail(`pnpm pack of ${p.pkg.name} made ${tgz.length} tarballs`);
    p.tarball = join(dest, tgz[0]);
  });
  say(`✓ packed ${packages.length} packages (${secs(t)})`);
}

async function lint(packages) {
  const t = Date.now();
  const publint = rootBin('publint', 'publint');
  const attw = rootBin('@arethetypeswrong/cli', 'attw');
  // The server is linted once it is published; until then its tarball only serves the install below.
  await eachInPairs(
    packages.filter((p) => p.pkg.private !== true),
    async (p) => {
      const pl = await run(process.execPath, [publint, 'run', p.tarball, '--strict'], { allowFailure: true });
      if (pl.code !== 0) fail(`publint --strict failed for ${p.pkg.name}:\n${pl.out}`);
      // ESM-only packages (engines: node >= 20.19, where require(esm) works): the esm-only profile.
      const at = await run(
        process.execPath,
        [attw, p.tarball, '--profile', 'esm-only', '--format', 'ascii'],
        {
          allowFailure: true,
          env: { FORCE_COLOR: '0' },
        },
      );
      if (at.code !== 0) fail(`attw failed for ${p.pkg.name}:\n${at.out}`);
      say(`  ${p.pkg.name}: publint --strict and attw (esm-only) clean`);
    },
  );
  say(`✓ linted the published packages (${secs(t)})`);
}

async function install(packages, consumer) {
  const t = Date.now();
  const dependencies = {};
  for (const p of packages)
    dependencies[p.pkg.name] = `file:${relative(consumer, p.tarball).replace(/\\/g, '/')}`;
  // What a user brings: TypeScript and Node's types for the consumer, and the kit's peers.
  for (const name of ['typescript', '@types/node', 'fast-check', 'vitest'])
    dependencies[name] = catalogVersion(name);
  await writeFile(
    join(consumer, 'package.json'),
    `${JSON.stringify({ name: 'streamkeep-pack-check', private: true, type: 'module', dependencies }, null, 2)}\n`,
  );
  await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', '--ignore-scripts'], {
    cwd: consumer,
    clean: true,
  });
  say(`✓ installed the tarballs with npm into an empty project (${secs(t)})`);
}

/** Every installed package ships the root LICENSE, and every source map of it resolves to shipped sources. */
function checkContents(packages, consumer) {
  for (const p of packages) {
    const dir = join(consumer, 'node_modules', ...p.pkg.name.split('/'));
    const license = join(dir, 'LICENSE');
    if (!existsSync(license)) fail(`${p.pkg.name} ships no LICENSE`);
    if (readFileSync(license, 'utf8') !== LICENSE)
      fail(`${p.pkg.name}'s LICENSE differs from the root LICENSE`);
    const missing = [];
    const walk = (d) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const f = join(d, e.name);
        if (e.isDirectory()) walk(f);
        else if (f.endsWith('.map')) {
          const map = JSON.parse(readFileSync(f, 'utf8'));
          map.sources.forEach((s, i) => {
            if (
              map.sourcesContent?.[i] == null &&
              !existsSync(resolve(dirname(f), map.sourceRoot ?? '', s))
            ) {
              missing.push(`${relative(dir, f)} → ${s}`);
            }
          });
        }
      }
    };
    walk(join(dir, 'dist'));
    if (missing.length > 0) {
      const message = `${p.pkg.name}: ${missing.length} source map entries point at files it does not ship, e.g. ${missing[0]}`;
      // The server's packaging belongs to its own task until it is published.
      if (p.pkg.private === true) say(`  note: ${message}`);
      else fail(message);
    }
    // One copy of the contract, the kit's peers and fast-check, shared with the user's own imports (a second
    // fast-check makes the kit's arbitraries incompatible with the user's: TS2345).
    for (const shared of ['@streamkeep', 'fast-check', 'vitest']) {
      if (existsSync(join(dir, 'node_modules', shared)))
        fail(`${p.pkg.name} installed its own copy of ${shared}`);
    }
  }
  say('✓ every package ships the LICENSE, its source maps resolve, and shared packages are installed once');
}

async function importAll(packages, consumer) {
  const names = packages.map((p) => p.pkg.name);
  const code = `for (const name of ${JSON.stringify(names)}) {
    const m = await import(name);
    if (Object.keys(m).length === 0) throw new Error(name + ' exports nothing');
  }`;
  await run(process.execPath, ['--input-type=module', '-e', code], { cwd: consumer, clean: true });
  say(`✓ imported ${names.length} packages (ESM)`);
}

/** A consumer of every package's public types, type-checked strictly and without skipLibCheck. */
async function typecheck(consumer) {
  const t = Date.now();
  await writeFile(
    join(consumer, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2023'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        types: ['node'],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
      },
      include: ['consumer.ts'],
    }),
  );
  await writeFile(
    join(consumer, 'consumer.ts'),
    `import fc from 'fast-check';
import { createApp, startServer, type RunningServer } from '@streamkeep/server';
import { isStorageError, type Storage, StorageError, type StorageCapabilities } from '@streamkeep/storage';
import { describeStorageConformance, ManualClock, messagesArb, StorageModel } from '@streamkeep/storage-conformance';
import { FileStorage, type FileStorageOptions } from '@streamkeep/storage-file';
import { MemoryStorage } from '@streamkeep/storage-memory';
import { PostgresStorage, type PostgresPoolOptions } from '@streamkeep/storage-postgres';
import { codeOf, ManualClock as SharedClock } from '@streamkeep/storage/testing';
import { expectCode } from '@streamkeep/storage-conformance/helpers';
import { supportsSubscriptions } from '@streamkeep/storage';

// The subpath exports resolve from the tarballs too, and the kit's helpers are the contract package's.
export const helpers = { codeOf, expectCode, clock: new SharedClock(), same: SharedClock === ManualClock };
export const subscriptionsOn = (s: Storage) => supportsSubscriptions(s);

export async function backends(rootDir: string): Promise<Storage[]> {
  const options: FileStorageOptions = { rootDir };
  const pool: PostgresPoolOptions = { max: 4 };
  const capabilities: StorageCapabilities = new MemoryStorage().capabilities;
  void pool;
  void capabilities;
  return [new MemoryStorage(), await FileStorage.open(options)];
}

export function classify(err: unknown): string {
  if (isStorageError(err, 'NOT_FOUND')) return 'missing';
  return err instanceof StorageError ? err.code : 'other';
}

// The kit README's example: the user's fast-check and the kit's must be one and the same.
export const property = fc.asyncProperty(fc.array(messagesArb), async (batches) => {
  const model = new StorageModel(new ManualClock());
  model.createStream('s', { contentType: 'text/plain' });
  for (const messages of batches) model.append('s', { messages, contentType: 'text/plain' });
});

export const register = () =>
  describeStorageConformance('MemoryStorage', {
    async create({ clock, limits }) {
      const storage = new MemoryStorage({ clock, ...limits });
      return { storage, teardown: () => storage.close() };
    },
  });

export type Running = RunningServer;
export const embed = createApp;
export const start = startServer;
export const postgres = PostgresStorage;
`,
  );
  const tsc = join(consumer, 'node_modules', 'typescript', 'bin', 'tsc');
  await run(process.execPath, [tsc, '-p', consumer], { cwd: consumer, clean: true });
  say(`✓ type-checked a consumer of every package with tsc (strict, no skipLibCheck) (${secs(t)})`);
}

function serverBin(consumer) {
  const dir = join(consumer, 'node_modules', '@streamkeep', 'server');
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  return { version: pkg.version, bin: join(dir, typeof pkg.bin === 'string' ? pkg.bin : pkg.bin.streamkeep) };
}

async function version(consumer) {
  const { version: expected } = serverBin(consumer);
  const { stdout } = await run('npx', ['--no-install', 'streamkeep', '--version'], {
    cwd: consumer,
    clean: true,
  });
  if (stdout.trim() !== expected)
    fail(`npx streamkeep --version printed ${JSON.stringify(stdout)}, not ${expected}`);
  say(`✓ npx streamkeep --version: ${expected}`);
}

/** Starts the installed server on a free loopback port; resolves its URL and base path from its "listening" line. */
function startInstalledServer(consumer, dataDir) {
  const { bin } = serverBin(consumer);
  const args = [bin, '--storage', 'file', '--data-dir', dataDir, '--host', '127.0.0.1', '--port', '0'];
  const child = spawn(process.execPath, args, {
    cwd: consumer,
    env: userEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return new Promise((resolvePromise, reject) => {
    let out = '';
    let buffered = '';
    const timer = setTimeout(
      () => reject(new CheckFailed(`the server did not report listening in 60 s:\n${out}`)),
      60_000,
    );
    child.stdout.on('data', (d) => {
      out += d;
      buffered += d;
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf('\n');
        let entry;
        try {
          entry = JSON.parse(line);
        } catch {
          continue;
        }
        if (entry.msg === 'listening' && typeof entry.url === 'string') {
          clearTimeout(timer);
          resolvePromise({
            child,
            url: entry.url.replace(/\/$/, ''),
            basePath: entry.basePath ?? '/v1/stream',
          });
        }
      }
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new CheckFailed(`the server exited (${code ?? signal}) before listening:\n${out}`));
    });
  });
}

function stop(child) {
  return new Promise((resolvePromise) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolvePromise(child.exitCode);
    const force = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(force);
      resolvePromise(code);
    });
    child.kill('SIGTERM');
  });
}

async function expectStatus(res, statuses, what) {
  if (!statuses.includes(res.status)) fail(`${what}: HTTP ${res.status} ${await res.text()}`);
}

async function roundTrip(consumer) {
  const t = Date.now();
  const dataDir = join(tmp, 'data');
  let server = await startInstalledServer(consumer, dataDir);
  const stream = () => `${server.url}${server.basePath}/pack-check/round-trip`;
  await expectStatus(
    await fetch(stream(), { method: 'PUT', headers: { 'content-type': 'text/plain' } }),
    [201],
    'create',
  );
  for (const body of ['hello, ', 'world']) {
    await expectStatus(
      await fetch(stream(), { method: 'POST', headers: { 'content-type': 'text/plain' }, body }),
      [200, 204],
      'append',
    );
  }
  const read = async (what) => {
    const res = await fetch(`${stream()}?offset=-1`);
    await expectStatus(res, [200], what);
    const text = await res.text();
    if (text !== 'hello, world') fail(`${what}: read ${JSON.stringify(text)}, expected "hello, world"`);
  };
  await read('read');
  const code = await stop(server.child);
  if (code !== 0) fail(`the server exited with ${code} on SIGTERM`);
  // The same data directory again: the lock was released, and the file backend kept what it acknowledged.
  server = await startInstalledServer(consumer, dataDir);
  await read('read after a restart');
  await stop(server.child);
  say(`✓ create / append / read over HTTP on loopback, file backend, across a restart (${secs(t)})`);
}

async function cleanup() {
  await Promise.all([...children].map((c) => (c.exitCode === null ? stop(c) : undefined)));
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true, maxRetries: 5 });
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    cleanup().finally(() => process.exit(130));
  });
}

try {
  tmp = await mkdtemp(join(tmpdir(), 'streamkeep-pack-check-'));
  const consumer = join(tmp, 'consumer');
  await mkdir(consumer);
  const packages = workspacePackages();
  say(`pack check: ${packages.map((p) => p.pkg.name).join(', ')}`);
  await pack(packages);
  await lint(packages);
  await install(packages, consumer);
  checkContents(packages, consumer);
  await importAll(packages, consumer);
  await typecheck(consumer);
  await version(consumer);
  await roundTrip(consumer);
  say(`pack check passed (${secs(started)})`);
} catch (err) {
  process.exitCode = 1;
  say(`✗ pack check failed: ${err instanceof CheckFailed ? err.message : (err?.stack ?? err)}`);
} finally {
  await cleanup();
}
