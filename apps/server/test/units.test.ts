import { STORAGE_ERROR_CODES, StorageError } from '@streamkeep/storage';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HttpError, problemFor, STORAGE_ERROR_STATUS } from '../src/error-status.js';
import { advanceCursor, DEFAULT_CURSOR_POLICY, nextCursor } from '../src/http/cursor.js';
import { ifNoneMatchHits, parseProducer, parseRfc3339, parseTtl } from '../src/http/headers.js';
import { splitJsonBody } from '../src/http/json.js';
import { parseForkSource, parseStreamName, parseStreamNameCached } from '../src/http/names.js';
import { prefersGzip } from '../src/http/read-response.js';
import { sseControl, sseData, sseEncodingFor, sseEvent } from '../src/http/sse.js';
import { publicOrigin } from '../src/settings/parsers.js';

const text = (bufs: Buffer[]) => bufs.map((b) => b.toString('utf8'));

describe('JSON bodies', () => {
  it('flattens exactly one level of array (§9.1)', () => {
    expect(text(splitJsonBody(Buffer.from('[{"a":1},{"b":2}]')))).toEqual(['{"a":1}', '{"b":2}']);
    expect(text(splitJsonBody(Buffer.from('[[1,2],[3,4]]')))).toEqual(['[1,2]', '[3,4]']);
    expect(text(splitJsonBody(Buffer.from('[[[1,2,3]]]')))).toEqual(['[[1,2,3]]']);
    expect(text(splitJsonBody(Buffer.from(' {"x": [1, 2]} ')))).toEqual(['{"x": [1, 2]}']);
    expect(text(splitJsonBody(Buffer.from('[]')))).toEqual([]);
    expect(text(splitJsonBody(Buffer.from(' [ ] ')))).toEqual([]);
    expect(text(splitJsonBody(Buffer.from('"a,b]"')))).toEqual(['"a,b]"']);
  });

  it('keeps each value byte for byte (big numbers, escapes, multi-byte text)', () => {
    const body = '[12345678901234567890, "a\\"],[", "é😀", {"k":"v,}"} ,1.50]';
    expect(text(splitJsonBody(Buffer.from(body)))).toEqual([
      '12345678901234567890',
      '"a\\"],["',
      '"é😀"',
      '{"k":"v,}"}',
      '1.50',
    ]);
  });

  it('rejects invalid JSON and invalid UTF-8 with INVALID_JSON', () => {
    for (const bad of ['', '[1,', '{a:1}', '[1,]', 'nul']) {
      expect(() => splitJsonBody(Buffer.from(bad))).toThrow(HttpError);
    }
    expect(() => splitJsonBody(Buffer.from([0x22, 0xff, 0x22]))).toThrow(/not valid JSON/);
  });

  it('law: the split values re-parse to the elements of the array', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { maxLength: 8 }), fc.boolean(), (values, spaced) => {
        const body = spaced ? JSON.stringify(values, null, 2) : JSON.stringify(values);
        const parts = splitJsonBody(Buffer.from(body));
        expect(parts.map((p) => JSON.parse(p.toString('utf8')))).toEqual(JSON.parse(body));
      }),
      { seed: 4437, numRuns: 300 },
    );
  });
});

describe('SSE framing', () => {
  it('splits CR, LF and CRLF into separate data lines', () => {
    expect(sseEvent('data', 'a\r\nb\rc\nd')).toBe('event: data\ndata:a\ndata:b\ndata:c\ndata:d\n\n');
  });

  it('keeps a leading space of the payload through one-space-stripping parsers', () => {
    expect(sseEvent('data', ' x')).toBe('event: data\ndata:  x\n\n');
  });

  it('encodes JSON batches as one array, binary batches as standalone base64', () => {
    const msgs = [Buffer.from('{"n":1}'), Buffer.from('{"n":2}')];
    expect(sseData(msgs, 'json')).toBe('event: data\ndata:[{"n":1},{"n":2}]\n\n');
    const bin = [Buffer.from([0, 1, 2]), Buffer.from([3])];
    expect(sseData(bin, 'base64')).toBe(
      `event: data\ndata:${Buffer.from([0, 1, 2, 3]).toString('base64')}\n\n`,
    );
  });

  it('chooses the encoding from the content type', () => {
    expect(sseEncodingFor('application/json')).toBe('json');
    expect(sseEncodingFor('text/plain')).toBe('text');
    expect(sseEncodingFor('application/ndjson')).toBe('base64');
    expect(sseEncodingFor('application/octet-stream')).toBe('base64');
  });

  it('writes control fields only when they apply', () => {
    expect(sseControl({ streamNextOffset: 'x', streamCursor: '5' })).toBe(
      'event: control\ndata:{"streamNextOffset":"x","streamCursor":"5"}\n\n',
    );
    expect(sseControl({ streamNextOffset: 'x', upToDate: true, streamClosed: true })).toBe(
      'event: control\ndata:{"streamNextOffset":"x","upToDate":true,"streamClosed":true}\n\n',
    );
  });
});

