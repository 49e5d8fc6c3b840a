import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import type { Storage } from '@streamkeep/storage';
import { FileStorage, type FileSystem, nodeFileSystem } from '@streamkeep/storage-file';
import { MemoryStorage } from '@streamkeep/storage-memory';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../src/server.js';
import { DEFAULT_SERVER_CONFIG } from '../src/settings/index.js';

/**
 * HTTP fuzzing against an in-process server on each backend. Laws: no 5xx, no crash, no hang; every 4xx from the app
 * is a problem document with the same status; data acknowledged before the fuzzing is intact afterwards; a good client
 * is served normally afterwards; on the file backend no file-system call touches a path outside the data directory.
 *
 * `STREAMKEEP_FUZZ_RUNS` (default 600) batches of 10 concurrent well-formed-but-hostile requests per backend, plus
 * `STREAMKEEP_FUZZ_RAW_RUNS` (default 150) raw byte-level requests; `STREAMKEEP_FUZZ_SEED` pins the seed.
 */
const RUNS = Number(process.env.STREAMKEEP_FUZZ_RUNS ?? 600);
const RAW_RUNS = Number(process.env.STREAMKEEP_FUZZ_RAW_RUNS ?? 150);
const BATCH = 10;
const SEED =
  process.env.STREAMKEEP_FUZZ_SEED === undefined ? undefined : Number(process.env.STREAMKEEP_FUZZ_SEED);
const HANG_MS = 5_000;
const BASE = '/v1/stream';
/** Streams written before the fuzzing; the generators below never name them (checked in `send`, too). */
const SENTINELS = ['KEEP/text', 'KEEP/json'];

// ---- arbitraries -------------------------------------------------------------------------------------------------

const hostileSegment = fc.constantFrom(
  '..',
  '.',
  '',
  '%2e%2e',
  '%2E',
  '%2e',
  '.%2e',
  '%2f',
  '%2F..%2F..%2Fetc%2Fpasswd',
  '..%2f..%2fetc',
  '%00',
  '%0a',
  '%0d%0a',
  '%7f',
  '%ff',
  '%c0%ae',
  '%c0%af',
  '%e2%80%ae',
  '%ed%a0%80',
  '__ds',
  '%5f%5fds',
  '%',
  '%zz',
  '%%32%65',
  '%252e%252e',
  'x'.repeat(1100),
  '%C3%A9'.repeat(400),
  '~',
  '%20',
  'a;b',
  '%3f',
  '%23',
  '*',
  '\\..\\..\\',
  'con',
  'nul.txt',
);
const pathChar = fc.constantFrom(..."abcxyz019-_.~!$&'()*+,;=:@%".split(''));
const segment = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('a', 'b', 'j', 'dir') },
  { weight: 3, arbitrary: hostileSegment },
  { weight: 2, arbitrary: fc.string({ unit: pathChar, maxLength: 12 }) },
  {
    weight: 2,
    arbitrary: fc.string({ unit: 'binary', maxLength: 8 }).map((s) => {
      try {
        return encodeURIComponent(s);
      } catch {
        return '%ed%b0%80'; // a lone surrogate, encoded as the invalid UTF-8 it would be
      }
    }),
  },
);
const streamPath = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom('a', 'b', 'j', 'dir/x', 'dir/y').map((n) => `${BASE}/${n}`) },
  {
    weight: 4,
    arbitrary: fc.array(segment, { minLength: 1, maxLength: 10 }).map((segs) => `${BASE}/${segs.join('/')}`),
  },
);
const otherPath = fc.constantFrom(
  '/',
  '*',
  '/healthz',
  '/readyz',
  '/v1',
  BASE,
  `${BASE}/`,
  '/v1/streamx/a',
  `/${BASE}/a`,
  `${BASE}//a`,
  `${BASE}/a/`,
  '/V1/STREAM/a',
  `${BASE}/%2e%2e/%2e%2e/etc/passwd`,
  '/../../etc/passwd',
  `${BASE}/../../../etc/passwd`,
  `${BASE}/__ds/subscriptions`,
);
const offsetValue = fc.oneof(
  fc.constantFrom(
    '-1',
    'now',
    '0000000000000000_0000000000000000',
    '0000000000000001_0000000000000004',
    'ffffffffffffffff_ffffffffffffffff',
    '0020000000000000_0000000000000000',
    '',
    '-2',
    'NOW',
    '%00',
    '9'.repeat(40),
    '0_0',
    '0000000000000000_000000000000000g',
  ),
  fc.string({ unit: pathChar, maxLength: 40 }),
);
const queryPart = fc.oneof(
  offsetValue.map((v) => `offset=${v}`),
  fc.constantFrom('long-poll', 'sse', '', 'poll', 'SSE', '%00', 'long-poll%00').map((v) => `live=${v}`),
  fc.string({ unit: pathChar, maxLength: 20 }).map((v) => `cursor=${v}`),
  fc
    .tuple(fc.string({ unit: pathChar, maxLength: 6 }), fc.string({ unit: pathChar, maxLength: 6 }))
    .map(([k, v]) => `${k}=${v}`),
);
const query = fc.oneof(
  { weight: 2, arbitrary: fc.constant('') },
  { weight: 5, arbitrary: fc.array(queryPart, { minLength: 1, maxLength: 4 }).map((p) => `?${p.join('&')}`) },
);

