import type { IncomingHttpHeaders } from 'node:http';
import type { ProducerIdentity } from '@streamkeep/storage';
import { HttpError } from '../error-status.js';

/** Request headers of the protocol, as a browser sends them in a CORS preflight (lower-case). */
export const PROTOCOL_REQUEST_HEADERS = [
  'content-type',
  'authorization',
  'if-none-match',
  'stream-seq',
  'stream-ttl',
  'stream-expires-at',
  'stream-closed',
  'producer-id',
  'producer-epoch',
  'producer-seq',
  'stream-forked-from',
  'stream-fork-offset',
  'stream-fork-sub-offset',
] as const;

/** Response headers a browser client must be able to read (§5, plus the SSE encoding header the client reads). */
export const PROTOCOL_RESPONSE_HEADERS = [
  'Stream-Next-Offset',
  'Stream-Cursor',
  'Stream-Up-To-Date',
  'Stream-Closed',
  'Stream-TTL',
  'Stream-Expires-At',
  'Stream-SSE-Data-Encoding',
  'Producer-Epoch',
  'Producer-Seq',
  'Producer-Expected-Seq',
  'Producer-Received-Seq',
  'ETag',
  'Location',
  'Content-Type',
  'Content-Encoding',
  'Content-Length',
  'Cache-Control',
  'Retry-After',
  'Vary',
] as const;

/** The single value of a header, or `undefined`. Node joins repeated unknown headers with ", ". */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(', ') : v;
}

/**
 * `Stream-Closed` counts as present only when its value is `true`, compared case-insensitively (§5: MUST). Other values
 * are ignored and "SHOULD NOT produce an error".
 */
export function parseStreamClosed(headers: IncomingHttpHeaders): boolean {
  const v = headerValue(headers, 'stream-closed');
  return v !== undefined && v.trim().toLowerCase() === 'true';
}

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const MEDIA_TYPE = new RegExp(`^\\s*${TOKEN}/${TOKEN}\\s*(;.*)?$`, 's');

/**
 * Validates a request `Content-Type` as `type/subtype[; params]`. Anything else is refused rather than silently turned
 * into `application/octet-stream` (the reference server's habit).
 */
