import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CatalogRecord } from '../src/catalog.js';
import { Catalog } from '../src/snapshot.js';

// The catalog read from a snapshot finds records by the bytes of their names (src/snapshot.ts): the law is that it
// answers every lookup, change and listing exactly as a plain Map of the same records would, across re-encodes.

function record(name: string, salt: number, inline?: number): CatalogRecord {
  const r = new CatalogRecord(
    name,
    { contentType: 'text/plain', ttlSeconds: null, expiresAt: null, createdClosed: false },
    1_000 + salt,
    null,
    false,
    salt,
    inline === undefined,
  );
  r.bytes = salt;
  r.count = salt % 7;
  if (inline !== undefined) r.inline = Buffer.alloc(inline, salt & 0xff);
  return r;
}

const reopen = (c: Catalog): Catalog => Catalog.fromBytes(Buffer.concat(c.encode()), true);

// Few distinct names, so that operations meet the same names often; some share a prefix or are not ASCII.
const nameArb = fc.oneof(
  fc.integer({ min: 0, max: 12 }).map((i) => `s/${i}`),
  fc.constantFrom('é', 'ß/ü', '日本/語', '🙂', 'a', 'a/', 'A'),
);
const opArb = fc.oneof(
  fc.record({ op: fc.constant('set' as const), name: nameArb, salt: fc.nat(10_000) }),
  fc.record({ op: fc.constant('setInline' as const), name: nameArb, salt: fc.nat(10_000) }),
  fc.record({ op: fc.constant('delete' as const), name: nameArb }),
  fc.record({ op: fc.constant('get' as const), name: nameArb }),
  fc.record({ op: fc.constant('has' as const), name: nameArb }),
  fc.record({ op: fc.constant('reopen' as const) }),
);

describe('catalog index', () => {
  it('agrees with a Map of the same records through sets, deletes, lookups and reopenings', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 10, maxLength: 150, size: 'max' }), (ops) => {
        let c = new Catalog();
        const model = new Map<string, { salt: number; inline: boolean }>();
        for (const o of ops) {
          if (o.op === 'set' || o.op === 'setInline') {
            const inline = o.op === 'setInline';
            c.set(o.name, record(o.name, o.salt, inline ? 1 + (o.salt % 50) : undefined));
            model.set(o.name, { salt: o.salt, inline });
          } else if (o.op === 'delete') {
            expect(c.delete(o.name)).toBe(model.delete(o.name));
          } else if (o.op === 'get') {
            const m = model.get(o.name);
            const r = c.get(o.name);
            expect(r?.name).toBe(m === undefined ? undefined : o.name);
            if (m !== undefined) {
              expect(r!.salt).toBe(m.salt);
              expect(r!.bytes).toBe(m.salt);
              // Carried bytes: in memory, or (read from a snapshot) in its region until loaded.
              const bytes = r!.inline ?? (r!.carried === undefined ? undefined : c.carriedNow(r!.carried));
              expect(bytes).toEqual(m.inline ? Buffer.alloc(1 + (m.salt % 50), m.salt & 0xff) : undefined);
            }
          } else if (o.op === 'has') {
            expect(c.has(o.name)).toBe(model.has(o.name));
          } else {
            c = reopen(c);
            const inline = [...model].filter(([, m]) => m.inline);
            expect(c.inlineBytes).toBe(inline.reduce((n, [, m]) => n + 1 + (m.salt % 50), 0));
          }
          expect(c.size).toBe(model.size);
        }
        expect(new Set(c.keys())).toEqual(new Set(model.keys()));
        expect(new Set([...c.values()].map((r) => r.name))).toEqual(new Set(model.keys()));
        const again = reopen(c);
        expect(again.snapshotBytes).toBe([...model.values()].reduce((n, m) => n + m.salt, 0));
        expect(new Set([...again.carried()].map((r) => r.name))).toEqual(
          new Set([...model].filter(([, m]) => m.inline).map(([n]) => n)),
        );
      }),
      { seed: 0x5eed_ca7, numRuns: 300 },
    );
  });

  it('finds every one of many records, and none that is absent, without decoding the others', () => {
    const c = new Catalog();
    for (let i = 0; i < 5_000; i++) c.set(`chat/${i}`, record(`chat/${i}`, i));
    // Every 10th with a TTL: a sweep for expired streams decodes those only.
    for (let i = 0; i < 5_000; i += 10) c.get(`chat/${i}`)!.config.ttlSeconds = 60;
    const swept = reopen(c);
    expect([...swept.expirable()].map((r) => r.salt).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 500 }, (_, k) => k * 10),
    );
    expect([...swept.decoded()]).toHaveLength(500);
    const read = reopen(c);
    expect(read.size).toBe(5_000);
    expect([...read.decoded()]).toHaveLength(0);
    for (let i = 0; i < 5_000; i += 7) expect(read.get(`chat/${i}`)?.salt).toBe(i);
    expect(read.get('chat/5000')).toBeUndefined();
    expect(read.has('chat/')).toBe(false);
    expect([...read.decoded()]).toHaveLength(Math.ceil(5_000 / 7));
    expect(read.size).toBe(5_000);
  });

  it('refuses a snapshot that names a stream twice or counts more records than it can hold', () => {
    const one = new Catalog();
    one.set('x', record('x', 1));
    const bytes = Buffer.concat(one.encode());
    // The same record twice, the count and checksums made to match: damage a checksum cannot see.
    const table = bytes.subarray(32, 32 + 10 + 2 + 'text/plain'.length);
    const rec = bytes.subarray(32 + table.length, bytes.length - 4);
    const twice = Buffer.concat([bytes.subarray(0, 32), table, rec, rec, Buffer.alloc(4)]);
    reseal(twice, 2);
    expect(() => Catalog.decode(twice, true)).toThrow(/twice/);
    const overcounted = Buffer.from(bytes);
    reseal(overcounted, 1_000_000);
    expect(() => Catalog.decode(overcounted, true)).toThrow(/malformed/);
  });
});

/** Sets a snapshot's record count (it has no carried logs) and recomputes its checksums. */
function reseal(b: Buffer, count: number): void {
  b.writeUInt32LE(count, 8);
  b.writeDoubleLE(b.length, 16);
  b.writeUInt32LE(crc32(b.subarray(16, 32), crc32(b.subarray(0, 12))), 12);
  b.writeUInt32LE(crc32(b.subarray(32, b.length - 4)), b.length - 4);
}
