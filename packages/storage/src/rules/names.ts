import { StorageError } from '../errors.js';

/**
 * Checks the storage-level name rule: a non-empty string of well-formed UTF-16 (no lone surrogates, so that the
 * name has one UTF-8 encoding). Every backend stores every name this accepts.
 *
 * @throws TypeError when `name` is not a string; StorageError `INVALID_STREAM_NAME` otherwise.
 */
export function assertStreamName(name: string): void {
  if (typeof name !== 'string') throw new TypeError(`stream name must be a string, got ${typeName(name)}`);
  if (name.length === 0) throw new StorageError('INVALID_STREAM_NAME', 'stream name must not be empty');
  if (!isWellFormed(name)) {
    throw new StorageError('INVALID_STREAM_NAME', 'stream name contains a lone surrogate');
  }
}

/**
 * True when `value` holds no lone surrogate, so it has exactly one UTF-8 encoding (`String.prototype.isWellFormed`,
 * which the ES2023 library lacks).
 */
export function isWellFormed(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    const next = value.charCodeAt(i + 1);
    if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return false;
    i++;
  }
  return true;
}

/**
 * Compares two strings by their UTF-8 encodings, byte by byte, without encoding them: UTF-8 byte order equals code
 * point order, which differs from JavaScript's UTF-16 code unit order for characters above U+FFFF.
 */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (U+D800–DFFF) stand for code points above U+FFFF, which sort after U+E000–U+FFFF in UTF-8.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** A short description of a value's type for `TypeError` messages. */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}
