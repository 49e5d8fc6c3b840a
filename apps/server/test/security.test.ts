import { request } from 'node:http';
import { StorageError } from '@streamkeep/storage';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HttpError, problemFor } from '../src/error-status.js';
import { MAX_NAME_BYTES, MAX_NAME_SEGMENTS, parseStreamName } from '../src/http/names.js';
import { machineResources, sizeLimits } from '../src/http/sizing.js';
import { parseConfig, startTestServer } from './helpers.js';

/** Sends a path exactly as written (no client-side dot-segment folding). */
function rawStatus(url: string, path: string, method = 'PUT'): Promise<{ status: number; code?: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: hostname, port, path, method, headers: { 'Content-Type': 'text/plain' } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          const code = text.startsWith('{') ? (JSON.parse(text) as { code: string }).code : undefined;
          resolve({ status: res.statusCode!, ...(code === undefined ? {} : { code }) });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('stream-name policy', () => {
  it('accepts names at the length and segment limits and refuses one more', async () => {
    const server = await startTestServer('file');
    await server.storage;
    try {
      const long = 'n'.repeat(MAX_NAME_BYTES);
      expect(await rawStatus(server.url, `/v1/stream/${long}`)).toEqual({ status: 201 });
      expect(await rawStatus(server.url, `/v1/stream/${long}n`)).toEqual({
        status: 400,
        code: 'INVALID_STREAM_NAME',
      });
      // The limit is in UTF-8 bytes after percent-decoding: 512 × "é" (2 bytes) fits, one more byte does not.
      expect(await rawStatus(server.url, `/v1/stream/${'%C3%A9'.repeat(MAX_NAME_BYTES / 2)}`)).toEqual({
        status: 201,
      });
      expect((await rawStatus(server.url, `/v1/stream/${'%C3%A9'.repeat(MAX_NAME_BYTES / 2)}x`)).status).toBe(
        400,
      );
      const segs = (n: number) => Array.from({ length: n }, (_, i) => `s${i}`).join('/');
      expect(await rawStatus(server.url, `/v1/stream/${segs(MAX_NAME_SEGMENTS)}`)).toEqual({ status: 201 });
      expect((await rawStatus(server.url, `/v1/stream/${segs(MAX_NAME_SEGMENTS + 1)}`)).status).toBe(400);
    } finally {
      await server.stop();
    }
  });

  it('refuses traversal, empty and dot segments, control characters, bad encodings and the reserved prefix', async () => {
    const server = await startTestServer('memory');
    await server.storage;
    try {
      const refused: [string, number][] = [
        ['..', 400],
        ['a/../b', 400],
        ['%2e%2e', 400],
        ['%2E%2E/etc/passwd', 400],
        ['a/%2e/b', 400],
        ['a%2F..%2Fb', 400], // %2F decodes to "/" before the segment check
        ['a//b', 400],
        ['a/', 400],
        ['%00', 400],
        ['a%0Ab', 400],
        ['%7F', 400],
        ['%', 400],
        ['%zz', 400],
        ['%c0%ae%c0%ae', 400], // overlong UTF-8 for "."
        ['%ed%a0%80', 400], // an encoded surrogate
        ['__ds', 404],
        ['__ds/subscriptions', 404],
        ['%5F%5Fds/x', 404],
      ];
      for (const [name, status] of refused) {
        expect(await rawStatus(server.url, `/v1/stream/${name}`), name).toMatchObject({ status });
      }
      // Dots inside a segment are ordinary characters; a segment merely starting with __ds is not reserved.
      for (const name of ['v1.2', '..foo', 'a/...', '__dsx', 'x/__ds', '%E2%80%AE']) {
        expect(await rawStatus(server.url, `/v1/stream/${name}`), name).toEqual({ status: 201 });
      }
    } finally {
      await server.stop();
    }
  });

  it('law: an accepted name has no empty, "." or ".." segment, no control character and stays within the limits', () => {
    const piece = fc.oneof(
      fc.constantFrom('..', '.', '', '%2e', '%2E%2e', '%2f', '/', '%00', '%c0%ae', '%', 'a', '__ds'),
      fc.string({ maxLength: 6 }).map((s) => {
        try {
          return encodeURIComponent(s);
        } catch {
          return '%ff';
        }
      }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        let name: string;
        try {
          name = parseStreamName(pieces.join(''));
        } catch {
          return;
        }
        const segments = name.split('/');
        expect(segments.length).toBeLessThanOrEqual(MAX_NAME_SEGMENTS);
        expect(Buffer.byteLength(name)).toBeLessThanOrEqual(MAX_NAME_BYTES);
        for (const s of segments) expect(['', '.', '..']).not.toContain(s);
        // biome-ignore lint/suspicious/noControlCharactersInRegex: the law is about control characters.
        expect(name).not.toMatch(/[\u0000-\u001f\u007f]/);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('security headers', () => {
  it('serves untrusted stream bytes sandboxed and unsniffed, on reads, errors and preflights', async () => {
    const server = await startTestServer('memory');
    await server.storage;
    try {
      const url = `${server.url}/v1/stream/page`;
      await fetch(url, {
        method: 'PUT',
        headers: { 'Content-Type': 'text/html' },
        body: '<script>alert(document.cookie)</script>',
      });
      for (const res of [
        await fetch(`${url}?offset=-1`),
        await fetch(`${server.url}/v1/stream/missing`),
        await fetch(url, { method: 'OPTIONS' }),
        await fetch(url, { method: 'HEAD' }),
      ]) {
        expect(res.headers.get('content-security-policy')).toBe(
          "default-src 'none'; frame-ancestors 'none'; sandbox",
        );
        expect(res.headers.get('x-content-type-options')).toBe('nosniff');
        expect(res.headers.get('referrer-policy')).toBe('no-referrer');
        // Never credentialed CORS: a wildcard origin cannot be combined with cookies.
        expect(res.headers.get('access-control-allow-credentials')).toBeNull();
      }
    } finally {
      await server.stop();
    }
  });
});

describe('limit settings', () => {
  it('reads every limit from flags and environment variables, with documented defaults', () => {
    // Connection and admission limits are sized from this machine's memory and descriptors (see sizeLimits).
    const sized = sizeLimits(machineResources(), 1024 * 1024);
    expect(parseConfig([], {})).toMatchObject({
      maxBodyBytes: 10 * 1024 * 1024,
      maxHeaderBytes: 16 * 1024,
      maxStreams: 1_000_000,
      maxLiveReads: sized.maxLiveReads,
      maxLiveReadsPerClient: undefined,
      maxInFlight: sized.maxInFlight,
      maxQueued: sized.maxQueued,
      queueTargetMs: 100,
    });
    expect(parseConfig(['--max-live-reads-per-client', '5'], {}).maxLiveReadsPerClient).toBe(5);
    const env = {
      STREAMKEEP_MAX_HEADER_BYTES: '8k',
      STREAMKEEP_MAX_STREAMS: '50',
      STREAMKEEP_MAX_LIVE_READS: '10',
      STREAMKEEP_MAX_IN_FLIGHT: '4',
      STREAMKEEP_MAX_QUEUED: '0',
      STREAMKEEP_QUEUE_TARGET: '250',
    };
    expect(parseConfig([], env)).toMatchObject({
      maxHeaderBytes: 8192,
      maxStreams: 50,
      maxLiveReads: 10,
      maxInFlight: 4,
      maxQueued: 0,
      queueTargetMs: 250,
    });
    expect(
      parseConfig(['--max-streams', '0', '--max-in-flight', '2', '--max-live-reads', '3'], env),
    ).toMatchObject({ maxStreams: undefined, maxInFlight: 2, maxLiveReads: 3 });
    expect(parseConfig(['--max-queued', '5', '--queue-target', '300'], env)).toMatchObject({
      maxQueued: 5,
      queueTargetMs: 300,
    });
    const quiet = (cmd: import('commander').Command) => {
      cmd.exitOverride();
      cmd.configureOutput({ writeErr: () => {}, writeOut: () => {} });
    };
    expect(() => parseConfig(['--max-in-flight', '0'], {}, quiet)).toThrow(/--max-in-flight/);
    expect(() => parseConfig(['--max-header-bytes', '100'], {}, quiet)).toThrow(/at least 1024 bytes/);
    expect(() => parseConfig([], { STREAMKEEP_MAX_STREAMS: 'many' }, quiet)).toThrow(
      /STREAMKEEP_MAX_STREAMS/,
    );
  });
});

describe('limit errors', () => {
  it('are problem documents with their statuses; only real server faults are logged as such', () => {
    const streams = problemFor(new HttpError('TOO_MANY_STREAMS', 'full'));
    expect(streams).toMatchObject({ status: 507, serverFault: false, problem: { code: 'TOO_MANY_STREAMS' } });
    const busy = problemFor(new HttpError('OVERLOADED', 'busy', { 'Retry-After': '1' }));
    expect(busy).toMatchObject({ status: 503, serverFault: false, headers: { 'Retry-After': '1' } });
    expect(problemFor(new HttpError('TOO_MANY_LIVE_READS', 'x')).headers['Retry-After']).toBe('1');
    expect(problemFor(new HttpError('HEADERS_TOO_LARGE', 'x')).status).toBe(431);
    expect(problemFor(new HttpError('REQUEST_TIMEOUT', 'x')).problem.title).toBe('Request Timeout');
    expect(problemFor(new HttpError('REQUEST_ABORTED', 'x')).status).toBe(400);
    expect(problemFor(new StorageError('INSUFFICIENT_STORAGE', 'x')).serverFault).toBe(true);
    expect(problemFor(new Error('boom')).serverFault).toBe(true);
  });
});
