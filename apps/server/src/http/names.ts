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
  let name = raw;
  if (raw.includes('%')) {
    try {
      name = decodeURIComponent(raw);
    } catch {
      throw invalid('stream name is not valid percent-encoded UTF-8');
    }
  }
  const n = name.length;
  if (n === 0) throw invalid('stream name must not be empty');
  // A UTF-16 code unit is at most 3 UTF-8 bytes: only long names need counting.
  if (n * 3 > MAX_NAME_BYTES && Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) {
    throw invalid(`stream name is longer than ${MAX_NAME_BYTES} bytes`);
  }
  // One pass without allocating (every request names a stream); the errors keep their order of precedence.
  let control = false;
  let badSegment = false;
  let segments = 1;
  let from = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? name.charCodeAt(i) : SLASH;
    if (c < 0x20 || c === 0x7f) control = true;
    else if (c === SLASH) {
      const len = i - from;
      if (
        len === 0 ||
        (name.charCodeAt(from) === DOT && (len === 1 || (len === 2 && name.charCodeAt(from + 1) === DOT)))
      ) {
        badSegment = true;
      }
      if (i < n) segments++;
      from = i + 1;
    }
  }
  if (control) throw invalid('stream name contains control characters');
  if (segments > MAX_NAME_SEGMENTS) throw invalid(`stream name has more than ${MAX_NAME_SEGMENTS} segments`);
  if (badSegment) throw invalid('stream name has an empty, "." or ".." segment');
  return name;
}

const SLASH = 0x2f;
const DOT = 0x2e;

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