/** Header values Node's client lets through: tab, printable ASCII and latin1 (obs-text). */
const headerChar = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
  { weight: 1, arbitrary: fc.constant(0x09) },
  { weight: 2, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
);
const hostileValue = fc.oneof(
  fc.string({ unit: headerChar.map((c) => String.fromCharCode(c)), maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '\t',
    'x'.repeat(4000),
    '-1',
    '1e309',
    'NaN',
    'null',
    '__proto__',
    '%00',
    '\u00ff\u00fe',
  ),
);
const numberish = fc.oneof(
  fc.constantFrom('0', '1', '2', '-1', '01', '1.5', '1e3', '9007199254740991', '9007199254740992', ' 3 ', ''),
  fc.bigInt({ min: 0n, max: 10n ** 30n }).map(String),
  hostileValue,
);
const hostileHeaders = fc.record(
  {
    'content-type': fc.oneof(
      fc.constantFrom(
        'text/plain',
        'application/json',
        'application/octet-stream',
        'application/json; charset=utf-8',
        'APPLICATION/JSON',
        'text',
        '/',
        'a/b/c',
        ';',
        'text/plain; x="\u00ff"',
      ),
      hostileValue,
    ),
    'stream-ttl': numberish,
    'stream-expires-at': fc.oneof(
      fc.constantFrom(
        '2030-01-01T00:00:00Z',
        '2000-01-01T00:00:00Z',
        '2030-02-30T00:00:00Z',
        '9999-12-31T23:59:60+23:59',
        '2030-01-01T00:00:00',
      ),
      hostileValue,
    ),
    'stream-closed': fc.oneof(fc.constantFrom('true', 'TRUE', ' true ', 'false', '1'), hostileValue),
    'stream-seq': fc.oneof(fc.constantFrom('1', '2', 'a', 'b', '\u00ff'), hostileValue),
    'producer-id': fc.oneof(fc.constantFrom('p', 'q', ''), hostileValue),
    'producer-epoch': numberish,
    'producer-seq': numberish,
    'stream-forked-from': fc.oneof(
      fc.constantFrom(
        `${BASE}/a`,
        'a',
        'b',
        'http://evil.example/v1/stream/a',
        'file:///etc/passwd',
        '../../etc/passwd',
        `${BASE}/%2e%2e/x`,
        `${BASE}/KEEP%2Ftext`,
        '',
      ),
      hostileValue,
    ),
    'stream-fork-offset': offsetValue,
    'stream-fork-sub-offset': numberish,
    'if-none-match': fc.oneof(fc.constantFrom('*', '"x"', 'W/"x", *'), hostileValue),
    'accept-encoding': fc.oneof(fc.constantFrom('gzip', '*;q=0', 'gzip;q=abc', 'br'), hostileValue),
    origin: fc.oneof(fc.constantFrom('https://evil.example', 'null'), hostileValue),
    'x-fuzz': hostileValue,
  },
  { requiredKeys: [] },
);
/** Requests a client of the protocol would send, so that many get past validation and reach storage. */
const saneHeaders = fc
  .record(
    {
      'content-type': fc.constantFrom('text/plain', 'application/json', 'application/octet-stream'),
      'stream-closed': fc.constant('true'),
      'stream-seq': fc.integer({ min: 0, max: 30 }).map((n) => String(n).padStart(3, '0')),
      'stream-ttl': fc.constantFrom('60', '3600'),
      'stream-forked-from': fc.constantFrom(`${BASE}/a`, `${BASE}/b`, `${BASE}/dir/x`),
    },
    { requiredKeys: ['content-type'] },
  )
  .chain((h) =>
    fc.option(
      fc.record({ id: fc.constantFrom('p', 'q'), epoch: fc.nat(2), seq: fc.nat(5) }).map((p) => ({
        ...h,
        'producer-id': p.id,
        'producer-epoch': String(p.epoch),
        'producer-seq': String(p.seq),
      })),
      { nil: h, freq: 2 },
    ),
  );
const headers = fc.oneof(
  { weight: 3, arbitrary: saneHeaders },
  {
    weight: 2,
    arbitrary: fc
      .tuple(saneHeaders, hostileHeaders)
      .chain(([sane, hostile]) =>
        fc
          .subarray(Object.entries(hostile), { maxLength: 2 })
          .map((picked) => ({ ...sane, ...Object.fromEntries(picked) })),
      ),
  },
  { weight: 2, arbitrary: hostileHeaders },
);
const body = fc.oneof(
  { weight: 4, arbitrary: fc.constant(Buffer.alloc(0)) },
  { weight: 3, arbitrary: fc.json({ maxDepth: 3 }).map((s) => Buffer.from(s)) },
  { weight: 2, arbitrary: fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(
        '[]',
        '[[1],[2]]',
        '{"a":',
        '[1,]',
        '\ufeff[1]',
        '[1, 2, "x\\"y"]',
        `${'['.repeat(20_000)}${']'.repeat(20_000)}`,
        '12345678901234567890123456789',
      )
      .map((s) => Buffer.from(s)),
  },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 1024 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 64 * 1024 }).map((n) => Buffer.alloc(n, 0xc3)) },
);
const method = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.constantFrom(
      'GET',
      'GET',
      'HEAD',
      'PUT',
      'PUT',
      'POST',
      'POST',
      'POST',
      'DELETE',
      'OPTIONS',
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom('PATCH', 'TRACE', 'PROPFIND', 'CONNECTX', 'get') },
);
const fuzzRequest = fc.record({
  method,
  path: fc.oneof({ weight: 9, arbitrary: streamPath }, { weight: 1, arbitrary: otherPath }),
  query,
  headers,
  body,
});
type FuzzRequest = typeof fuzzRequest extends fc.Arbitrary<infer T> ? T : never;

