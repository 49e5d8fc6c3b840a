import { formatOffset, isStorageError, StorageError, type StorageErrorCode } from '@streamkeep/storage';
import { codeOf, expectCode } from '@streamkeep/storage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { toStorageError } from '../src/errors.js';
import { PostgresStorage, type PostgresStorageOptions, SCHEMA_VERSION } from '../src/index.js';
import { adminQuery, dropSchema, freshSchema, pgUrl } from './support.js';

const T = 'text/plain';
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (m: Uint8Array) => new TextDecoder().decode(m);

const opened: PostgresStorage[] = [];
const schemas: string[] = [];

async function open(extra: Partial<PostgresStorageOptions> = {}, schema = freshSchema('unit')) {
  if (!schemas.includes(schema)) schemas.push(schema);
  const storage = await PostgresStorage.open({ connectionString: pgUrl(), schema, ...extra });
  opened.push(storage);
  return storage;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  for (const schema of schemas.splice(0)) await dropSchema(schema);
});

/** Reads a whole stream in budgeted chunks, checking each chunk against the budget. */
async function readInChunks(s: PostgresStorage, name: string, maxBytes: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  let offset = '-1';
  for (;;) {
    const read = await s.read(name, offset, { maxBytes });
    expect(read.messages.length).toBeGreaterThan(read.upToDate ? -1 : 0);
    const bytes = read.messages.reduce((n, m) => n + m.byteLength, 0);
    if (read.messages.length > 1) expect(bytes).toBeLessThanOrEqual(maxBytes);
    out.push(...read.messages);
    offset = read.nextOffset;
    if (read.upToDate) return out;
  }
}

describe('strings PostgreSQL cannot hold in text', () => {
  it('keeps names, Stream-Seq values and producer ids with NUL and non-BMP characters exactly', async () => {
    const s = await open();
    const names = ['a\u0000b', '\u{1F600}', '\uFFFD', 'a', 'a/b'];
    for (const name of names) await s.createStream(name, { contentType: T });
    // UTF-8 byte order: U+FFFD (EF BF BD) sorts before U+1F600 (F0 9F 98 80), unlike UTF-16 order.
    expect((await s.listStreams()).map((m) => m.name)).toEqual([
      'a',
      'a\u0000b',
      'a/b',
      '\uFFFD',
      '\u{1F600}',
    ]);
    expect((await s.listStreams({ prefix: 'a' })).map((m) => m.name)).toEqual(['a', 'a\u0000b', 'a/b']);
    expect((await s.listStreams({ after: 'a\u0000b', limit: 2 })).map((m) => m.name)).toEqual([
      'a/b',
      '\uFFFD',
    ]);

    await s.append('a\u0000b', { messages: [enc('x')], contentType: T, seq: 'x\u0000\uD800' });
    expect((await s.head('a\u0000b')).lastSeq).toBe('x\u0000\uD800');
    expect(await codeOf(s.append('a\u0000b', { messages: [enc('y')], contentType: T, seq: 'x\u0000' }))).toBe(
      'SEQ_CONFLICT',
    );
    const producer = { id: 'p\u0000\u{1F600}', epoch: 0, seq: 0 };
    await s.appendWithProducer('\u{1F600}', { messages: [enc('z')], contentType: T, producer });
    expect(
      (await s.appendWithProducer('\u{1F600}', { messages: [enc('z')], contentType: T, producer })).duplicate,
    ).toBe(true);
  });

  it('refuses ill-formed names on every method, never reaching the stream their bytes would name', async () => {
    const s = await open();
    await s.createStream('\uFFFD', { contentType: T, messages: [enc('kept')] });
    // A lone surrogate would encode to U+FFFD's bytes; it must not reach that stream.
    expect(await codeOf(s.exists('\uD800'))).toBe('INVALID_STREAM_NAME');
    expect(await codeOf(s.head('\uD800'))).toBe('INVALID_STREAM_NAME');
    expect(await codeOf(s.read('\uD800', '-1'))).toBe('INVALID_STREAM_NAME');
    expect(await codeOf(s.append('\uD800', { messages: [enc('x')], contentType: T }))).toBe(
      'INVALID_STREAM_NAME',
    );
    expect(await codeOf(s.delete('\uD800'))).toBe('INVALID_STREAM_NAME');
    expect(await codeOf(s.createStream('\uD800', { contentType: T }))).toBe('INVALID_STREAM_NAME');
    expect(await codeOf(s.createFork('f', { source: '\uD800' }))).toBe('INVALID_STREAM_NAME');
    expect((await s.read('\uFFFD', '-1')).messages.map(dec)).toEqual(['kept']);
  });

  it('answers invalid numeric options with RangeError and changes nothing', async () => {
    const s = await open();
    await s.createStream('a', { contentType: T, messages: [enc('x')] });
    await expect(s.read('a', '-1', { maxBytes: Number.NaN })).rejects.toThrow(RangeError);
    await expect(s.listStreams({ limit: -1 })).rejects.toThrow(RangeError);
    await expect(s.listStreams({ limit: 1.5 })).rejects.toThrow(RangeError);
    await expect(s.listStreams({ limit: Number.POSITIVE_INFINITY })).rejects.toThrow(RangeError);
    expect((await s.listStreams({ prefix: '\uD800' })).map((m) => m.name)).toEqual([]);
    expect((await s.listStreams({ limit: 1 })).map((m) => m.name)).toEqual(['a']);
  });
});

