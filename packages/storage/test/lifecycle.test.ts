import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  afterForkRemoved,
  compareOffsets,
  type ForkInfo,
  type ForkSourceView,
  forkPrefix,
  formatOffset,
  type LifecycleView,
  planDelete,
  planExpiry,
  planFork,
  planNameClaim,
  type StreamConfig,
  sameLineage,
  ZERO_OFFSET,
} from '../src/index.js';
import { outcomeOf, textConfig } from './support.js';

const live: LifecycleView = { config: textConfig, closed: false, tombstone: false, refCount: 0, fork: null };
const expiring: StreamConfig = { ...textConfig, expiresAt: 100 };
const lineage: ForkInfo = { source: 's', offset: formatOffset(1, 4), subOffset: 0 };
const source: ForkSourceView = { config: textConfig, tombstone: false, nextOffset: formatOffset(2, 8) };
const offsetArb = fc
  .tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 20 }))
  .map(([s, b]) => formatOffset(s, b));

describe('planNameClaim', () => {
  const claim = (
    existing: LifecycleView | undefined,
    requested: { config: StreamConfig; fork: ForkInfo | null } = { config: textConfig, fork: null },
    now = 0,
  ) =>
    outcomeOf(() => planNameClaim('n', existing, requested, now)) ??
    planNameClaim('n', existing, requested, now);

  it('frees, replaces, matches or refuses a name', () => {
    expect(claim(undefined)).toBe('free');
    expect(claim(live)).toBe('existing');
    expect(claim({ ...live, tombstone: true, refCount: 1 })).toBe('PATH_BLOCKED');
    expect(claim({ ...live, config: expiring }, undefined, 100)).toBe('replace');
    expect(claim({ ...live, config: expiring, refCount: 2 }, undefined, 100)).toBe('PATH_BLOCKED');
    expect(claim({ ...live, config: expiring }, undefined, 99)).toBe('CONFIG_MISMATCH');
    expect(claim({ ...live, closed: true })).toBe('CONFIG_MISMATCH');
    expect(
      claim({ ...live, closed: true }, { config: { ...textConfig, createdClosed: true }, fork: null }),
    ).toBe('existing');
  });

  it('never lets a plain create match a fork, nor a fork another lineage', () => {
    expect(claim({ ...live, fork: lineage })).toBe('CONFIG_MISMATCH');
    expect(claim({ ...live, fork: lineage }, { config: textConfig, fork: lineage })).toBe('existing');
    expect(claim(live, { config: textConfig, fork: lineage })).toBe('CONFIG_MISMATCH');
    expect(
      claim({ ...live, fork: lineage }, { config: textConfig, fork: { ...lineage, subOffset: 1 } }),
    ).toBe('CONFIG_MISMATCH');
  });

  it('compares lineages by source, offset order and sub-offset', () => {
    fc.assert(
      fc.property(offsetArb, offsetArb, fc.nat(2), fc.nat(2), (a, b, x, y) => {
        const same = sameLineage(
          { source: 's', offset: a, subOffset: x },
          { source: 's', offset: b, subOffset: y },
        );
        expect(same).toBe(compareOffsets(a, b) === 0 && x === y);
      }),
    );
    expect(sameLineage(null, null)).toBe(true);
    expect(sameLineage(lineage, { ...lineage, source: 't' })).toBe(false);
  });
});

