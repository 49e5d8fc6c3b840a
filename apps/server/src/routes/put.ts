import type { CreateStreamOptions, CreateStreamResult, Offset } from '@streamkeep/storage';
import {
  isJsonContentType,
  isStorageError,
  normalizeContentType,
  parseOffset,
  resolveStreamOptions,
  StorageError,
  streamConfigsEqual,
} from '@streamkeep/storage';
import type { RequestContext } from '../app.js';
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

  let result: CreateStreamResult;
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
    try {
      result = await storage.createStream(name, options);
    } catch (err) {
      if (!(closed && isStorageError(err, 'CONFIG_MISMATCH'))) throw err;
      result = await closedSinceCreation(ctx, options, err);
    }
  }
  // Closure status is part of the match (§5.1 table): an existing stream closed since creation does not match a
  // create request without Stream-Closed.
  if (!result.created && result.closed !== closed) {
    throw new StorageError(
      'CONFIG_MISMATCH',
      result.closed ? 'the stream exists and is closed' : 'the stream exists and is open',
    );
  }

  const headers: Record<string, string | number> = {
    'Stream-Next-Offset': result.nextOffset,
    'Cache-Control': 'no-store',
    'Content-Length': 0,
  };
  if (effectiveType !== undefined) headers['Content-Type'] = effectiveType;
  if (result.closed) headers['Stream-Closed'] = 'true';
  if (result.created) headers.Location = locationOf(ctx);
  res.writeHead(result.created ? 201 : 200, headers);
  res.end();
}

/**
 * The §5.1 table: an existing *closed* stream matches a create with `Stream-Closed: true` (200), even if it was created
 * open and closed later. Storage compares the created-closed flag only, so this case arrives as `CONFIG_MISMATCH`;
 * it is a match when the stream is closed now and everything else in its configuration is equal.
 */
async function closedSinceCreation(
  ctx: RequestContext,
  options: CreateStreamOptions,
  mismatch: unknown,
): Promise<CreateStreamResult> {
  const meta = await ctx.storage.head(ctx.name).catch(() => undefined);
  if (meta === undefined || !meta.closed || meta.fork !== null) throw mismatch;
  // Resolved at the stream's own creation instant, so an equal TTL yields an equal config.
  const requested = resolveStreamOptions(options, meta.createdAt);
  if (!streamConfigsEqual({ ...requested, createdClosed: meta.config.createdClosed }, meta.config))
    throw mismatch;
  return { created: false, nextOffset: meta.nextOffset, closed: true };
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
