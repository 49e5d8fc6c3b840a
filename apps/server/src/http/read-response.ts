import { createRequire } from 'node:module';
import { gzip } from 'node:zlib';
import type { ReadResult, StreamMetadata } from '@streamkeep/storage';
import { isJsonContentType, parseOffset } from '@streamkeep/storage';
import type NegotiatorClass from 'negotiator';
import type { RequestContext } from '../context.js';
import { HttpError } from '../error-status.js';
import { ifNoneMatchHits } from './headers.js';
import { varyWith, writeHead } from './respond.js';

/**
 * Read responses: the query of a read, and the 200 / 304 a catch-up read or a long-poll with data answers. Shared by
 * the catch-up route and the long-poll session, which therefore do not import each other.
 */

/** The parsed query of a read. */
export interface ReadQuery {
  /** The `offset` parameter as sent (`-1` when absent). */
  readonly offset: string;
  readonly isNow: boolean;
  readonly live: 'long-poll' | 'sse' | undefined;
  readonly cursor: string | null;
}

/**
 * Parses `offset`, `live` and `cursor`. The offset grammar is strict (only `-1`, `now` or a concrete offset); an empty
 * or repeated `offset` is 400, and live modes "MUST" have one. Unknown parameters are ignored.
 */
export function parseReadQuery(query: URLSearchParams): ReadQuery {
  const offsets = query.getAll('offset');
  const lives = query.getAll('live');
  if (offsets.length > 1) throw new HttpError('INVALID_QUERY', 'offset must be given at most once');
  if (lives.length > 1) throw new HttpError('INVALID_QUERY', 'live must be given at most once');
  const live = lives[0];
  if (live !== undefined && live !== 'long-poll' && live !== 'sse') {
    throw new HttpError('INVALID_QUERY', `live must be long-poll or sse, got ${JSON.stringify(live)}`);
  }
  const raw = offsets[0];
  if (raw === undefined && live !== undefined) {
    throw new HttpError('INVALID_QUERY', `live=${live} requires an offset`);
  }
  const offset = raw ?? '-1';
  const parsed = parseOffset(offset);
  return { offset, isNow: parsed.kind === 'now', live, cursor: query.get('cursor') };
}

/** The body of a read: raw concatenated bytes, or for JSON streams `[` + messages joined by `,` + `]` (§9.1). */
export function readBody(meta: StreamMetadata, messages: readonly Uint8Array[]): Buffer {
  const json = isJsonContentType(meta.config.contentType);
  let size = json ? 2 + Math.max(0, messages.length - 1) : 0;
  for (const m of messages) size += m.byteLength;
  if (!json && messages.length === 1) {
    const m = messages[0]!;
    return Buffer.from(m.buffer, m.byteOffset, m.byteLength);
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  if (json) out[at++] = 0x5b;
  for (let i = 0; i < messages.length; i++) {
    if (json && i > 0) out[at++] = 0x2c;
    const m = messages[i]!;
    out.set(m, at);
    at += m.byteLength;
  }
  if (json) out[at++] = 0x5d;
  return out;
}

interface EncodedRead {
  readonly json: boolean;
  readonly body: Buffer;
  gzipped?: Promise<Buffer>;
}

const encodedReads = new WeakMap<ReadResult, EncodedRead>();

/**
 * The body of a read result, built (and gzipped) once however many requests share the result (see `SharedReads`):
 * 1,000 long-polls woken by one append send the same buffer. Keyed weakly by the result, so it lives as long as
 * someone still holds the result.
 */
function encodedRead(meta: StreamMetadata, result: ReadResult): EncodedRead {
  const json = isJsonContentType(meta.config.contentType);
  let encoded = encodedReads.get(result);
  if (encoded === undefined || encoded.json !== json) {
    encoded = { json, body: readBody(meta, result.messages) };
    encodedReads.set(result, encoded);
  }
  return encoded;
}

/**
 * The ETag of a read: `"{stream id}:{start}:{end}[:c]"` (§10.1 suggestion). The stream id is the creation instant, so a
 * stream re-created at the same URL gets different tags; `:c` marks a response that reaches the end of a closed
 * stream, so the tag "MUST change when the stream closes".
 */
export function readEtag(meta: StreamMetadata, start: string, result: ReadResult): string {
  const closedAtTail = result.closed && result.upToDate;
  return `"${meta.createdAt.toString(36)}:${start}:${result.nextOffset}${closedAtTail ? ':c' : ''}"`;
}

/**
 * Sends a 200 read response (catch-up, or long-poll with `cursor`), or 304 when `If-None-Match` matches.
 *
 * - `Stream-Up-To-Date: true` only when the response reaches the tail: "SHOULD NOT be present when the server chunked
 *   the response" (clients test for presence, so it is omitted rather than sent as `false`).
 * - `Stream-Closed: true` only at the final offset of a closed stream (MUST), never on a partial chunk.
 * - `offset=now`: no ETag and `Cache-Control: no-store` (SHOULD); other reads are cacheable (§10).
 */
export async function sendRead(
  ctx: RequestContext,
  q: ReadQuery,
  meta: StreamMetadata,
  result: ReadResult,
  cursor: string | undefined,
): Promise<void> {
  const { req, res, config } = ctx;
  const headers: Record<string, string | number> = {
    'Content-Type': meta.config.contentType,
    'Stream-Next-Offset': result.nextOffset,
  };
  if (result.upToDate) headers['Stream-Up-To-Date'] = 'true';
  if (result.closed && result.upToDate) headers['Stream-Closed'] = 'true';
  if (cursor !== undefined) headers['Stream-Cursor'] = cursor;
  if (q.isNow) {
    headers['Cache-Control'] = 'no-store';
  } else {
    const etag = readEtag(meta, q.offset, result);
    headers.ETag = etag;
    headers['Cache-Control'] = config.readCacheControl;
    if (ifNoneMatchHits(req.headers, etag)) {
      writeHead(res, 304, headers);
      res.end();
      return;
    }
  }
  const encoded = encodedRead(meta, result);
  let body = encoded.body;
  if (config.compression) {
    headers.Vary = varyWith(res, 'Accept-Encoding');
    if (body.length >= config.compressionMinBytes && prefersGzip(req.headers)) {
      // Asynchronous gzip runs on the libuv thread pool, never blocking the event loop.
      encoded.gzipped ??= new Promise<Buffer>((resolve, reject) =>
        gzip(encoded.body, { level: 6 }, (err, out) => (err ? reject(err) : resolve(out))),
      );
      body = await encoded.gzipped;
      headers['Content-Encoding'] = 'gzip';
    }
  }
  headers['Content-Length'] = body.length;
  writeHead(res, 200, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * True when the response should be gzipped: the client sent `Accept-Encoding` and, of gzip and identity, gzip is
 * what it prefers (RFC 9110 §12.5.3, through `negotiator`: `gzip;q=0, *;q=1` refuses gzip; a tie goes to gzip).
 * Without the header the body goes as it is: the RFC allows any coding then, but an old client may not expect one.
 */
export function prefersGzip(headers: Readonly<Record<string, string | string[] | undefined>>): boolean {
  if (headers['accept-encoding'] === undefined) return false;
  Negotiator ??= createRequire(import.meta.url)('negotiator') as typeof NegotiatorClass;
  return new Negotiator({ headers }).encoding(['gzip', 'identity']) === 'gzip';
}

/** `negotiator`, loaded on the first compressible read that sends `Accept-Encoding` (less resident heap until then). */
let Negotiator: typeof NegotiatorClass | undefined;