describe('planFork', () => {
  const plan = (
    view: ForkSourceView | undefined,
    offset?: string,
    subOffset = 0,
    now = 0,
    contentType?: string,
  ) => planFork({ source: 's', contentType }, { offset, subOffset }, view, now);

  it('checks the source in the contract order', () => {
    expect(outcomeOf(() => plan(undefined))).toBe('NOT_FOUND');
    expect(outcomeOf(() => plan({ ...source, tombstone: true, config: expiring }, 'now', 0, 200))).toBe(
      'FORK_FROM_TOMBSTONE',
    );
    expect(outcomeOf(() => plan({ ...source, config: expiring }, 'now', 0, 200))).toBe('EXPIRED');
    expect(outcomeOf(() => plan(source, 'now', 0, 0, 'a/b'))).toBe('FORK_OFFSET_BEYOND_TAIL');
    expect(outcomeOf(() => plan(source, undefined, 0, 0, 'a/b'))).toBe('CONTENT_TYPE_MISMATCH');
  });

  it('refuses exactly the offsets beyond the source tail', () => {
    fc.assert(
      fc.property(offsetArb, offsetArb, (offset, tail) => {
        const outcome = outcomeOf(() => plan({ ...source, nextOffset: tail }, offset));
        expect(outcome).toBe(compareOffsets(offset, tail) > 0 ? 'FORK_OFFSET_BEYOND_TAIL' : undefined);
      }),
    );
  });

  it('forks at the tail by default, from the offset parts, and sizes the sub-offset prefix', () => {
    const atTail = plan(source);
    expect(atTail.fork).toEqual({ source: 's', offset: source.nextOffset, subOffset: 0 });
    expect([atTail.baseSeq, atTail.baseBytes, atTail.prefixMessages]).toEqual([2, 8, 0]);
    expect(plan(source, ZERO_OFFSET, 3).prefixMessages).toBe(1);
    expect(
      plan({ ...source, config: { ...textConfig, contentType: 'application/json' } }, ZERO_OFFSET, 3)
        .prefixMessages,
    ).toBe(3);
  });

  it('takes a JSON prefix by messages and any other by bytes of the first message', () => {
    const m = (...b: number[]) => new Uint8Array(b);
    const bytesPlan = plan(source, ZERO_OFFSET, 2);
    expect(forkPrefix(bytesPlan, [m(1, 2, 3), m(4)])).toEqual([m(1, 2)]);
    expect(outcomeOf(() => forkPrefix(bytesPlan, [m(1)]))).toBe('FORK_SUB_OFFSET_OUT_OF_RANGE');
    expect(outcomeOf(() => forkPrefix(bytesPlan, []))).toBe('FORK_SUB_OFFSET_OUT_OF_RANGE');
    const json = plan(
      { ...source, config: { ...textConfig, contentType: 'application/json' } },
      ZERO_OFFSET,
      2,
    );
    expect(forkPrefix(json, [m(1), m(2)])).toEqual([m(1), m(2)]);
    expect(outcomeOf(() => forkPrefix(json, [m(1)]))).toBe('FORK_SUB_OFFSET_OUT_OF_RANGE');
    expect(forkPrefix(plan(source), [])).toEqual([]);
    // The byte prefix is a copy: the source's buffer may be reused by the backend afterwards.
    const shared = m(7, 8, 9);
    const [copy] = forkPrefix(bytesPlan, [shared]);
    shared.fill(0);
    expect(copy).toEqual(m(7, 8));
  });
});

describe('delete and expiry', () => {
  it('deletes, tombstones or refuses', () => {
    expect(outcomeOf(() => planDelete('n', undefined))).toBe('NOT_FOUND');
    expect(outcomeOf(() => planDelete('n', { tombstone: true, refCount: 1 }))).toBe('GONE');
    expect(planDelete('n', { tombstone: false, refCount: 1 })).toBe('tombstone');
    expect(planDelete('n', { tombstone: false, refCount: 0 })).toBe('remove');
  });

  it('sweeps exactly the expired visible streams, as a delete would', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.nat(2),
        fc.option(fc.nat(200)),
        fc.nat(200),
        (tombstone, refCount, at, now) => {
          const entry = { tombstone, refCount, config: { ...textConfig, expiresAt: at } };
          const action = planExpiry(entry, now);
          if (tombstone || at === null || now < at) expect(action).toBeUndefined();
          else expect(action).toBe(planDelete('n', entry));
        },
      ),
    );
  });

  it('removes a source when its last fork goes and it is a tombstone', () => {
    expect(afterForkRemoved({ tombstone: true, refCount: 1 })).toEqual({ refCount: 0, remove: true });
    expect(afterForkRemoved({ tombstone: true, refCount: 2 })).toEqual({ refCount: 1, remove: false });
    expect(afterForkRemoved({ tombstone: false, refCount: 1 })).toEqual({ refCount: 0, remove: false });
    expect(afterForkRemoved({ tombstone: true, refCount: 0 })).toEqual({ refCount: 0, remove: true });
  });
});