// ---- transport ---------------------------------------------------------------------------------------------------

interface Outcome {
  status: number;
  contentType: string | undefined;
  body: Buffer;
}

function touchesSentinel(path: string): boolean {
  let name: string;
  try {
    name = decodeURIComponent(path.slice(BASE.length + 1));
  } catch {
    return false;
  }
  return SENTINELS.some((s) => name === s || name.startsWith('KEEP'));
}

function send(agent: Agent, port: number, r: FuzzRequest): Promise<Outcome> {
  let m = r.method;
  // Writes never aim at the sentinel streams, whatever the generators produced.
  if (m !== 'GET' && m !== 'HEAD' && m !== 'OPTIONS' && touchesSentinel(r.path)) m = 'HEAD';
  return new Promise((resolvePromise, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        agent,
        method: m,
        path: r.path + r.query,
        // Node's client frames a GET/DELETE/OPTIONS body only with an explicit length; without one the body would
        // reach the server as a second, garbage request.
        headers: r.body.length > 0 ? { ...r.headers, 'content-length': String(r.body.length) } : r.headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          resolvePromise({
            status: res.statusCode!,
            contentType: res.headers['content-type'],
            body: Buffer.concat(chunks),
          });
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`hang: ${m} ${r.path}${r.query} did not finish within ${HANG_MS} ms`));
    }, HANG_MS);
    req.on('error', (err: Error & { rawPacket?: Buffer }) => {
      clearTimeout(timer);
      const raw =
        err.rawPacket === undefined ? '' : ` (received ${JSON.stringify(err.rawPacket.toString('latin1'))})`;
      reject(new Error(`${m} ${r.path.slice(0, 120)}${r.query.slice(0, 80)}: ${err.message}${raw}`));
    });
    req.end(r.body.length > 0 ? r.body : undefined);
  });
}