describe('large streams and batches', () => {
  it('allocates offsets for a batch larger than one insert statement', async () => {
    const s = await open();
    await s.createStream('big', { contentType: T });
    // 30 000 messages: more rows than one statement may carry parameters for (65 535).
    const batch = Array.from({ length: 30_000 }, (_, i) => enc(String(i)));
    const result = await s.append('big', { messages: batch, contentType: T });
    const bytes = batch.reduce((n, m) => n + m.byteLength, 0);
    expect(result).toMatchObject({
      startOffset: formatOffset(0, 0),
      nextOffset: formatOffset(30_000, bytes),
    });
    const read = await s.read('big', formatOffset(1_000, 0));
    expect(read.messages.length).toBe(29_000);
    expect(read.messages.map(dec)).toEqual(batch.slice(1_000).map(dec));
    // A rejected large batch writes nothing.
    await s.closeStream('big');
    await s.createStream('big2', { contentType: T, messages: [enc('x')] });
    expect(await codeOf(s.append('big2', { messages: batch, contentType: 'application/json' }))).toBe(
      'CONTENT_TYPE_MISMATCH',
    );
    expect((await s.head('big2')).messageCount).toBe(1);
  });

  it('budgeted reads page through many messages and across fork segments without loss or repeats', async () => {
    const s = await open();
    const sizes = Array.from({ length: 1_300 }, (_, i) => (i * 7) % 23);
    const messages = sizes.map((n, i) => enc(`${i}`.padEnd(Math.max(n, String(i).length), '.')));
    await s.createStream('paged', { contentType: T, messages: messages.slice(0, 1_100) });
    const whole = (await s.read('paged', '-1')).messages.map(dec);
    expect((await readInChunks(s, 'paged', 100)).map(dec)).toEqual(whole);
    expect((await readInChunks(s, 'paged', 0)).map(dec)).toEqual(whole);

    const forkAt = (await s.read('paged', '-1', { maxBytes: 4_000 })).nextOffset;
    await s.createFork('paged-fork', { source: 'paged', offset: forkAt, messages: messages.slice(1_100) });
    await s.append('paged', { messages: [enc('after the fork point')], contentType: T });
    const forkWhole = (await s.read('paged-fork', '-1')).messages.map(dec);
    const inherited = (await s.read('paged', '-1')).messages.map(dec).slice(0, forkWhole.length - 200);
    expect(forkWhole).toEqual([...inherited, ...messages.slice(1_100).map(dec)]);
    expect((await readInChunks(s, 'paged-fork', 333)).map(dec)).toEqual(forkWhole);
  });

  it('round-trips a multi-megabyte message', async () => {
    const s = await open();
    const blob = new Uint8Array(3 * 1024 * 1024);
    for (let i = 0; i < blob.length; i++) blob[i] = (i * 31) & 0xff;
    await s.createStream('blob', { contentType: 'application/octet-stream', messages: [blob] });
    const read = await s.read('blob', '-1', { maxBytes: 10 });
    expect(read.messages.length).toBe(1);
    expect(Buffer.compare(Buffer.from(read.messages[0]!), Buffer.from(blob))).toBe(0);
  });

  it('refuses a message above maxMessageBytes with MESSAGE_TOO_LARGE and writes nothing', async () => {
    const s = await open({ maxMessageBytes: 10 });
    await s.createStream('m', { contentType: T });
    expect(await codeOf(s.append('m', { messages: [enc('ok'), enc('01234567890')], contentType: T }))).toBe(
      'MESSAGE_TOO_LARGE',
    );
    expect(await codeOf(s.createStream('n', { contentType: T, messages: [enc('01234567890')] }))).toBe(
      'MESSAGE_TOO_LARGE',
    );
    expect((await s.head('m')).messageCount).toBe(0);
    expect(await s.exists('n')).toBe(false);
  });
});