export function parseContentType(headers: IncomingHttpHeaders): string | undefined {
  const v = headerValue(headers, 'content-type');
  if (v === undefined) return undefined;
  if (!MEDIA_TYPE.test(v)) {
    throw new HttpError(
      'INVALID_HEADER',
      `Content-Type must be a media type (type/subtype), got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/**
 * `Stream-TTL`: "MUST be a non-negative decimal integer with no leading zeros, `+`, `.` or exponent" (§5.1).
 */
export function parseTtl(headers: IncomingHttpHeaders): number | undefined {
  const v = headerValue(headers, 'stream-ttl');
  if (v === undefined) return undefined;
  const t = v.trim();
  const n = Number(t);
  if (!DECIMAL.test(t) || !Number.isSafeInteger(n)) {
    throw new HttpError(
      'INVALID_HEADER',
      `Stream-TTL must be a whole number of seconds, got ${JSON.stringify(v)}`,
    );
  }
  return n;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$/;

/** Parses an RFC 3339 timestamp strictly (no `Date` leniency) into epoch milliseconds, or `undefined`. */
export function parseRfc3339(value: string): number | undefined {
  const m = RFC3339.exec(value);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone, sign, zh, zm] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60) return undefined;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day > daysInMonth) return undefined;
  let offsetMinutes = 0;
  if (zone !== 'Z' && zone !== 'z') {
    const oh = Number(zh);
    const om = Number(zm);
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (sign === '-' ? -1 : 1) * (oh * 60 + om);
  }
  // A leap second (:60) is folded onto the next second, as Date cannot represent it.
  const ms = frac === undefined ? 0 : Math.floor(Number(`0${frac}`) * 1000);
  const t = Date.UTC(year, month - 1, day, hour, minute, Math.min(second, 59), ms);
  return t + (second === 60 ? 1000 : 0) - offsetMinutes * 60_000;
}

/** `Stream-Expires-At`: an absolute RFC 3339 deadline (§5.1). */
export function parseExpiresAt(headers: IncomingHttpHeaders): number | undefined {
  const v = headerValue(headers, 'stream-expires-at');
  if (v === undefined) return undefined;
  const t = parseRfc3339(v.trim());
  if (t === undefined) {
    throw new HttpError(
      'INVALID_HEADER',
      `Stream-Expires-At must be an RFC 3339 timestamp, got ${JSON.stringify(v)}`,
    );
  }
  return t;
}

/** Both expiry headers: "servers SHOULD reject the request with 400" (§5.1). */
export function parseExpiry(headers: IncomingHttpHeaders): { ttlSeconds?: number; expiresAt?: number } {
  const ttlSeconds = parseTtl(headers);
  const expiresAt = parseExpiresAt(headers);
  if (ttlSeconds !== undefined && expiresAt !== undefined) {
    throw new HttpError('INVALID_HEADER', 'Stream-TTL and Stream-Expires-At cannot be combined');
  }
  return {
    ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
    ...(expiresAt === undefined ? {} : { expiresAt }),
  };
}

const DIGITS = /^[0-9]+$/;

function producerNumber(name: string, value: string): number {
  const n = Number(value);
  if (!DIGITS.test(value) || !Number.isSafeInteger(n)) {
    throw new HttpError(
      'INVALID_HEADER',
      `${name} must be an integer from 0 to 2^53-1, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/**
 * The idempotent-producer headers: "all three or none" (§5.2.1, 400 otherwise); the id non-empty, epoch and seq
 * integers in 0 … 2^53−1.
 */
export function parseProducer(headers: IncomingHttpHeaders): ProducerIdentity | undefined {
  const id = headerValue(headers, 'producer-id');
  const epoch = headerValue(headers, 'producer-epoch');
  const seq = headerValue(headers, 'producer-seq');
  if (id === undefined && epoch === undefined && seq === undefined) return undefined;
  if (id === undefined || epoch === undefined || seq === undefined) {
    throw new HttpError(
      'INVALID_HEADER',
      'Producer-Id, Producer-Epoch and Producer-Seq must be sent together',
    );
  }
  if (id.length === 0) throw new HttpError('INVALID_HEADER', 'Producer-Id must not be empty');
  return {
    id,
    epoch: producerNumber('Producer-Epoch', epoch.trim()),
    seq: producerNumber('Producer-Seq', seq.trim()),
  };
}

/** `Stream-Seq`: an opaque writer sequence; an empty value is refused rather than compared. */
export function parseStreamSeq(headers: IncomingHttpHeaders): string | undefined {
  const v = headerValue(headers, 'stream-seq');
  if (v === undefined) return undefined;
  if (v.length === 0) throw new HttpError('INVALID_HEADER', 'Stream-Seq must not be empty');
  return v;
}

/** `Stream-Fork-Sub-Offset`: a non-negative integer; `0` is the same as absent. */
export function parseForkSubOffset(headers: IncomingHttpHeaders): number | undefined {
  const v = headerValue(headers, 'stream-fork-sub-offset');
  if (v === undefined) return undefined;
  const t = v.trim();
  const n = Number(t);
  if (!DIGITS.test(t) || !Number.isSafeInteger(n)) {
    throw new HttpError(
      'INVALID_HEADER',
      `Stream-Fork-Sub-Offset must be a non-negative integer, got ${JSON.stringify(v)}`,
    );
  }
  return n;
}

/** True when `If-None-Match` lists `etag` (or `*`). Weak comparison: a `W/` prefix is ignored. */
export function ifNoneMatchHits(headers: IncomingHttpHeaders, etag: string): boolean {
  const v = headerValue(headers, 'if-none-match');
  if (v === undefined) return false;
  for (const raw of v.split(',')) {
    const t = raw.trim();
    if (t === '*') return true;
    if ((t.startsWith('W/') ? t.slice(2) : t) === etag) return true;
  }
  return false;
}
