import { StorageError } from './errors.js';

/**
 * An offset in the Durable Streams wire format.
 *
 * @remarks
 * A concrete offset is exactly 33 ASCII characters: 16 lower-case hex digits of `readSeq` (the number of messages
 * before the position), `_`, 16 lower-case hex digits of `byteOffset` (the payload bytes before the position; record
 * framing is never counted). The offset of a message is the position before it; a stream's tail is the position after
 * its last message. Two sentinels exist on input only: `-1` (the start) and `now` (the current tail).
 *
 * Because both parts are fixed-width lower-case hex, comparing two valid offsets as plain strings gives their numeric
 * order, and `-1` < every concrete offset < `now`. {@link compareOffsets} relies on that.
 */
export type Offset = string;

/** The start-of-stream sentinel. */
export const START_OFFSET = '-1';
/** The current-tail sentinel. */
export const NOW_OFFSET = 'now';
/** The position (0, 0): the tail of an empty, unforked stream. */
export const ZERO_OFFSET = '0000000000000000_0000000000000000';

/** A decoded offset. Parts above 2^53−1 decode to the nearest double, which still lies beyond any reachable tail. */
export type ParsedOffset =
  | { readonly kind: 'start' }
  | { readonly kind: 'now' }
  | { readonly kind: 'position'; readonly readSeq: number; readonly byteOffset: number };

const PAD = '0000000000000000';

/**
 * Encodes a position as a concrete offset.
 *
 * @throws RangeError when a part is not a non-negative safe integer.
 */
export function formatOffset(readSeq: number, byteOffset: number): Offset {
  if (!Number.isSafeInteger(readSeq) || readSeq < 0 || !Number.isSafeInteger(byteOffset) || byteOffset < 0) {
    throw new RangeError(`offset parts must be non-negative safe integers, got ${readSeq}, ${byteOffset}`);
  }
  const a = readSeq.toString(16);
  const b = byteOffset.toString(16);
  return PAD.slice(a.length) + a + '_' + PAD.slice(b.length) + b;
}

function isLowerHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102);
}

/** True when `value` is `-1`, `now`, or a well-formed concrete offset. Never throws. */
export function isValidOffset(value: string): boolean {
  if (value === START_OFFSET || value === NOW_OFFSET) return true;
  if (value.length !== 33 || value.charCodeAt(16) !== 95) return false;
  for (let i = 0; i < 33; i++) {
    if (i !== 16 && !isLowerHex(value.charCodeAt(i))) return false;
  }
  return true;
}

/**
 * Strictly decodes an offset string.
 *
 * @throws StorageError `INVALID_OFFSET` for anything but `-1`, `now` or a well-formed concrete offset: wrong length,
 * missing `_`, upper-case or non-hex digits, surrounding white space.
 */
export function parseOffset(value: string): ParsedOffset {
  if (value === START_OFFSET) return { kind: 'start' };
  if (value === NOW_OFFSET) return { kind: 'now' };
  if (!isValidOffset(value)) {
    const printable = JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
    throw new StorageError(
      'INVALID_OFFSET',
      /[A-F]/.test(value) && value.length === 33
        ? `offset must use lower-case hex digits, got ${printable}`
        : `expected an offset of the form <16 hex>_<16 hex>, -1 or now, got ${printable}`,
    );
  }
  return {
    kind: 'position',
    readSeq: Number.parseInt(value.slice(0, 16), 16),
    byteOffset: Number.parseInt(value.slice(17), 16),
  };
}

/**
 * Orders two valid offsets (sentinels included): negative when `a` sorts first, 0 when equal, positive otherwise.
 * Does not validate its arguments.
 */
export function compareOffsets(a: Offset, b: Offset): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
