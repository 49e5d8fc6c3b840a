import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileCli } from './helpers.js';

/**
 * A body over `--max-body-bytes` sent by a client without `Expect: 100-continue` (fetch, undici): the server answers
 * 413 while the body is still arriving, and the client must be able to read that answer rather than a connection
 * reset; the server must not buffer what it refuses. The server runs in a child process so that its RSS is its own.
 */
const pkgDir = resolve(import.meta.dirname, '..');
const buildDir = join(pkgDir, '.refusal-test-build');
const MiB = 1024 * 1024;
const BODY = 256 * MiB;

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

/** A body of `total` bytes made on demand, 64 KiB at a time, never held whole. */
function hugeBody(total: number): { stream: ReadableStream<Uint8Array>; sent: () => number } {
  let sent = 0;
  const chunk = new Uint8Array(64 * 1024).fill(0x61);
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) {
        controller.close();
        return;
      }
      sent += chunk.length;
      controller.enqueue(chunk.slice());
    },
  });
  return { stream, sent: () => sent };
}

let child: ChildProcess;
let base: string;

beforeAll(async () => {
  const bin = compileCli(buildDir);
  child = spawn(process.execPath, [bin, '--storage', 'memory', '--port', '0', '--max-body-bytes', '1mib'], {
    cwd: pkgDir,
    env: { PATH: process.env.PATH, STREAMKEEP_LOG_REQUESTS: 'false' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  base = await new Promise<string>((ok, fail) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg: string; url?: string };
      if (entry.msg === 'listening') ok(entry.url!);
    });
    child.once('exit', (code) => fail(new Error(`server exited with ${code}`)));
  });
  await fetch(`${base}/v1/stream/big`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/octet-stream' },
  });
}, 60_000);

afterAll(async () => {
  child?.kill('SIGKILL');
  await rm(buildDir, { recursive: true, force: true });
});

describe('a too-large body sent without Expect: 100-continue', () => {
  for (const client of ['fetch', 'undici.request'] as const) {
    for (const declared of [false, true]) {
      it(`${client}, ${declared ? 'declared' : 'chunked'}: 256 MiB streamed gets a readable 413, the server's RSS stays flat`, {
        timeout: 120_000,
      }, async () => {
        const before = await rssOf(child.pid!);
        const { stream, sent } = hugeBody(BODY);
        const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream' };
        if (declared) headers['Content-Length'] = String(BODY);
        let status: number;
        let problem: { code?: string };
        if (client === 'fetch') {
          const res = await fetch(`${base}/v1/stream/big`, {
            method: 'POST',
            headers,
            body: stream,
            duplex: 'half',
          } as RequestInit);
          status = res.status;
          problem = (await res.json()) as { code?: string };
        } else {
          const res = await request(`${base}/v1/stream/big`, {
            method: 'POST',
            headers,
            body: Readable.fromWeb(stream as NodeReadableStream<Uint8Array>),
          });
          status = res.statusCode;
          problem = (await res.body.json()) as { code?: string };
        }
        await stream.cancel().catch(() => {});
        expect(status).toBe(413);
        expect(problem.code).toBe('BODY_TOO_LARGE');
        // The server stopped reading long before the end: the client was held back by TCP, not drained.
        expect(sent()).toBeLessThan(BODY);
        const after = await rssOf(child.pid!);
        expect(after - before).toBeLessThan(64 * MiB);
        // The server goes on serving.
        const ok = await fetch(`${base}/v1/stream/big`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/octet-stream' },
          body: 'small',
        });
        expect(ok.status).toBe(204);
      });
    }
  }
});
