import { describe, expect, it } from 'vitest';
import { isStorageError, STORAGE_ERROR_CODES, StorageError } from '../src/index.js';

describe('StorageError', () => {
  it('carries a code, details and a cause', () => {
    const cause = new Error('ENOSPC');
    const err = new StorageError('STREAM_CLOSED', 'closed', { details: { nextOffset: 'x' }, cause });
    expect(err.code).toBe('STREAM_CLOSED');
    expect(err.details.nextOffset).toBe('x');
    expect(err.cause).toBe(cause);
    expect(err.name).toBe('StorageError');
    expect(err).toBeInstanceOf(Error);
  });

  it('is recognised by brand, not by class identity', () => {
    // An error from another copy of this package: a different class with the same global brand.
    const foreign = Object.assign(new Error('x'), {
      code: 'GONE',
      [Symbol.for('streamkeep.storage.error')]: true,
    });
    expect(isStorageError(foreign)).toBe(true);
    expect(isStorageError(foreign, 'GONE')).toBe(true);
    expect(isStorageError(foreign, 'NOT_FOUND')).toBe(false);
  });

  it('rejects look-alikes without the brand', () => {
    expect(isStorageError(Object.assign(new Error('x'), { code: 'NOT_FOUND' }))).toBe(false);
    expect(isStorageError(null)).toBe(false);
    expect(isStorageError('NOT_FOUND')).toBe(false);
    expect(isStorageError(new TypeError('x'))).toBe(false);
  });

  it('has unique, upper-snake-case codes', () => {
    expect(new Set(STORAGE_ERROR_CODES).size).toBe(STORAGE_ERROR_CODES.length);
    for (const code of STORAGE_ERROR_CODES) expect(code).toMatch(/^[A-Z]+(_[A-Z]+)*$/);
  });
});
