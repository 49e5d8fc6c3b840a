import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SERVER_CONFIG, parseServerConfig, SETTINGS } from '../src/config.js';
import { compileCli } from './helpers.js';

describe('configuration', () => {
  it('defaults to 127.0.0.1:4437, the file backend in ./data, fsync on, 30 s long-polls, /v1/stream', () => {
    const c = parseServerConfig([], {});
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
    const c = parseServerConfig([], env);
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
    const f = parseServerConfig(
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
    expect(parseServerConfig(['--no-sync-on-append'], {}).syncOnAppend).toBe(false);
    expect(parseServerConfig(['--no-compression'], {}).compression).toBe(false);
  });

  it('refuses bad values with a message naming the flag or variable', () => {
    const quiet = (cmd: import('commander').Command) => {
      cmd.exitOverride();
      cmd.configureOutput({ writeErr: () => {}, writeOut: () => {} });
    };
    expect(() => parseServerConfig(['--port', 'http'], {}, quiet)).toThrow(/whole number/);
    expect(() => parseServerConfig(['--storage', 'sql'], {}, quiet)).toThrow(/memory, file/);
    expect(() => parseServerConfig(['--base-path', 'v1'], {}, quiet)).toThrow(/starting with \//);
    expect(() => parseServerConfig([], { STREAMKEEP_PORT: '-1' }, quiet)).toThrow(/STREAMKEEP_PORT/);
    expect(() => parseServerConfig([], { STREAMKEEP_SYNC_ON_APPEND: 'maybe' }, quiet)).toThrow(
      /true or false/,
    );
    expect(() => parseServerConfig(['--bogus'], {}, quiet)).toThrow();
  });

  it('configures the postgres backend: URL from the flag, STREAMKEEP_POSTGRES_URL or DATABASE_URL; schema; pool', () => {
    expect(parseServerConfig([], {})).toMatchObject({
      postgresUrl: undefined,
      postgresSchema: 'streamkeep',
      postgresPoolMax: 10,
    });
    const db = 'postgresql://app:secret@db.internal:5432/app';
    expect(parseServerConfig(['--storage', 'postgres'], { DATABASE_URL: db })).toMatchObject({
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
    expect(parseServerConfig([], env)).toMatchObject({
      storage: 'postgres',
      postgresUrl: 'postgres://sk@127.0.0.1:6543/streams',
      postgresSchema: 'tenant_a',
      postgresPoolMax: 25,
    });
    expect(
      parseServerConfig(
        ['--postgres-url', 'postgresql://x@h/d', '--postgres-schema', 'Other_1', '--postgres-pool-max', '3'],
        env,
      ),
    ).toMatchObject({ postgresUrl: 'postgresql://x@h/d', postgresSchema: 'Other_1', postgresPoolMax: 3 });
    // DATABASE_URL set for something else does not disturb the other backends.
    expect(parseServerConfig(['--storage', 'file'], { DATABASE_URL: 'mysql://a@b/c' }).postgresUrl).toBe(
      undefined,
    );
  });

  it('refuses the postgres backend without a URL, and bad URLs, schemas and pool sizes', () => {
    expect(() => parseServerConfig(['--storage', 'postgres'], {})).toThrow(
      /--storage postgres needs a connection URL: --postgres-url, STREAMKEEP_POSTGRES_URL or DATABASE_URL/,
    );
    expect(() => parseServerConfig([], { STREAMKEEP_STORAGE: 'postgres', DATABASE_URL: '' })).toThrow(
      /needs a connection URL/,
    );
    const bad = () =>
      parseServerConfig(['--storage', 'postgres', '--postgres-url', 'http://u:hunter2@h/d'], {});
    expect(bad).toThrow(/^--postgres-url: expected a URL such as postgresql:/);
    expect(bad).not.toThrow(/hunter2/);
    expect(() => parseServerConfig(['--storage', 'postgres'], { DATABASE_URL: 'mysql://a@b/c' })).toThrow(
      /^DATABASE_URL: /,
    );
    for (const schema of ['1abc', 'pg_things', 'a-b', 'a.b', '"x"', '', 'x'.repeat(64)]) {
      expect(() => parseServerConfig(['--postgres-schema', schema], {})).toThrow(
        /--postgres-schema: expected a plain identifier/,
      );
    }
    expect(parseServerConfig(['--postgres-schema', `_${'x'.repeat(62)}`], {}).postgresSchema).toHaveLength(
      63,
    );
    expect(() => parseServerConfig(['--postgres-pool-max', '0'], {})).toThrow(/--postgres-pool-max: .*>= 1/);
    expect(() => parseServerConfig([], { STREAMKEEP_POSTGRES_POOL_MAX: 'many' })).toThrow(
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

  it('--help lists every flag with its environment variable and default', () => {
    const out = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    expect(out.status).toBe(0);
    for (const s of SETTINGS) {
      expect(out.stdout).toContain(s.flags.split(' ')[0]!);
      expect(out.stdout).toContain(s.env);
    }
    expect(out.stdout).toContain('(default: 4437)');
  });

  it('exits non-zero with a message on a bad flag', () => {
    const out = spawnSync(process.execPath, [bin, '--storage', 'sql'], { encoding: 'utf8' });
    expect(out.status).not.toBe(0);
    expect(out.stderr).toMatch(/memory, file, postgres/);
  });

  it('exits 2 when --storage postgres has no URL', () => {
    const out = spawnSync(process.execPath, [bin, '--storage', 'postgres'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
    });
    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(/--storage postgres needs a connection URL/);
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
