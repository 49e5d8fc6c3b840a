import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SERVER_CONFIG, SETTINGS, serverVersion, settingsMarkdown } from '../src/settings/index.js';
import { compileCli, parseConfig } from './helpers.js';

describe('configuration', () => {
  it('defaults to 127.0.0.1:4437, the file backend in ./data, fsync on, 30 s long-polls, /v1/stream', () => {
    const c = parseConfig([], {});
    expect(c).toEqual(DEFAULT_SERVER_CONFIG);
    expect(c).toMatchObject({
      host: '127.0.0.1',
      port: 4437,
      storage: 'file',
      dataDir: './data',
      syncOnAppend: true,
      longPollTimeoutMs: 30_000,
      basePath: '/v1/stream',
    });
  });

  it('reads every setting from its environment variable, and flags win over the environment', () => {
    const env = {
      STREAMKEEP_HOST: '0.0.0.0',
      STREAMKEEP_PORT: '8080',
      STREAMKEEP_STORAGE: 'memory',
      STREAMKEEP_DATA_DIR: '/tmp/x',
      STREAMKEEP_SYNC_ON_APPEND: 'false',
      STREAMKEEP_LONG_POLL_TIMEOUT: '500',
      STREAMKEEP_BASE_PATH: '/streams',
      STREAMKEEP_MAX_BODY_BYTES: '1mib',
      STREAMKEEP_MAX_STREAM_BYTES: '2m',
      STREAMKEEP_MAX_TOTAL_BYTES: '1g',
      STREAMKEEP_CORS_ORIGINS: 'https://a.example, https://b.example',
      STREAMKEEP_COMPRESSION: 'off',
    };
    const c = parseConfig([], env);
    expect(c).toMatchObject({
      host: '0.0.0.0',
      port: 8080,
      storage: 'memory',
      dataDir: '/tmp/x',
      syncOnAppend: false,
      longPollTimeoutMs: 500,
      basePath: '/streams',
      maxBodyBytes: 1024 ** 2,
      maxStreamBytes: 2 * 1024 ** 2,
      maxTotalBytes: 1024 ** 3,
      corsOrigins: ['https://a.example', 'https://b.example'],
      compression: false,
    });
    const f = parseConfig(
      ['--port', '9000', '--sync-on-append', '--storage', 'file', '--max-stream-bytes', '0', '--compression'],
      env,
    );
    expect(f).toMatchObject({
      port: 9000,
      syncOnAppend: true,
      storage: 'file',
      maxStreamBytes: undefined,
      compression: true,
    });
    expect(parseConfig(['--no-sync-on-append'], {}).syncOnAppend).toBe(false);
    expect(parseConfig(['--no-compression'], {}).compression).toBe(false);
    expect(parseConfig(['--compression', 'off'], {}).compression).toBe(false);
    expect(parseConfig(['--log-requests=false', '--metrics', 'no'], {})).toMatchObject({
      logRequests: false,
      metrics: false,
    });
    // A flag that turns a limit off wins over the variable that sets it.
    expect(parseConfig(['--max-streams', '0'], { STREAMKEEP_MAX_STREAMS: '5' }).maxStreams).toBe(undefined);
  });

  it('the README flag table is generated from the settings table and up to date', async () => {
    const readme = await readFile(join(pkgDir, 'README.md'), 'utf8');
    const [, table] = /<!-- settings:start[^>]*-->\n([\s\S]*?)<!-- settings:end -->/.exec(readme) ?? [];
    expect(table, 'README.md has no settings table markers').toBeDefined();
    expect(table, "the README's flag table is stale: run `pnpm --filter @streamkeep/server readme`").toBe(
      settingsMarkdown(),
    );
    for (const s of Object.values(SETTINGS)) expect(table).toContain(s.env);
  });

  it('refuses bad values with a message naming the flag or variable', () => {
    const quiet = (cmd: import('commander').Command) => {
      cmd.exitOverride();
      cmd.configureOutput({ writeErr: () => {}, writeOut: () => {} });
    };
    expect(() => parseConfig(['--port', 'http'], {}, quiet)).toThrow(/whole number/);
    expect(() => parseConfig(['--storage', 'sql'], {}, quiet)).toThrow(/memory, file/);
    expect(() => parseConfig(['--base-path', 'v1'], {}, quiet)).toThrow(/starting with \//);
    expect(() => parseConfig([], { STREAMKEEP_PORT: '-1' }, quiet)).toThrow(/STREAMKEEP_PORT/);
    expect(() => parseConfig([], { STREAMKEEP_SYNC_ON_APPEND: 'maybe' }, quiet)).toThrow(/true or false/);
    expect(() => parseConfig(['--bogus'], {}, quiet)).toThrow();
  });

  it('configures the postgres backend: URL from the flag, STREAMKEEP_POSTGRES_URL or DATABASE_URL; schema; pool', () => {
    expect(parseConfig([], {})).toMatchObject({
      postgresUrl: undefined,
      postgresSchema: 'streamkeep',
      postgresPoolMax: 10,
    });
    const db = 'postgresql://app:secret@db.internal:5432/app';
    expect(parseConfig(['--storage', 'postgres'], { DATABASE_URL: db })).toMatchObject({
      storage: 'postgres',
      postgresUrl: db,
    });
    const env = {
      STREAMKEEP_STORAGE: 'postgres',
      STREAMKEEP_POSTGRES_URL: 'postgres://sk@127.0.0.1:6543/streams',
      STREAMKEEP_POSTGRES_SCHEMA: 'tenant_a',
      STREAMKEEP_POSTGRES_POOL_MAX: '25',
      DATABASE_URL: db,
    };
    expect(parseConfig([], env)).toMatchObject({
      storage: 'postgres',
      postgresUrl: 'postgres://sk@127.0.0.1:6543/streams',
      postgresSchema: 'tenant_a',
      postgresPoolMax: 25,
    });
    expect(
      parseConfig(
        ['--postgres-url', 'postgresql://x@h/d', '--postgres-schema', 'Other_1', '--postgres-pool-max', '3'],
        env,
      ),
    ).toMatchObject({ postgresUrl: 'postgresql://x@h/d', postgresSchema: 'Other_1', postgresPoolMax: 3 });
    // DATABASE_URL set for something else does not disturb the other backends.
    expect(parseConfig(['--storage', 'file'], { DATABASE_URL: 'mysql://a@b/c' }).postgresUrl).toBe(undefined);
  });

  it('refuses the postgres backend without a URL, and bad URLs, schemas and pool sizes', () => {
    expect(() => parseConfig(['--storage', 'postgres'], {})).toThrow(
      /--storage postgres needs a connection URL: --postgres-url, STREAMKEEP_POSTGRES_URL or DATABASE_URL/,
    );
    expect(() => parseConfig([], { STREAMKEEP_STORAGE: 'postgres', DATABASE_URL: '' })).toThrow(
      /needs a connection URL/,
    );
    const bad = () => parseConfig(['--storage', 'postgres', '--postgres-url', 'http://u:hunter2@h/d'], {});
    expect(bad).toThrow(/^--postgres-url: expected a URL such as postgresql:/);
    expect(() => parseConfig([], { STREAMKEEP_POSTGRES_URL: 'http://u:hunter2@h/d' })).toThrow(
      /^STREAMKEEP_POSTGRES_URL: expected a URL/,
    );
    expect(bad).not.toThrow(/hunter2/);
    expect(() => parseConfig(['--storage', 'postgres'], { DATABASE_URL: 'mysql://a@b/c' })).toThrow(
      /^DATABASE_URL: /,
    );
    for (const schema of ['1abc', 'pg_things', 'a-b', 'a.b', '"x"', '', 'x'.repeat(64)]) {
      expect(() => parseConfig(['--postgres-schema', schema], {})).toThrow(
        /option '--postgres-schema <name>' argument .* is invalid\. expected a plain identifier/,
      );
    }
    expect(parseConfig(['--postgres-schema', `_${'x'.repeat(62)}`], {}).postgresSchema).toHaveLength(63);
    expect(() => parseConfig(['--postgres-pool-max', '0'], {})).toThrow(
      /'--postgres-pool-max <count>' argument '0' is invalid.*>= 1/,
    );
    expect(() => parseConfig([], { STREAMKEEP_POSTGRES_POOL_MAX: 'many' })).toThrow(
      /STREAMKEEP_POSTGRES_POOL_MAX/,
    );
  });
});

/** The built binary, compiled into a private directory so this test never races the package's own build. */
const pkgDir = resolve(import.meta.dirname, '..');
const buildDir = join(pkgDir, '.cli-test-build');
const bin = join(buildDir, 'main.js');

function spawnServer(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { child: ChildProcess; logs: Record<string, unknown>[]; url: Promise<string> } {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: pkgDir,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const url = new Promise<string>((resolveUrl, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      logs.push(entry);
      if (entry.msg === 'listening') resolveUrl(entry.url as string);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}`)));
  });
  return { child, logs, url };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((r) => {
    if (child.exitCode !== null) r(child.exitCode);
    else child.once('exit', (code) => r(code));
  });
}

/** A loopback TCP listener on `port`. */
function listenOn(port: number): Promise<Server> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => ok(server));
  });
}

/** Runs the binary to its exit. */
function runToExit(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((ok) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: pkgDir,
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('exit', (code) => ok({ code, stderr }));
  });
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 1_000 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  expect(check()).toBe(true);
}

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${url}/readyz`).catch(() => undefined);
    if (res?.status === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('server never became ready');
}

describe('the streamkeep binary', () => {
  beforeAll(() => {
    compileCli(buildDir);
  }, 60_000);
  afterAll(async () => {
    await rm(buildDir, { recursive: true, force: true });
  });

  it('--help lists every flag with its environment variable and default; --version prints the version', () => {
    const out = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    expect(out.status).toBe(0);
    for (const s of Object.values(SETTINGS)) {
      expect(out.stdout).toContain(s.flags.split(' ')[0]!);
      expect(out.stdout).toContain(s.env);
    }
    expect(out.stdout).toMatch(/default:\s+4437,\s+env:\s+STREAMKEEP_PORT/);
    const version = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8' });
    expect([version.status, version.stdout.trim()]).toEqual([0, serverVersion()]);
    expect(serverVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('exits 2 with one line naming the problem for every usage error', { timeout: 60_000 }, () => {
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [['--port', '99999'], {}, /--port <port>.*'99999' is invalid.*from 0 to 65535/],
      [['--bogus'], {}, /unknown option '--bogus'/],
      [['--storage', 'sql'], {}, /'sql' is invalid.*choices are memory, file, postgres/],
      [['--log-level', 'loud'], {}, /choices are fatal, error/],
      [['--max-body-bytes', 'lots'], {}, /--max-body-bytes.*byte size/],
      [['extra'], {}, /too many arguments/],
      [[], { STREAMKEEP_PORT: 'abc' }, /from env 'STREAMKEEP_PORT' is invalid/],
      [['--storage', 'postgres'], {}, /--storage postgres needs a connection URL/],
      [['--port'], {}, /argument missing/],
    ];
    for (const [args, env, message] of cases) {
      const out = spawnSync(process.execPath, [bin, ...args], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH, ...env },
      });
      expect(out.status, args.join(' ')).toBe(2);
      const lines = out.stderr.trim().split('\n');
      expect(lines[0], args.join(' ')).toMatch(/^streamkeep: /);
      expect(lines[0], args.join(' ')).toMatch(message);
      expect(lines.slice(1), args.join(' ')).toEqual(["Try 'streamkeep --help'."]);
      expect(out.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('exits 1 with one line, no stack, when the port is taken, the host unknown or the database refuses', {
    timeout: 30_000,
  }, async () => {
    const taken = await listenOn(0);
    try {
      const port = String((taken.address() as { port: number }).port);
      const cases: [string[], RegExp][] = [
        [
          ['--port', port],
          /^streamkeep: cannot start: cannot listen on 127\.0\.0\.1:\d+: the port is already in use$/,
        ],
        [
          ['--host', 'no-such-host.invalid', '--port', '0'],
          /cannot listen on no-such-host\.invalid:0: unknown host/,
        ],
      ];
      const closed = await listenOn(0);
      const closedPort = (closed.address() as { port: number }).port;
      await new Promise((r) => closed.close(r));
      cases.push([
        [
          '--storage',
          'postgres',
          '--postgres-url',
          `postgresql://u:secret@127.0.0.1:${closedPort}/db`,
          '--port',
          '0',
        ],
        /^streamkeep: cannot open storage: PostgreSQL at 127\.0\.0\.1:\d+\/db: connection refused$/,
      ]);
      for (const [args, message] of cases) {
        const out = await runToExit(args.includes('--storage') ? args : [...args, '--storage', 'memory']);
        expect(out.code, args.join(' ')).toBe(1);
        expect(out.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
        expect(out.stderr.trim(), args.join(' ')).toMatch(message);
        expect(out.stderr).not.toContain('secret');
      }
    } finally {
      taken.close();
    }
  });

  it('exits 1 at once, without spinning, on a data directory that cannot be created or used', {
    timeout: 30_000,
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'streamkeep-cli-'));
    try {
      const file = join(dir, 'a-file');
      await writeFile(file, 'x');
      const cases: [string, RegExp][] = [
        // Node's recursive mkdir retries /proc/x forever at full CPU; the server must not.
        [
          '/proc/streamkeep-test/data',
          /data directory "\/proc\/streamkeep-test\/data": .*cannot hold directories \(ENOENT\)/,
        ],
        [join(file, 'data'), /is not a directory \(ENOTDIR\)/],
      ];
      for (const [dataDir, message] of cases) {
        const out = await runToExit(['--port', '0', '--data-dir', dataDir]);
        expect(out.code, dataDir).toBe(1);
        expect(out.stderr.trim(), dataDir).toMatch(/^streamkeep: cannot open storage: /);
        expect(out.stderr.trim(), dataDir).toMatch(message);
        expect(out.stderr.trim().split('\n')).toHaveLength(1);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stops on SIGTERM within --shutdown-timeout while storage is still opening (a database that never answers)', {
    timeout: 60_000,
  }, async () => {
    // A TCP listener that accepts and never says a word: PostgreSQL's connection attempt waits for its timeout.
    const silent = await listenOn(0);
    const sockets: import('node:net').Socket[] = [];
    silent.on('connection', (s) => sockets.push(s));
    const port = (silent.address() as { port: number }).port;
    const { child, logs, url } = spawnServer([
      '--storage',
      'postgres',
      '--postgres-url',
      `postgresql://u:secret@127.0.0.1:${port}/db`,
      '--postgres-connect-timeout',
      '600000',
      '--shutdown-timeout',
      '300',
      '--port',
      '0',
    ]);
    try {
      const base = await url;
      expect((await fetch(`${base}/readyz`)).status).toBe(503);
      await until(() => sockets.length > 0);
      child.kill('SIGTERM');
      // The connection attempt would wait ten minutes; the test's own timeout is one.
      expect(await exited(child)).toBe(0);
      expect(logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['shutting down', 'stopped']));
      expect(JSON.stringify(logs)).not.toContain('secret');
    } finally {
      child.kill('SIGKILL');
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('serves with flags from the command line and the environment, logs JSON, and stops on SIGTERM', {
    timeout: 20_000,
  }, async () => {
    const { child, logs, url } = spawnServer(['--storage', 'memory', '--port', '0'], {
      STREAMKEEP_BASE_PATH: '/custom',
      STREAMKEEP_LONG_POLL_TIMEOUT: '200',
    });
    try {
      const base = await url;
      expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      await waitReady(base);
      const stream = `${base}/custom/cli`;
      expect((await fetch(stream, { method: 'PUT', headers: { 'Content-Type': 'text/plain' } })).status).toBe(
        201,
      );
      expect(
        (await fetch(stream, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'hi' }))
          .status,
      ).toBe(204);
      expect(await (await fetch(`${stream}?offset=-1`)).text()).toBe('hi');
      const started = Date.now();
      const poll = await fetch(`${stream}?offset=now&live=long-poll`);
      expect(poll.status).toBe(204);
      expect(Date.now() - started).toBeLessThan(2_000);
      child.kill('SIGTERM');
      expect(await exited(child)).toBe(0);
      expect(logs.map((l) => l.msg)).toEqual(
        expect.arrayContaining(['listening', 'shutting down', 'stopped']),
      );
      expect(logs[0]).toMatchObject({ service: 'streamkeep', level: 30 });
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('keeps data across restarts on the file backend', { timeout: 20_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'streamkeep-cli-'));
    try {
      const first = spawnServer(['--port', '0', '--data-dir', dir, '--no-sync-on-append']);
      const base1 = await first.url;
      await waitReady(base1);
      const s1 = `${base1}/v1/stream/durable`;
      await fetch(s1, { method: 'PUT', headers: { 'Content-Type': 'text/plain' }, body: 'kept' });
      first.child.kill('SIGINT');
      expect(await exited(first.child)).toBe(0);

      const second = spawnServer(['--port', '0'], { STREAMKEEP_DATA_DIR: dir });
      const base2 = await second.url;
      await waitReady(base2);
      expect(await (await fetch(`${base2}/v1/stream/durable?offset=-1`)).text()).toBe('kept');
      second.child.kill('SIGTERM');
      expect(await exited(second.child)).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