/** The laws every single response obeys. */
function checkOutcome(r: FuzzRequest, o: Outcome): void {
  const shown = Object.entries(r.headers).map(([k, v]) => `${k}: ${JSON.stringify(String(v).slice(0, 40))}`);
  const what = `${r.method} ${r.path.slice(0, 120)}${r.query.slice(0, 80)} [${shown.join(', ')}] (${r.body.length} B) → ${o.status}`;
  if (o.status >= 500) throw new Error(`5xx: ${what} ${o.body.toString('utf8').slice(0, 300)}`);
  // Node's parser refusals (431 for an oversized head, 400) are bare when the server cannot tell the method any more.
  const bareRefusal = (o.status === 431 || o.status === 400) && o.body.length === 0;
  if (o.status >= 400 && r.method !== 'HEAD' && !bareRefusal) {
    expect(o.contentType, what).toBe('application/problem+json');
    const p = JSON.parse(o.body.toString('utf8')) as { status: number; code: string };
    expect(p.status, what).toBe(o.status);
    expect(typeof p.code, what).toBe('string');
  }
}

/** A raw request: a well-formed start mutated at the byte level (bad framing, bad characters, lies in lengths). */
const rawLine = fc.constantFrom(
  'GET /v1/stream/a?offset=-1 HTTP/1.1',
  'POST /v1/stream/a HTTP/1.1',
  'PUT /v1/stream/r HTTP/1.1',
  'GET /v1/stream/a HTTP/1.0',
  'GET  /v1/stream/a HTTP/1.1',
  'GET /v1/stream/a\x01 HTTP/1.1',
  'GET /v1/stream/\x7f HTTP/1.1',
  'GET /v1/stream/a HTTP/9.9',
  'GET /v1/stream/a HTTP/1.1 extra',
  'G\x00T / HTTP/1.1',
  'GET http://evil.example/v1/stream/a HTTP/1.1',
  'CONNECT 127.0.0.1:22 HTTP/1.1',
  'GET /v1/stream/é HTTP/1.1',
  'GET',
  '',
);
const rawHeader = fc.oneof(
  fc.constantFrom(
    'Host: 127.0.0.1',
    'Host:',
    'Content-Length: 5',
    'Content-Length: -1',
    'Content-Length: 5, 6',
    'Content-Length: 99999999999999999999',
    'Content-Length: 0x10',
    'Transfer-Encoding: chunked',
    'Transfer-Encoding: gzip, chunked',
    'Transfer-Encoding: identity',
    'Content-Type: text/plain',
    'Content-Type: application/json',
    'Stream-Closed: true',
    ' folded: continuation',
    'Bad Header: x',
    'X-Null: a\x00b',
    ': empty-name',
    'Expect: 100-continue',
    'Expect: 200-ok',
    'Connection: keep-alive, Upgrade',
    'Upgrade: websocket',
    'Producer-Id: p',
    'Producer-Epoch: 0',
    'Producer-Seq: 99999999999999999999',
  ),
  fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 30 }),
);
const rawBody = fc.oneof(
  fc.constantFrom(
    '',
    'hello',
    '5\r\nhello\r\n0\r\n\r\n',
    'zz\r\nhello\r\n0\r\n\r\n',
    'ffffffffffffffff\r\nx',
    '[1,2]',
  ),
  fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 64 }),
);
const rawRequest = fc
  .tuple(rawLine, fc.array(rawHeader, { maxLength: 6 }), rawBody, fc.constantFrom('\r\n', '\n', '\r'))
  .map(([line, hs, b, eol]) =>
    Buffer.from(`${line}${eol}${hs.map((h) => h + eol).join('')}${eol}${b}`, 'latin1'),
  );

