import type { AppendResult, ProducerAppendResult, ProducerIdentity, Storage } from '@streamkeep/storage';
import { isJsonContentType, isStorageError, normalizeContentType, StorageError } from '@streamkeep/storage';
import type { RequestContext } from '../context.js';
import { HttpError } from '../error-status.js';
import { readBody } from '../http/body.js';
import {
  headerValue,
  parseContentType,
  parseProducer,
  parseStreamClosed,
  parseStreamSeq,
} from '../http/headers.js';
import { splitJsonBody } from '../http/json.js';
import { writeHead } from '../http/respond.js';

/**
 * `POST {stream}`: append, close, or append-and-close, optionally as an idempotent producer (§5.2, §5.2.1, §5.3).
 *
 * Statuses are exact: a plain append or close is 204; a producer append that wrote data is 200; a producer duplicate
 * or producer close-only is 204.
 */
export async function handlePost(ctx: RequestContext): Promise<void> {
  const { req, storage, config } = ctx;
  const h = req.headers;
  const close = parseStreamClosed(h);
  const producer = parseProducer(h);
  const seq = parseStreamSeq(h);
  if (producer !== undefined && !storage.capabilities.producers) {
    throw new StorageError('NOT_SUPPORTED', 'this storage backend does not support idempotent producers');
  }

  const body = await readBody(req, config.maxRequestBodyBytes);
  const admitted = ctx.admit();
  // A free slot comes back synchronously: no await, so no extra microtask turn per append.
  const release = typeof admitted === 'function' ? admitted : await admitted;
  try {
    await appendBody(ctx, body, close, producer, seq);
  } finally {
    release();
  }
}

async function appendBody(
  ctx: RequestContext,
  body: Buffer,
  close: boolean,
  producer: ProducerIdentity | undefined,
  seq: string | undefined,
): Promise<void> {
  const { req, res, storage, name } = ctx;
  const h = req.headers;

  let messages: Buffer[] = [];
  if (body.length === 0) {
    // §5.2: an empty body "MUST" be 400 unless Stream-Closed: true is present; an empty-body close "MUST NOT" be
    // rejected on Content-Type.
    if (!close) throw new HttpError('EMPTY_BODY', 'an append needs a body unless it closes the stream');
  } else {
    const rawContentType = parseContentType(h);
    if (rawContentType === undefined) {
      throw new HttpError('INVALID_HEADER', 'an append with a body needs a Content-Type');
    }
    if (isJsonContentType(normalizeContentType(rawContentType))) {
      try {
        messages = splitJsonBody(body);
        if (messages.length === 0) throw new HttpError('EMPTY_ARRAY', 'a JSON append of [] is not allowed');
      } catch (err) {
        // Error precedence (§5.2, SHOULD): closed, then content-type mismatch, then the body itself.
        await rethrowPrecedingError(storage, name, rawContentType);
        throw err;
      }
    } else {
      messages = [body];
    }
  }

  const contentType = messages.length > 0 ? headerValue(h, 'content-type') : undefined;
  let result: AppendResult | ProducerAppendResult;
  let status = 204;
  const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
  if (producer !== undefined) {
    const r = await storage.appendWithProducer(name, { messages, contentType, seq, close, producer });
    result = r;
    status = r.duplicate || messages.length === 0 ? 204 : 200;
    headers['Producer-Epoch'] = String(r.epoch);
    // The highest accepted seq for this (stream, producer, epoch), which for a duplicate is the stored one.
    headers['Producer-Seq'] = String(r.seq);
  } else {
    result = await storage.append(name, { messages, contentType, seq, close });
  }
  headers['Stream-Next-Offset'] = result.nextOffset;
  if (result.closed) headers['Stream-Closed'] = 'true';
  if (!('duplicate' in result && result.duplicate))
    ctx.metrics?.appended(messages.length, byteLength(messages));
  writeHead(res, status, headers);
  res.end();
}

/** Throws the error a closed stream or a content-type mismatch would have produced, if either applies. */
async function rethrowPrecedingError(storage: Storage, name: string, contentType: string): Promise<void> {
  let meta: Awaited<ReturnType<Storage['head']>>;
  try {
    meta = await storage.head(name);
  } catch (err) {
    if (isStorageError(err)) throw err;
    return;
  }
  if (meta.closed) {
    throw new StorageError('STREAM_CLOSED', 'stream is closed', { details: { nextOffset: meta.nextOffset } });
  }
  const actual = normalizeContentType(contentType);
  if (actual !== meta.config.contentType) {
    throw new StorageError(
      'CONTENT_TYPE_MISMATCH',
      `content type ${actual} does not match the stream's ${meta.config.contentType}`,
      { details: { expected: meta.config.contentType, actual } },
    );
  }
}

function byteLength(messages: readonly Buffer[]): number {
  let n = 0;
  for (const m of messages) n += m.length;
  return n;
}
