import type { CreateStreamResult, Offset } from '@streamkeep/storage';
import { isJsonContentType, normalizeContentType, parseOffset, StorageError } from '@streamkeep/storage';
import type { RequestContext } from '../context.js';
import { HttpError } from '../error-status.js';
import { readBody } from '../http/body.js';
import {
  headerValue,
  parseContentType,
  parseExpiry,
  parseForkSubOffset,
  parseStreamClosed,
} from '../http/headers.js';
import { splitJsonBody } from '../http/json.js';
import { encodeStreamName, parseForkSource } from '../http/names.js';
import { writeHead } from '../http/respond.js';

const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

/**
 * `PUT {stream}`: create a stream, or a fork with `Stream-Forked-From` (§5.1, §4.2).
 *
 * "If the stream already exists, the server MUST return 200 when content type, TTL / expiry and closure status all
 * match, and 409 otherwise." 201 carries `Location` (SHOULD equal the stream URL).
 */
export async function handlePut(ctx: RequestContext): Promise<void> {
  const { req, res, storage, name, config } = ctx;
  const h = req.headers;
  const caps = storage.capabilities;

  // Validate every header before reading the body, so a bad request costs no upload.
  const rawContentType = parseContentType(h);
  const expiry = parseExpiry(h);
  const closed = parseStreamClosed(h);
  const forkedFrom = headerValue(h, 'stream-forked-from');
  const forkOffsetRaw = headerValue(h, 'stream-fork-offset');
  const subOffset = parseForkSubOffset(h);
  if (forkedFrom === undefined && (forkOffsetRaw !== undefined || subOffset !== undefined)) {
    throw new HttpError(
      'INVALID_HEADER',
      'Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From',
    );
  }
  if ((expiry.ttlSeconds !== undefined || expiry.expiresAt !== undefined) && !caps.expiry) {
    throw new StorageError('NOT_SUPPORTED', 'this storage backend does not support stream expiry');
  }
  let source: string | undefined;
  let forkOffset: Offset | undefined;
  if (forkedFrom !== undefined) {
    if (!caps.forks) throw new StorageError('NOT_SUPPORTED', 'this storage backend does not support forks');
    source = parseForkSource(forkedFrom, config.basePath);
    if (forkOffsetRaw !== undefined) {
      const parsed = parseOffset(forkOffsetRaw.trim());
      // A part beyond 2^53−1 lies beyond every reachable tail (§4.2: beyond the tail "MUST" be 400); answering here
      // keeps backends from having to re-encode an offset they cannot represent.
      if (
        parsed.kind === 'position' &&
        !(Number.isSafeInteger(parsed.readSeq) && Number.isSafeInteger(parsed.byteOffset))
      ) {
        throw new StorageError(
          'FORK_OFFSET_BEYOND_TAIL',
          `fork offset ${forkOffsetRaw.trim()} lies beyond the tail`,
        );
      }
      forkOffset = parsed.kind === 'now' ? undefined : forkOffsetRaw.trim();
    }
  }

  const body = await readBody(req, config.maxRequestBodyBytes);

  const release = await ctx.admit();
  try {
    // A fork without Content-Type inherits the source's type (it must not default before storage sees it).
    const contentType = rawContentType ?? (source === undefined ? DEFAULT_CONTENT_TYPE : undefined);
    let effectiveType = contentType === undefined ? undefined : normalizeContentType(contentType);
    if (effectiveType === undefined && body.length > 0 && source !== undefined) {
      effectiveType = (await storage.head(source)).config.contentType;
    }
    // §9.1: "PUT []" is valid and creates an empty stream; other JSON bodies are flattened one level.
    const messages =
      body.length === 0
        ? []
        : effectiveType !== undefined && isJsonContentType(effectiveType)
          ? splitJsonBody(body)
          : [body];

    let result: CreateStreamResult | undefined;
    const reservation = await ctx.streams.reserve(name);
    try {
      if (source !== undefined) {
        result = await storage.createFork(name, {
          source,
          offset: forkOffset,
          subOffset,
          contentType,
          ...expiry,
          closed,
          messages,
        });
        if (effectiveType === undefined) {
          effectiveType = await storage.head(name).then(
            (m) => m.config.contentType,
            () => undefined,
          );
        }
      } else {
        const options = { contentType: contentType ?? DEFAULT_CONTENT_TYPE, ...expiry, closed, messages };
        // Closure status is part of the match (§5.1 table); storage compares the stream's current closure.
        result = await storage.createStream(name, options);
      }
    } finally {
      reservation.done(result?.created === true);
    }

    const headers: Record<string, string | number> = {
      'Stream-Next-Offset': result.nextOffset,
      'Cache-Control': 'no-store',
      'Content-Length': 0,
    };
    if (effectiveType !== undefined) headers['Content-Type'] = effectiveType;
    if (result.closed) headers['Stream-Closed'] = 'true';
    if (result.created) headers.Location = locationOf(ctx);
    writeHead(res, result.created ? 201 : 200, headers);
    res.end();
  } finally {
    release();
  }
}

/** The absolute URL of the stream (§5.1: `Location` SHOULD equal the stream URL). */
export function locationOf(ctx: RequestContext): string {
  const { config, req, name } = ctx;
  const base = config.basePath === '/' ? '' : config.basePath;
  const path = `${base}/${encodeStreamName(name)}`;
  if (config.publicOrigin !== undefined) return `${config.publicOrigin}${path}`;
  const scheme = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
  const host = req.headers.host ?? 'localhost';
  return `${scheme}://${host}${path}`;
}