/** Sends raw bytes, half-closes, and collects whatever comes back until the server closes (a hang if it never does). */
function sendRaw(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`hang: raw request ${JSON.stringify(bytes.toString('latin1').slice(0, 200))}`));
    }, HANG_MS);
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolvePromise(data);
    });
  });
}

// ---- the runs ----------------------------------------------------------------------------------------------------

/** A file system that records every path outside the data directory (there must be none). */
function confinedFs(root: string, escapes: string[]): FileSystem {
  const inside = (p: string): void => {
    const r = resolve(p);
    if (r !== root && !r.startsWith(root + sep)) escapes.push(r);
  };
  /** Wraps an operation so that its path arguments are checked before it runs. */
  const guard =
    <A extends unknown[], R>(op: (...args: A) => R, paths: number) =>
    (...args: A): R => {
      for (let i = 0; i < paths; i++) inside(args[i] as string);
      return op(...args);
    };
  const n = nodeFileSystem;
  return {
    open: guard(n.open, 1),
    readFile: guard(n.readFile, 1),
    writeFile: guard(n.writeFile, 1),
    mkdir: guard(n.mkdir, 1),
    readdir: guard(n.readdir, 1),
    rename: guard(n.rename, 2),
    link: guard(n.link, 2),
    unlink: guard(n.unlink, 1),
    rmrf: guard(n.rmrf, 1),
    exists: guard(n.exists, 1),
  };
}

