import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareOffsets,
  compareUtf8,
  type ForkInfo,
  formatOffset,
  listingFull,
  listingIncludes,
  listingPage,
  readSegments,
  readStart,
  takeWithinBudget,
} from '../src/index.js';

describe('the byte budget', () => {
  it('takes the longest prefix within the budget, but at least one message', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(50)), fc.option(fc.nat(120), { nil: undefined }), (sizes, maxBytes) => {
        const n = takeWithinBudget(sizes, 0, sizes.length, maxBytes);
        const sum = (k: number) => sizes.slice(0, k).reduce((a, b) => a + b, 0);
        if (maxBytes === undefined) {
          expect(n).toBe(sizes.length);
          return;
        }
        if (sizes.length > 0) expect(n).toBeGreaterThanOrEqual(1);
        if (n > 1) expect(sum(n)).toBeLessThanOrEqual(maxBytes);
        if (n < sizes.length && n > 0) expect(sum(n + 1)).toBeGreaterThan(maxBytes);
      }),
    );
  });
});

describe('readSegments', () => {
  it('bounds each ancestor by the smallest fork offset below it, root first', () => {
    const offsetArb = fc.tuple(fc.nat(9), fc.nat(99)).map(([s, b]) => formatOffset(s, b));
    fc.assert(
      fc.property(fc.array(offsetArb, { maxLength: 5 }), (forkOffsets) => {
        // chain[i] forks from chain[i + 1] at forkOffsets[i]; the last one is a root.
        const chain = [...forkOffsets, null].map((offset, i) => ({
          id: i,
          fork: offset === null ? null : ({ source: `${i + 1}`, offset, subOffset: 0 } satisfies ForkInfo),
        }));
        const segments = readSegments(chain);
        expect(segments.map((s) => s.entry.id)).toEqual(chain.map((c) => c.id).reverse());
        for (const { entry, bound } of segments) {
          const below = forkOffsets.slice(0, entry.id).sort(compareOffsets)[0] ?? null;
          expect(bound).toBe(below);
        }
      }),
    );
  });

  it('starts a read at (0, 0) for -1 and at the offset otherwise', () => {
    expect(readStart({ kind: 'start' })).toEqual({ readSeq: 0, byteOffset: 0 });
    expect(readStart({ kind: 'position', readSeq: 3, byteOffset: 7 })).toMatchObject({
      readSeq: 3,
      byteOffset: 7,
    });
  });
});

describe('listing', () => {
  const nameArb = fc.string({
    unit: fc.constantFrom('a', 'b', '/', 'é', '\u{1F600}', '\uFFFD'),
    minLength: 1,
  });

  it('returns the matching names in UTF-8 order, at most limit of them', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(nameArb),
        fc.option(fc.string({ unit: fc.constantFrom('a', 'b', '/'), maxLength: 2 }), { nil: undefined }),
        fc.option(nameArb, { nil: undefined }),
        fc.option(fc.nat(5), { nil: undefined }),
        (names, prefix, after, limit) => {
          const query = { prefix, after, limit };
          const page = listingPage(
            names.map((name) => ({ name })),
            query,
          ).map((e) => e.name);
          const sorted = [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
          const all = sorted.filter(
            (n) =>
              (prefix === undefined || n.startsWith(prefix)) &&
              (after === undefined || compareUtf8(n, after) > 0),
          );
          expect(page).toEqual(limit === undefined ? all : all.slice(0, limit));
          for (const n of page) expect(listingIncludes(n, query)).toBe(true);
          expect(listingFull(page.length, query)).toBe(limit !== undefined && page.length >= limit);
        },
      ),
    );
  });
});
