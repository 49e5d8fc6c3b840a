import type { StreamMetadata } from '@streamkeep/storage';
import type { RequestContext } from '../context.js';
import { writeHead } from '../http/respond.js';

/** The expiry headers of a stream: its configured TTL, or its absolute deadline (§5.5). */
export function expiryHeaders(meta: StreamMetadata): Record<string, string> {
  const { ttlSeconds, expiresAt } = meta.config;
  if (ttlSeconds !== null) return { 'Stream-TTL': String(ttlSeconds) };
  if (expiresAt !== null) return { 'Stream-Expires-At': new Date(expiresAt).toISOString() };
  return {};
}

/**
 * `HEAD {stream}` (§5.5): the stream's type, tail, closure and expiry. HEAD never renews a TTL, and "SHOULD" carry
 * `Cache-Control: no-store` (§12.7).
 */
export async function handleHead(ctx: RequestContext): Promise<void> {
  const release = await ctx.admit();
  let meta: StreamMetadata;
  try {
    meta = await ctx.storage.head(ctx.name);
  } finally {
    release();
  }
  const headers: Record<string, string> = {
    'Content-Type': meta.config.contentType,
    'Stream-Next-Offset': meta.nextOffset,
    'Cache-Control': 'no-store',
    ...expiryHeaders(meta),
  };
  if (meta.closed) headers['Stream-Closed'] = 'true';
  writeHead(ctx.res, 200, headers);
  ctx.res.end();
}
