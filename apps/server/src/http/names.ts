import { StorageError } from '@streamkeep/storage';

/** Longest stream name, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 1024;
/** Most `/`-separated segments in a stream name. */
export const MAX_NAME_SEGMENTS = 8;
/** First path segment reserved for the protocol's subscription API (§6). */
export const RESERVED_SEGMENT = '__ds';

function invalid(message: string): StorageError {
  return new StorageError('INVALID_STREAM_NAME', message);
}

/**
 * Turns the part of a URL path after the base path into a stream name: percent-decoded; non-empty; no empty, `.` or
 * `..` segment (no traversal, §12.2); no control characters; at most {@link MAX_NAME_BYTES} bytes and
 * {@link MAX_NAME_SEGMENTS} segments.
 *
 * @throws StorageError `INVALID_STREAM_NAME` (400).
 */
export function parseStreamName(raw: string): string {
  let name: string;
  try {
    name = decodeURIComponent(raw);
  } catch {
    throw invalid('stream name is not valid percent-encoded UTF-8');
  }
  if (name.length === 0) throw invalid('stream name must not be empty');
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) {
    throw invalid(`stream name is longer than ${MAX_NAME_BYTES} bytes`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point.
  if (/[\u0000-\u001f\u007f]/.test(name)) throw invalid('stream name contains control characters');
  const segments = name.split('/');
  if (segments.length > MAX_NAME_SEGMENTS) {
    throw invalid(`stream name has more than ${MAX_NAME_SEGMENTS} segments`);
  }
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..') throw invalid('stream name has an empty, "." or ".." segment');
  }
  return name;
}

const NAME_CACHE_SIZE = 4096;
/** Longer paths are validated every time, so that the memo holds at most a few MiB whatever clients send. */
const NAME_CACHE_MAX_RAW = 256;
const nameCache = new Map<string, string>();

/**
 * {@link parseStreamName} with a memo of recently valid names: a busy server sees the same few stream paths over and
 * over, and decoding plus validating each costs more than a map lookup. Invalid names are not remembered (they throw
 * every time); the memo is emptied when full, so it stays bounded whatever paths clients send.
 */
export function parseStreamNameCached(raw: string): string {
  const hit = nameCache.get(raw);
  if (hit !== undefined) return hit;
  const name = parseStreamName(raw);
  if (raw.length > NAME_CACHE_MAX_RAW) return name;
  if (nameCache.size >= NAME_CACHE_SIZE) nameCache.clear();
  nameCache.set(raw, name);
  return name;
}

/** True when the name falls under the reserved `__ds` subscription namespace. */
export function isReservedName(name: string): boolean {
  return name === RESERVED_SEGMENT || name.startsWith(`${RESERVED_SEGMENT}/`);
}

/**
 * The source named by `Stream-Forked-From`: a path on this server (the suite sends `/v1/stream/<name>`), an absolute
 * URL, or a bare name.
 */
export function parseForkSource(value: string, basePath: string): string {
  let path = value.trim();
  if (/^https?:\/\//i.test(path)) {
    try {
      path = new URL(path).pathname;
    } catch {
      throw invalid('Stream-Forked-From is not a valid URL');
    }
  }
  const prefix = basePath === '/' ? '/' : `${basePath}/`;
  if (path.startsWith(prefix)) path = path.slice(prefix.length);
  else if (path.startsWith('/')) path = path.slice(1);
  return parseStreamName(path);
}

/** Percent-encodes a stream name for use in a URL path, keeping its `/` separators. */
export function encodeStreamName(name: string): string {
  return name.split('/').map(encodeURIComponent).join('/');
}
