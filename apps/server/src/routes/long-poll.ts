import type { ReadResult, StreamMetadata, Subscription } from '@streamkeep/storage';
import type { RequestContext } from '../context.js';
import { nextCursor } from '../http/cursor.js';
import { LiveWaiter } from '../http/live.js';
import { type ReadQuery, sendRead } from '../http/read-response.js';
import { writeHead } from '../http/respond.js';
import { tick } from '../http/shared-read.js';

/**
 * `GET {stream}?offset=X&live=long-poll` (§5.7).
 *
 * - Data at the offset: answered at once, like catch-up plus a `Stream-Cursor` (MUST).
 * - Closed with the client at the tail: "MUST return 204 + Stream-Closed + Stream-Up-To-Date immediately".
 * - Otherwise wait for the stream's own wake-up hints (source appends never wake a fork's waiters) up to the timeout,
 *   then 204 with `Stream-Next-Offset`, `Stream-Up-To-Date: true` and `Stream-Cursor` (all MUST).
 *
 * The subscription is taken before the first read, so no commit between the read and the wait can be missed.
 */
export async function handleLongPoll(ctx: RequestContext, q: ReadQuery): Promise<void> {
  const { storage, name, res, config } = ctx;
  const waiter = new LiveWaiter();
  const untrack = ctx.trackLive(waiter);
  const onClose = (): void => waiter.end('disconnect');
  res.once('close', onClose);
  let sub: Subscription | undefined;
  let release: (() => void) | undefined;
  try {
    // The storage slot (queued for, if storage is busy) covers the first read only: a waiting long-poll holds none.
    release = await ctx.admit();
    sub = await storage.subscribe(name, waiter.hint);
    const subscribed = tick();
    const meta = await storage.head(name);
    const deadline = Date.now() + config.longPollTimeoutMs;
    let result = await ctx.read(q.offset, subscribed);
    for (;;) {
      if (waiter.ended === 'disconnect') return;
      if (result.messages.length > 0) {
        return await sendRead(ctx, q, meta, result, nextCursor(q.cursor, Date.now(), config.cursor));
      }
      if (result.closed && result.upToDate) return sendEmpty(ctx, meta, result);
      release();
      const reason = await waiter.wait(deadline - Date.now());
      if (reason === 'disconnect') return;
      // Re-read on every wake-up, the timeout included: data committed just before the deadline is returned rather
      // than skipped by an empty 204.
      // Waiters woken by the same commit at the same offset share one read (the storage call and its result).
      result = await ctx.read(result.nextOffset, Math.max(subscribed, waiter.wokenAt));
      if (result.messages.length === 0 && (reason === 'timeout' || reason === 'shutdown')) {
        return sendEmpty(ctx, meta, result);
      }
    }
  } finally {
    release?.();
    sub?.unsubscribe();
    untrack();
    res.off('close', onClose);
  }
}

function sendEmpty(ctx: RequestContext, _meta: StreamMetadata, result: ReadResult): void {
  const headers: Record<string, string> = {
    'Stream-Next-Offset': result.nextOffset,
    'Stream-Up-To-Date': 'true',
    // §10: long-poll 204 responses "SHOULD NOT be cached by CDNs".
    'Cache-Control': 'no-store',
  };
  headers['Stream-Cursor'] = nextCursor(ctx.query.get('cursor'), Date.now(), ctx.config.cursor);
  if (result.closed && result.upToDate) headers['Stream-Closed'] = 'true';
  writeHead(ctx.res, 204, headers);
  ctx.res.end();
}
