import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Offset, type ReadOptions, type ReadResult, StorageError } from '@streamkeep/storage';
import { type FileHandleLike, FileStorage, type FileSystem, nodeFileSystem } from '@streamkeep/storage-file';
import { MemoryStorage } from '@streamkeep/storage-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer } from './helpers.js';

/**
 * Storage faults surface as the right problem document (507 full, 503 transient, 500 broken) and never stop the server
 * from serving other streams; on the file backend a full disk fails appends cleanly while reads go on, and appends
 * resume when space returns. Faults are injected through `FileStorage`'s file-system seam.
 */

/** `node:fs/promises`, except that writes fail with ENOSPC while `full`, and queued one-shot faults fire first. */
class FlakyDisk implements FileSystem {
  full = false;
  private once: { code: string; op: 'writev' | 'datasync' }[] = [];
  writes = 0;

  failNext(op: 'writev' | 'datasync', code: string): void {
    this.once.push({ op, code });
  }
  private check(op: 'writev' | 'datasync' | 'other-write'): void {
    const i = this.once.findIndex((f) => f.op === op);
    if (i !== -1) {
      const [f] = this.once.splice(i, 1);
      throw Object.assign(new Error(`injected ${f!.code}`), { code: f!.code });
    }
    if (this.full && op !== 'datasync') throw Object.assign(new Error('injected ENOSPC'), { code: 'ENOSPC' });
  }
  async open(path: string, flags: 'r' | 'r+' | 'wx+'): Promise<FileHandleLike> {
    if (flags === 'wx+') this.check('other-write');
    const fh = await nodeFileSystem.open(path, flags);
    return {
      read: (b, o, l, p) => fh.read(b, o, l, p),
      writev: async (buffers, position) => {
        this.check('writev');
        this.writes++;
        return fh.writev(buffers, position);
      },
      datasync: async () => {
        this.check('datasync');
        return fh.datasync();
      },
      sync: () => fh.sync(),
      truncate: (len) => fh.truncate(len),
      stat: () => fh.stat(),
      close: () => fh.close(),
    };
  }
  readFile = nodeFileSystem.readFile;
  writeFile = async (path: string, data: Uint8Array, flags?: 'w' | 'wx') => {
    this.check('other-write');
    return nodeFileSystem.writeFile(path, data, flags);
  };
  mkdir = async (path: string) => {
    this.check('other-write');
    return nodeFileSystem.mkdir(path);
  };
  link = async (from: string, to: string) => {
    this.check('other-write');
    return nodeFileSystem.link(from, to);
  };
  readdir = nodeFileSystem.readdir;
  rename = nodeFileSystem.rename;
  unlink = nodeFileSystem.unlink;
  rmrf = nodeFileSystem.rmrf;
  exists = nodeFileSystem.exists;
}

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function fileServer() {
  const dir = await mkdtemp(join(tmpdir(), 'streamkeep-faults-'));
  dirs.push(dir);
  const disk = new FlakyDisk();
  const storage = await FileStorage.open({ rootDir: dir, fileSystem: disk, syncOnAppend: true });
  const server = await startTestServer('memory', { longPollTimeoutMs: 5_000 }, storage);
  const s = (name: string) => `${server.url}/v1/stream/${name}`;
  const post = (name: string, body: string) =>
    fetch(s(name), { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body });
  const put = (name: string, body?: string) =>
    fetch(s(name), { method: 'PUT', headers: { 'Content-Type': 'text/plain' }, ...(body ? { body } : {}) });
  const read = async (name: string) => (await fetch(`${s(name)}?offset=-1`)).text();
  return { dir, disk, storage, server, s, post, put, read };
}

