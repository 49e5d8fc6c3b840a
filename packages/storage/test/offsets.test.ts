import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareOffsets,
  formatOffset,
  isStorageError,
  isValidOffset,
  NOW_OFFSET,
  parseOffset,
  START_OFFSET,
  ZERO_OFFSET,
} from '../src/index.js';

const part = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });

describe('offsets', () => {
  it('formats the wire examples of the protocol', () => {
    expect(formatOffset(0, 0)).toBe(ZERO_OFFSET);
    expect(formatOffset(1, 42)).toBe('0000000000000001_000000000000002a');
    expect(formatOffset(1, 4)).toBe('0000000000000001_0000000000000004');
  });

  it('round-trips every position', () => {
    fc.assert(
      fc.property(part, part, (seq, bytes) => {
        const parsed = parseOffset(formatOffset(seq, bytes));
        expect(parsed).toEqual({ kind: 'position', readSeq: seq, byteOffset: bytes });
      }),
    );
  });

  it('orders offsets as strings exactly as their numeric pairs', () => {
    fc.assert(
      fc.property(part, part, part, part, (s1, b1, s2, b2) => {
        const numeric = s1 === s2 ? Math.sign(b1 - b2) : Math.sign(s1 - s2);
        expect(Math.sign(compareOffsets(formatOffset(s1, b1), formatOffset(s2, b2)))).toBe(numeric);
      }),
    );
  });

  it('sorts -1 before and now after every concrete offset', () => {
    fc.assert(
      fc.property(part, part, (s, b) => {
        const o = formatOffset(s, b);
        expect(compareOffsets(START_OFFSET, o)).toBeLessThan(0);
        expect(compareOffsets(NOW_OFFSET, o)).toBeGreaterThan(0);
      }),
    );
  });

  it('parses the sentinels', () => {
    expect(parseOffset('-1')).toEqual({ kind: 'start' });
    expect(parseOffset('now')).toEqual({ kind: 'now' });
  });

  it.each([
    '',
    ' -1',
    'NOW',
    '0000000000000000-0000000000000000',
    '000000000000000_00000000000000000',
    '0000000000000000_000000000000000',
    '0000000000000000_00000000000000000',
    '000000000000000A_0000000000000000',
    '000000000000000g_0000000000000000',
    '0000000000000000_0000000000000000_0',
    '0000000000000000__000000000000000',
    '../../etc/passwd',
    '0000000000000000_000000000000000\n',
    '0000000000000000,0000000000000000',
    '-2',
  ])('rejects %j with INVALID_OFFSET', (bad) => {
    expect(isValidOffset(bad)).toBe(false);
    try {
      parseOffset(bad);
      expect.unreachable();
    } catch (err) {
      expect(isStorageError(err, 'INVALID_OFFSET')).toBe(true);
    }
  });

  it('accepts exactly the strings it can format', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        if (isValidOffset(s) && s !== '-1' && s !== 'now') {
          const p = parseOffset(s);
          expect(p.kind).toBe('position');
        }
      }),
    );
  });

  it('parses offsets beyond 2^53 as positions after any reachable tail', () => {
    const huge = parseOffset('9999999999999999_9999999999999999');
    expect(huge.kind).toBe('position');
    expect(
      compareOffsets('9999999999999999_9999999999999999', formatOffset(Number.MAX_SAFE_INTEGER, 0)),
    ).toBeGreaterThan(0);
  });

  it('refuses to format parts that are not safe non-negative integers', () => {
    expect(() => formatOffset(-1, 0)).toThrow(RangeError);
    expect(() => formatOffset(0, 1.5)).toThrow(RangeError);
    expect(() => formatOffset(2 ** 53, 0)).toThrow(RangeError);
  });
});