describe('onCommit', () => {
  it('reports each applied commit with the time its COMMIT took, not duplicates or refusals', async () => {
    const reports: { entries: number; bytes: number; syncMs: number }[] = [];
    const s = await open({ onCommit: (r) => reports.push(r) });
    await s.createStream('a', { contentType: T });
    await s.append('a', { messages: [enc('xy'), enc('z')], contentType: T });
    const producer = { id: 'p', epoch: 0, seq: 0 };
    await s.appendWithProducer('a', { messages: [enc('q')], contentType: T, producer });
    await s.appendWithProducer('a', { messages: [enc('q')], contentType: T, producer });
    expect(await codeOf(s.append('a', { messages: [enc('x')], contentType: 'application/json' }))).toBe(
      'CONTENT_TYPE_MISMATCH',
    );
    expect(reports.map((r) => [r.entries, r.bytes])).toEqual([
      [1, 3],
      [1, 1],
    ]);
    for (const r of reports) expect(r.syncMs).toBeGreaterThan(0);
    const failing = await open({
      onCommit: () => {
        throw new Error('observer failure');
      },
    });
    await failing.createStream('b', { contentType: T });
    await failing.append('b', { messages: [enc('x')], contentType: T });
    expect((await failing.read('b', '-1')).messages.map(dec)).toEqual(['x']);
  });
});

describe('limits', () => {
  it('replacing an expired stream releases its bytes before the storage-wide limit is checked', async () => {
    const clock = { t: 1_000_000, now: () => clock.t };
    const s = await open({ clock, maxTotalBytes: 8 });
    await s.createStream('a', { contentType: T, expiresAt: clock.t + 500, messages: [enc('123456')] });
    expect(await codeOf(s.createStream('b', { contentType: T, messages: [enc('123')] }))).toBe(
      'STORAGE_LIMIT_EXCEEDED',
    );
    clock.t += 1_000;
    expect(await s.createStream('a', { contentType: T, messages: [enc('654321')] })).toMatchObject({
      created: true,
    });
    expect(await s.totalBytes()).toBe(6);
    // A failed replacement leaves the expired stream and its bytes in place.
    await s.createStream('c', { contentType: T, expiresAt: clock.t + 500, messages: [enc('12')] });
    clock.t += 1_000;
    expect(await codeOf(s.createStream('c', { contentType: T, messages: [enc('123')] }))).toBe(
      'STORAGE_LIMIT_EXCEEDED',
    );
    expect(await s.totalBytes()).toBe(8);
    expect((await s.delete('c')).softDeleted).toBe(false);
    expect(await s.totalBytes()).toBe(6);
  });

  it('counts only the replaced stream itself as released, not the tombstoned ancestors its removal frees', async () => {
    const clock = { t: 1_000_000, now: () => clock.t };
    const s = await open({ clock, maxTotalBytes: 8 });
    await s.createStream('root', { contentType: T, messages: [enc('r')] });
    await s.createFork('fork', { source: 'root', expiresAt: clock.t + 500 });
    expect((await s.delete('root')).softDeleted).toBe(true);
    clock.t += 1_000;
    // 1 byte (the tombstoned root) + 8 > 8, although replacing the fork also removes the root.
    expect(await codeOf(s.createStream('fork', { contentType: T, messages: [enc('12345678')] }))).toBe(
      'STORAGE_LIMIT_EXCEEDED',
    );
    expect(await s.totalBytes()).toBe(1);
    expect(await s.createStream('fork', { contentType: T, messages: [enc('1234567')] })).toMatchObject({
      created: true,
    });
    expect(await s.totalBytes()).toBe(7);
  });
});

