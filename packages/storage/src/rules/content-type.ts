import { StorageError } from '../errors.js';

/**
 * Normalises a content type: the text before the first `;`, trimmed, lower-cased.
 *
 * @throws StorageError `INVALID_CONTENT_TYPE` when the result is empty or holds characters illegal in an HTTP
 *   header value (controls other than tab, or non-Latin-1).
 */
export function normalizeContentType(raw: string): string {
  const semi = raw.indexOf(';');
  const value = (semi === -1 ? raw : raw.slice(0, semi)).trim().toLowerCase();
  if (value.length === 0) throw new StorageError('INVALID_CONTENT_TYPE', 'content type must not be empty');
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) {
      throw new StorageError(
        'INVALID_CONTENT_TYPE',
        `content type contains an illegal character: ${JSON.stringify(raw)}`,
      );
    }
  }
  return value;
}

/** True when the normalised type is exactly `application/json` (the protocol's JSON mode). */
export function isJsonContentType(normalized: string): boolean {
  return normalized === 'application/json';
}