describe('file backend: full disk', () => {
  it('fails appends and creates with 507 while reads and live reads go on; appends resume when space returns', async () => {
    const { dir, disk, server, s, post, put, read } = await fileServer();
    try {
      expect((await put('a', 'a0,')).status).toBe(201);
      expect((await put('b', 'b0,')).status).toBe(201);
      expect((await post('a', 'a1,')).status).toBe(204);
      const poll = fetch(`${s('a')}?offset=now&live=long-poll`);
      await new Promise((r) => setTimeout(r, 50));

      disk.full = true;
      const refused = await Promise.all([1, 2, 3, 4].map((i) => post('a', `lost${i},`)));
      for (const r of refused) {
        expect(r.status).toBe(507);
        expect(r.headers.get('content-type')).toBe('application/problem+json');
        const p = await r.json();
        expect(p).toMatchObject({ status: 507, code: 'INSUFFICIENT_STORAGE' });
        // No host details (paths) in the document.
        expect(JSON.stringify(p)).not.toContain(dir);
      }
      expect((await post('b', 'lost,')).status).toBe(507);
      expect((await put('c', 'c0,')).status).toBe(507);
      expect((await fetch(s('c'), { method: 'HEAD' })).status).toBe(404);
      // Reads are untouched, the server is healthy, the waiting long-poll was not woken by a failed write.
      expect(await read('a')).toBe('a0,a1,');
      expect(await read('b')).toBe('b0,');
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      const sse = await fetch(`${s('b')}?offset=-1&live=sse`);
      const reader = sse.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      expect(first).toContain('data:b0,');
      await reader.cancel();

      disk.full = false;
      expect((await post('a', 'a2,')).status).toBe(204);
      const woken = await poll;
      expect(woken.status).toBe(200);
      expect(await woken.text()).toBe('a2,');
      expect((await post('b', 'b1,')).status).toBe(204);
      expect((await put('c', 'c0,')).status).toBe(201);
      expect(await read('a')).toBe('a0,a1,a2,');

      // What was acknowledged survives a restart; what was refused left no trace.
      await server.stop();
      const reopened = await FileStorage.open({ rootDir: dir });
      try {
        const text = async (n: string) =>
          Buffer.concat((await reopened.read(n, '-1')).messages).toString('utf8');
        expect(await text('a')).toBe('a0,a1,a2,');
        expect(await text('b')).toBe('b0,b1,');
        expect(await text('c')).toBe('c0,');
        expect(reopened.recovery.truncated).toEqual([]);
      } finally {
        await reopened.close();
      }
    } finally {
      await server.stop();
    }
  });
});

describe('file backend: I/O errors', () => {
  it('EIO is 500 without details, EAGAIN is 503 with Retry-After; other streams and later appends are served', async () => {
    const { disk, server, post, put, read } = await fileServer();
    try {
      expect((await put('a', 'a0,')).status).toBe(201);
      expect((await put('b', 'b0,')).status).toBe(201);

      disk.failNext('writev', 'EIO');
      const broken = await post('a', 'lost,');
      expect(broken.status).toBe(500);
      const p = (await broken.json()) as { detail?: string };
      expect(p).toMatchObject({ status: 500, code: 'INTERNAL' });
      expect(p.detail).toBeUndefined();
      expect((await post('b', 'b1,')).status).toBe(204);
      expect((await post('a', 'a1,')).status).toBe(204);

      disk.failNext('datasync', 'EIO');
      expect((await post('a', 'lost-too,')).status).toBe(500);
      expect((await post('a', 'a2,')).status).toBe(204);

      disk.failNext('writev', 'EAGAIN');
      const busy = await post('b', 'lost,');
      expect(busy.status).toBe(503);
      expect(busy.headers.get('retry-after')).toBe('1');
      expect(await busy.json()).toMatchObject({ code: 'UNAVAILABLE' });
      expect((await post('b', 'b2,')).status).toBe(204);

      expect(await read('a')).toBe('a0,a1,a2,');
      expect(await read('b')).toBe('b0,b1,b2,');
    } finally {
      await server.stop();
    }
  });
});

/** A memory backend whose reads of one stream fail with a chosen error. */
class BrokenReads extends MemoryStorage {
  failure: unknown;
  override async read(name: string, from: Offset, options?: ReadOptions): Promise<ReadResult> {
    if (name === 'broken' && this.failure !== undefined) throw this.failure;
    return super.read(name, from, options);
  }
}

describe('any backend: unexpected failures', () => {
  it('maps CORRUPTED to 404 (quarantined) and non-storage exceptions to 500, without details, and keeps serving', async () => {
    const storage = new BrokenReads();
    const server = await startTestServer('memory', {}, storage);
    try {
      const s = (n: string) => `${server.url}/v1/stream/${n}`;
      for (const n of ['broken', 'fine']) {
        await fetch(s(n), { method: 'PUT', headers: { 'Content-Type': 'text/plain' }, body: `${n}!` });
      }
      const cases: [unknown, string][] = [
        [new StorageError('CORRUPTED', 'checksum mismatch in /secret/path'), 'CORRUPTED'],
        [new TypeError('cannot read properties of undefined (/secret/path)'), 'INTERNAL_ERROR'],
        [new StorageError('STORAGE_CLOSED', 'closed'), 'STORAGE_CLOSED'],
      ];
      for (const [failure, code] of cases) {
        storage.failure = failure;
        for (const live of ['', '&live=long-poll', '&live=sse']) {
          const r = await fetch(`${s('broken')}?offset=-1${live}`);
          const status = code === 'STORAGE_CLOSED' ? 503 : code === 'CORRUPTED' ? 404 : 500;
          expect(r.status).toBe(status);
          const text = await r.text();
          expect(JSON.parse(text)).toMatchObject({ code, status });
          expect(text).not.toContain('/secret/path');
        }
        expect(await (await fetch(`${s('fine')}?offset=-1`)).text()).toBe('fine!');
      }
      storage.failure = undefined;
      expect(await (await fetch(`${s('broken')}?offset=-1`)).text()).toBe('broken!');
    } finally {
      await server.stop();
    }
  });
});