describe('cursors', () => {
  const epoch = DEFAULT_CURSOR_POLICY.epochMs;
  it('counts 20 s intervals since 2024-10-09', () => {
    expect(nextCursor(null, epoch + 45_000)).toBe('2');
  });
  it('returns a strictly greater cursor when the echoed one is not behind (jitter 1–3600 s)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (ahead, r) => {
          const now = epoch + 1_000_000_000;
          const current = Number(nextCursor(null, now));
          const echoed = current + ahead;
          const next = Number(nextCursor(String(echoed), now, DEFAULT_CURSOR_POLICY, () => r));
          expect(next).toBeGreaterThan(echoed);
          expect(next - echoed).toBeLessThanOrEqual(180);
        },
      ),
      { seed: 7, numRuns: 200 },
    );
  });
  it('ignores stale or malformed echoes', () => {
    const now = epoch + 1_000_000;
    expect(nextCursor('1', now)).toBe(nextCursor(null, now));
    expect(nextCursor('abc', now)).toBe(nextCursor(null, now));
  });
  it('advanceCursor never goes backwards and never jitters', () => {
    expect(advanceCursor('999999999', epoch)).toBe('999999999');
    expect(advanceCursor('0', epoch + 60_000)).toBe('3');
  });
});

describe('header parsing', () => {
  it('parses RFC 3339 strictly', () => {
    expect(parseRfc3339('2030-01-02T03:04:05Z')).toBe(Date.UTC(2030, 0, 2, 3, 4, 5));
    expect(parseRfc3339('2030-01-02T03:04:05.123+02:00')).toBe(Date.UTC(2030, 0, 2, 1, 4, 5, 123));
    for (const bad of [
      '2030-02-30T00:00:00Z',
      '2030-01-02',
      'not-a-timestamp',
      '2030-01-02T03:04:05',
      'Jan 1 2030',
    ]) {
      expect(parseRfc3339(bad)).toBeUndefined();
    }
  });

  it('accepts only canonical decimal TTLs', () => {
    expect(parseTtl({ 'stream-ttl': '3600' })).toBe(3600);
    expect(parseTtl({ 'stream-ttl': '0' })).toBe(0);
    for (const bad of ['+1', '01', '1.5', '1e3', '-1', '', ' ']) {
      expect(() => parseTtl({ 'stream-ttl': bad })).toThrow(HttpError);
    }
  });

  it('wants all three producer headers or none, with integer epoch and seq', () => {
    expect(parseProducer({})).toBeUndefined();
    expect(parseProducer({ 'producer-id': 'p', 'producer-epoch': '0', 'producer-seq': '7' })).toEqual({
      id: 'p',
      epoch: 0,
      seq: 7,
    });
    expect(() => parseProducer({ 'producer-id': 'p', 'producer-epoch': '0' })).toThrow(HttpError);
    for (const bad of ['1abc', '0xyz', '1e3', '-1', '9007199254740992']) {
      expect(() =>
        parseProducer({ 'producer-id': 'p', 'producer-epoch': bad, 'producer-seq': '0' }),
      ).toThrow();
    }
    expect(() => parseProducer({ 'producer-id': '', 'producer-epoch': '0', 'producer-seq': '0' })).toThrow();
  });

  it('reads Accept-Encoding q-values and If-None-Match lists', () => {
    const gz = (v: string | undefined) => prefersGzip({ 'accept-encoding': v });
    expect(gz('gzip, deflate')).toBe(true);
    expect(gz('GZIP')).toBe(true);
    expect(gz('*')).toBe(true);
    expect(gz('br;q=1, gzip;q=0.5')).toBe(true);
    expect(gz('gzip;q=0, br')).toBe(false);
    expect(gz('identity')).toBe(false);
    expect(gz('')).toBe(false);
    expect(gz(undefined)).toBe(false);
    // An explicit refusal of gzip wins over the wildcard, and identity preferred over gzip is honoured.
    expect(gz('gzip;q=0, *;q=1')).toBe(false);
    expect(gz('*;q=1, gzip;q=0')).toBe(false);
    expect(gz('identity;q=1, gzip;q=0.5')).toBe(false);
    expect(gz('identity;q=0, gzip;q=0.1')).toBe(true);
    expect(ifNoneMatchHits({ 'if-none-match': '"a", W/"b"' }, '"b"')).toBe(true);
    expect(ifNoneMatchHits({ 'if-none-match': '"a"' }, '"b"')).toBe(false);
  });
});

