import { StorageError } from '@streamkeep/storage';
import * as testing from '@streamkeep/storage/testing';
import * as helpers from '@streamkeep/storage-conformance/helpers';
import { describe, expect, it } from 'vitest';
import * as kit from '../src/index.js';

// The helpers shared through `@streamkeep/storage/testing` and re-exported by the kit: both entries must hand out the
// very same functions and class, and each must keep its contract on the failing paths too (the README example only
// shows the passing ones).

const { codeOf, expectCode, ManualClock } = testing;

describe('test helpers', () => {
  it('are the same objects under every entry', () => {
    expect(helpers.codeOf).toBe(testing.codeOf);
    expect(helpers.expectCode).toBe(testing.expectCode);
    expect(helpers.ManualClock).toBe(testing.ManualClock);
    expect(kit.ManualClock).toBe(testing.ManualClock);
  });

  it('codeOf: undefined on success, the code on a StorageError, anything else rethrown', async () => {
    expect(await codeOf(Promise.resolve(1))).toBeUndefined();
    expect(await codeOf(() => 1)).toBeUndefined();
    expect(await codeOf(Promise.reject(new StorageError('GONE', 'deleted')))).toBe('GONE');
    expect(
      await codeOf(() => {
        throw new StorageError('NOT_FOUND', 'missing');
      }),
    ).toBe('NOT_FOUND');
    const plain = new TypeError('bad argument');
    await expect(codeOf(Promise.reject(plain))).rejects.toBe(plain);
    await expect(
      codeOf(() => {
        throw plain;
      }),
    ).rejects.toBe(plain);
  });

  it('expectCode: returns the matching error, and says what happened otherwise', async () => {
    const gone = new StorageError('GONE', 'deleted');
    expect(await expectCode(Promise.reject(gone), 'GONE')).toBe(gone);
    await expect(expectCode(Promise.resolve(), 'GONE')).rejects.toThrow(
      'expected a rejection with GONE, but it resolved',
    );
    const wrong = await expectCode(Promise.reject(gone), 'NOT_FOUND').catch((err: Error) => err);
    expect(wrong).toBeInstanceOf(Error);
    expect(wrong.message).toBe('expected a rejection with NOT_FOUND, but it rejected with GONE');
    expect(wrong.cause).toBe(gone);
    const plain = new Error('boom');
    const other = await expectCode(() => Promise.reject(plain), 'GONE').catch((err: Error) => err);
    expect(other.message).toBe('expected a rejection with GONE, but it threw Error: boom');
    expect(other.cause).toBe(plain);
  });

  it('ManualClock: starts at a fixed instant and only moves forward', () => {
    const clock = new ManualClock();
    expect(clock.now()).toBe(Date.UTC(2026, 0, 1));
    expect(ManualClock.DEFAULT_START).toBe(Date.UTC(2026, 0, 1));
    clock.advance(5);
    expect(clock.now()).toBe(ManualClock.DEFAULT_START + 5);
    clock.set(ManualClock.DEFAULT_START + 100);
    expect(clock.now()).toBe(ManualClock.DEFAULT_START + 100);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.advance(Number.NaN)).toThrow(RangeError);
    expect(() => clock.advance(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => clock.set(ManualClock.DEFAULT_START)).toThrow(RangeError);
    expect(clock.now()).toBe(ManualClock.DEFAULT_START + 100);
    expect(new ManualClock(42).now()).toBe(42);
  });
});