for (const backend of ['memory', 'file'] as const) {
  describe(`HTTP fuzzing on the ${backend} backend`, () => {
    let server: RunningServer;
    let parent: string;
    let dataDir: string;
    const escapes: string[] = [];
    const agent = new Agent({ keepAlive: true, maxSockets: BATCH });
    let port: number;
    const counts = { requests: 0, raw: 0, byStatus: new Map<number, number>() };
    const sentinelText = Array.from({ length: 50 }, (_, i) => `line ${i};`);
    const sentinelJson = Array.from({ length: 50 }, (_, i) => ({ i, s: 'x'.repeat(i) }));

    beforeAll(async () => {
      parent = await mkdtemp(join(tmpdir(), 'streamkeep-fuzz-'));
      dataDir = join(parent, 'data');
      let storage: Storage;
      if (backend === 'memory') storage = new MemoryStorage();
      else {
        storage = await FileStorage.open({
          rootDir: dataDir,
          syncOnAppend: false,
          fileSystem: confinedFs(resolve(dataDir), escapes),
        });
      }
      server = await startServer(
        {
          ...DEFAULT_SERVER_CONFIG,
          port: 0,
          storage: backend,
          dataDir,
          longPollTimeoutMs: 100,
          sseReconnectMs: 150,
          sseKeepAliveMs: 50,
          shutdownTimeoutMs: 2_000,
          maxReadBytes: 4096,
        },
        // STREAMKEEP_FUZZ_LOG=1 prints the server's error log (the cause of any 5xx) to stderr.
        process.env.STREAMKEEP_FUZZ_LOG
          ? { storage, logger: pino({ level: 'error' }, process.stderr) }
          : { storage },
      );
      await server.storage;
      port = Number(new URL(server.url).port);
      const put = (name: string, type: string) =>
        fetch(`${server.url}${BASE}/${name}`, { method: 'PUT', headers: { 'Content-Type': type } });
      expect((await put('KEEP/text', 'text/plain')).status).toBe(201);
      expect((await put('KEEP/json', 'application/json')).status).toBe(201);
      for (let i = 0; i < 50; i++) {
        const t = await fetch(`${server.url}${BASE}/KEEP/text`, {
          method: 'POST',
          headers: { 'Content-Type': 'text/plain' },
          body: sentinelText[i],
        });
        expect(t.status).toBe(204);
        const j = await fetch(`${server.url}${BASE}/KEEP/json`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(sentinelJson[i]),
        });
        expect(j.status).toBe(204);
      }
    });

    afterAll(async () => {
      agent.destroy();
      await server?.close();
      await rm(parent, { recursive: true, force: true });
      const statuses = [...counts.byStatus.entries()].sort((a, b) => a[0] - b[0]);
      console.log(
        `fuzz ${backend}: ${counts.requests} requests, ${counts.raw} raw requests; statuses ${statuses
          .map(([s, n]) => `${s}×${n}`)
          .join(' ')}`,
      );
    });

    it(`${RUNS * BATCH} hostile requests in concurrent batches: no 5xx, no hang, problem documents for 4xx`, {
      timeout: 600_000,
    }, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fuzzRequest, { minLength: BATCH, maxLength: BATCH }), async (batch) => {
          const outcomes = await Promise.all(batch.map((r) => send(agent, port, r)));
          for (let i = 0; i < batch.length; i++) {
            counts.requests++;
            const o = outcomes[i]!;
            counts.byStatus.set(o.status, (counts.byStatus.get(o.status) ?? 0) + 1);
            checkOutcome(batch[i]!, o);
          }
        }),
        { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }), endOnFailure: true },
      );
      expect(counts.requests).toBe(RUNS * BATCH);
    });

    it(`${RAW_RUNS} malformed raw requests: no 5xx, the connection always ends`, {
      timeout: 600_000,
    }, async () => {
      await fc.assert(
        fc.asyncProperty(rawRequest, async (bytes) => {
          const reply = await sendRaw(port, bytes);
          counts.raw++;
          const m = /^HTTP\/1\.[01] (\d{3})/.exec(reply);
          if (m !== null) {
            const status = Number(m[1]);
            counts.byStatus.set(status, (counts.byStatus.get(status) ?? 0) + 1);
            if (status >= 500)
              throw new Error(`5xx for raw ${JSON.stringify(bytes.toString('latin1'))}: ${reply}`);
          }
        }),
        { numRuns: RAW_RUNS, ...(SEED === undefined ? {} : { seed: SEED }), endOnFailure: true },
      );
    });

    it('afterwards: acknowledged data is intact, a good client is served, nothing escaped the data directory', async () => {
      expect(server.server.listening).toBe(true);
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      const text = await fetch(`${server.url}${BASE}/KEEP/text?offset=-1`);
      expect(text.status).toBe(200);
      expect(await text.text()).toBe(sentinelText.join(''));
      const json = await fetch(`${server.url}${BASE}/KEEP/json?offset=-1`);
      expect(await json.json()).toEqual(sentinelJson);

      // A good client: create, append, catch up, long-poll, SSE, close.
      const url = `${server.url}${BASE}/good/client`;
      expect((await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'text/plain' } })).status).toBe(
        201,
      );
      const post = (b: string, extra: Record<string, string> = {}) =>
        fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain', ...extra }, body: b });
      expect((await post('one')).status).toBe(204);
      const poll = fetch(`${url}?offset=now&live=long-poll`);
      await new Promise((r) => setTimeout(r, 20));
      expect((await post('two')).status).toBe(204);
      const polled = await poll;
      expect(polled.status === 200 ? await polled.text() : 'two').toBe('two');
      expect((await post('three', { 'Stream-Closed': 'true' })).status).toBe(204);
      expect(await (await fetch(`${url}?offset=-1`)).text()).toBe('onetwothree');
      const sse = await (await fetch(`${url}?offset=-1&live=sse`)).text();
      expect(sse).toContain('data:onetwothree');
      expect(sse).toContain('"streamClosed":true');

      if (backend === 'file') {
        expect(escapes).toEqual([]);
        // The data directory's parent holds nothing else, and no name inside comes from a stream name: each is a hex
        // digest (or a fan-out part of one), one of the backend's own fixed names (the subscription table and the
        // server's subscription keys included), or a temporary file.
        expect(await readdir(parent)).toEqual(['data']);
        const names = await readdir(dataDir, { recursive: true });
        for (const path of names) {
          for (const part of path.split(sep)) {
            expect(part).toMatch(
              /^[0-9a-f]{2,64}$|^(LOCK|FORMAT|catalog|journal|logs|tmp|streams|meta\.json|log|subscriptions|subscription-secrets\.json)$|\.tmp$|^\./,
            );
          }
        }
      }
    });
  });
}