describe('schema', () => {
  it('is created once when several instances start together, and records its version', async () => {
    const schema = freshSchema('mig');
    await Promise.all(Array.from({ length: 4 }, () => open({}, schema)));
    const rows = await adminQuery<{ value: string }>(
      `SELECT value FROM "${schema}".meta WHERE key = 'schema_version'`,
    );
    expect(rows).toEqual([{ value: String(SCHEMA_VERSION) }]);
  });

  it('refuses a schema written by a newer release', async () => {
    const schema = freshSchema('mig');
    await (await open({}, schema)).close();
    await adminQuery(
      `UPDATE "${schema}".meta SET value = '${SCHEMA_VERSION + 1}' WHERE key = 'schema_version'`,
    );
    await expect(open({}, schema)).rejects.toThrow(/newer than this release/);
  });

  it('keeps separate schemas isolated', async () => {
    const a = await open();
    const b = await open();
    await a.createStream('same', { contentType: T, messages: [enc('a')] });
    expect(await b.exists('same')).toBe(false);
    const hints: number[] = [];
    await a.subscribe('same', () => hints.push(1));
    await b.createStream('same', { contentType: T });
    await b.append('same', { messages: [enc('b')], contentType: T });
    await new Promise((r) => setTimeout(r, 100));
    expect(hints).toEqual([]);
    expect(await a.totalBytes()).toBe(1);
    expect(await b.totalBytes()).toBe(1);
  });

  it('rejects schema names that are not plain identifiers', async () => {
    await expect(PostgresStorage.open({ connectionString: pgUrl(), schema: 'x"; DROP' })).rejects.toThrow(
      RangeError,
    );
    await expect(PostgresStorage.open({ connectionString: pgUrl(), schema: 'pg_catalog' })).rejects.toThrow(
      RangeError,
    );
  });
});

describe('connection failures', () => {
  it('maps an unreachable server to UNAVAILABLE', async () => {
    await expectCode(
      PostgresStorage.open({
        connectionString: 'postgresql://postgres@127.0.0.1:1/postgres',
        pool: { connectionTimeoutMillis: 2_000 },
      }),
      'UNAVAILABLE',
    );
  });

  it('recovers after its connections are killed, and the LISTEN connection reconnects and wakes listeners', async () => {
    const app = `sk_kill_${Math.random().toString(36).slice(2)}`;
    const schema = freshSchema('kill');
    const victim = await open({ pool: { application_name: app } }, schema);
    const other = await open({}, schema);
    await victim.createStream('k', { contentType: T });
    let hints = 0;
    await victim.subscribe('k', () => hints++);

    await adminQuery('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [
      app,
    ]);
    // The pool may hand out a connection that died while idle: that call fails with UNAVAILABLE, later ones work.
    const first = await codeOf(victim.append('k', { messages: [enc('1')], contentType: T }));
    expect([undefined, 'UNAVAILABLE']).toContain(first);
    await victim.append('k', { messages: [enc('2')], contentType: T });

    // Commits by the other instance reach the victim's subscriber again once its LISTEN connection is back.
    const before = hints;
    const deadline = Date.now() + 10_000;
    while (hints === before && Date.now() < deadline) {
      await other.append('k', { messages: [enc('x')], contentType: T });
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(hints).toBeGreaterThan(before);
  });
});

describe('error mapping', () => {
  const dbError = (sqlstate: string) =>
    Object.assign(new Error(`sqlstate ${sqlstate}`), { code: sqlstate, severity: 'ERROR' });

  it('maps PostgreSQL conditions onto the contract codes', () => {
    const cases: [unknown, StorageErrorCode][] = [
      [dbError('53100'), 'INSUFFICIENT_STORAGE'],
      [dbError('40001'), 'UNAVAILABLE'],
      [dbError('40P01'), 'UNAVAILABLE'],
      [dbError('57P01'), 'UNAVAILABLE'],
      [dbError('53300'), 'UNAVAILABLE'],
      [dbError('08006'), 'UNAVAILABLE'],
      [dbError('XX001'), 'CORRUPTED'],
      [dbError('42P01'), 'INTERNAL'],
      [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'UNAVAILABLE'],
      [new Error('Connection terminated unexpectedly'), 'UNAVAILABLE'],
    ];
    for (const [err, expected] of cases) {
      const mapped = toStorageError(err);
      expect(isStorageError(mapped, expected)).toBe(true);
      expect((mapped as StorageError).cause).toBe(err);
    }
  });

  it('passes storage and programmer errors through', () => {
    const storage = new StorageError('NOT_FOUND', 'x');
    const range = new RangeError('bad');
    expect(toStorageError(storage)).toBe(storage);
    expect(toStorageError(range)).toBe(range);
  });
});