describe('stream names', () => {
  it('decodes and validates names', () => {
    expect(parseStreamName('a%20b/c')).toBe('a b/c');
    for (const bad of ['', 'a//b', 'a/', './a', 'a/../b', '%E0%A4%A', 'a%00b', 'x/'.repeat(8) + 'x']) {
      expect(() => parseStreamName(bad), bad).toThrow(StorageError);
    }
    expect(() => parseStreamName('x'.repeat(1025))).toThrow(StorageError);
  });
  it('answers the same through the name memo, first time and again, valid or not', () => {
    const outcome = (f: () => string): string => {
      try {
        return `ok:${f()}`;
      } catch (err) {
        return `err:${(err as StorageError).code}`;
      }
    };
    const raw = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom('a%20b/c', 'a//b', '%E0%A4%A', 'a%00b', 'x'.repeat(300), `${'x/'.repeat(8)}x`),
    );
    fc.assert(
      fc.property(raw, (r) => {
        const expected = outcome(() => parseStreamName(r));
        expect(outcome(() => parseStreamNameCached(r))).toBe(expected);
        expect(outcome(() => parseStreamNameCached(r))).toBe(expected);
      }),
      { seed: 20261125, numRuns: 2000 },
    );
  });
  it('resolves Stream-Forked-From paths, URLs and names', () => {
    expect(parseForkSource('/v1/stream/src-1', '/v1/stream')).toBe('src-1');
    expect(parseForkSource('http://h:1/v1/stream/a/b', '/v1/stream')).toBe('a/b');
    expect(parseForkSource('plain', '/v1/stream')).toBe('plain');
  });
});

describe('error table', () => {
  it('maps every storage code to one of the documented statuses', () => {
    const allowed = new Set([400, 403, 404, 409, 410, 413, 500, 501, 503, 507]);
    for (const code of STORAGE_ERROR_CODES) {
      expect(allowed.has(STORAGE_ERROR_STATUS[code]), code).toBe(true);
    }
  });

  it('attaches the protocol headers the codes carry', () => {
    const closed = problemFor(new StorageError('STREAM_CLOSED', 'x', { details: { nextOffset: 'o' } }));
    expect(closed.status).toBe(409);
    expect(closed.headers).toEqual({ 'Stream-Closed': 'true', 'Stream-Next-Offset': 'o' });
    const fenced = problemFor(
      new StorageError('PRODUCER_EPOCH_FENCED', 'x', { details: { currentEpoch: 3 } }),
    );
    expect([fenced.status, fenced.headers]).toEqual([403, { 'Producer-Epoch': '3' }]);
    const gap = problemFor(
      new StorageError('PRODUCER_SEQ_GAP', 'x', { details: { expectedSeq: 2, receivedSeq: 5 } }),
    );
    expect([gap.status, gap.headers]).toEqual([
      409,
      { 'Producer-Expected-Seq': '2', 'Producer-Received-Seq': '5' },
    ]);
    const busy = problemFor(new StorageError('UNAVAILABLE', 'x'));
    expect([busy.status, busy.headers]).toEqual([503, { 'Retry-After': '1' }]);
    expect(problemFor(new StorageError('INSUFFICIENT_STORAGE', 'x')).status).toBe(507);
  });

  it('hides the message of unexpected failures', () => {
    const p = problemFor(new Error('secret /etc/path'), '/v1/stream/x');
    expect(p.status).toBe(500);
    expect(JSON.stringify(p.problem)).not.toContain('secret');
    expect(p.problem.instance).toBe('/v1/stream/x');
    const quarantined = problemFor(new StorageError('CORRUPTED', 'disk block 7 bad'));
    expect(quarantined.status).toBe(404);
    expect(quarantined.serverFault).toBe(false);
    expect(quarantined.problem.detail).toMatch(/quarantined/);
    expect(JSON.stringify(quarantined.problem)).not.toContain('block 7');
  });
});

describe('public origin', () => {
  it('takes any spelling of an origin and gives its normal form', () => {
    expect(publicOrigin('https://streams.example.com')).toBe('https://streams.example.com');
    expect(publicOrigin(' HTTPS://Streams.Example.COM/ ')).toBe('https://streams.example.com');
    expect(publicOrigin('https://streams.example.com:443')).toBe('https://streams.example.com');
    expect(publicOrigin('http://127.0.0.1:4437')).toBe('http://127.0.0.1:4437');
    expect(publicOrigin('http://[::1]:8080/')).toBe('http://[::1]:8080');
    expect(publicOrigin('https://bücher.example')).toBe('https://xn--bcher-kva.example');
  });

  it('refuses what is not an origin', () => {
    for (const bad of [
      'streams.example.com',
      'ftp://streams.example.com',
      'https://streams.example.com/v1',
      'https://streams.example.com?x=1',
      'https://streams.example.com#top',
      'https://user:secret@streams.example.com',
      'https://',
      '',
    ]) {
      expect(() => publicOrigin(bad), bad).toThrow(/expected an origin/);
    }
  });
});
