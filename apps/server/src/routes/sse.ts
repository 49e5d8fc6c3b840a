import type { ServerResponse } from 'node:http';
import type { Subscription } from '@streamkeep/storage';
import { isStorageError } from '@streamkeep/storage';
import type { RequestContext } from '../context.js';
import { advanceCursor, nextCursor } from '../http/cursor.js';
import { LiveWaiter } from '../http/live.js';
import type { ReadQuery } from '../http/read-response.js';
import { writeHead } from '../http/respond.js';
import { tick } from '../http/shared-read.js';
import { SSE_KEEP_ALIVE, sseControl, sseDataOf, sseEncodingFor } from '../http/sse.js';

/**
 * `GET {stream}?offset=X&live=sse` (§5.8).
 *
 * - `Content-Type: text/event-stream` (MUST), `Cache-Control: no-cache`, `X-Accel-Buffering: no` (so proxies such
 *   as nginx do not buffer the stream), and `Stream-SSE-Data-Encoding: base64` for binary types (MUST).
 * - Every data event is followed by its own control event whose `streamNextOffset` is the offset just after that
 *   event's messages (conformance 0.3.6); `upToDate` and `streamClosed` ride on the control event that reaches the
 *   tail. A read that returns nothing still sends a control event the first time, so `offset=now` and empty streams
 *   learn the tail at once.
 * - On an append-and-close wake-up the data is re-read and sent before the `streamClosed` control event; the
 *   connection then ends and clients "MUST NOT" reconnect.
 * - "Servers SHOULD close connections about every 60 seconds": after `sseReconnectMs` the response ends cleanly after
 *   a complete event, and the client resumes from the last `streamNextOffset`. Keep-alive comments fill silences.
 */
export async function handleSse(ctx: RequestContext, q: ReadQuery): Promise<void> {
  const { storage, name, res, config } = ctx;
  const waiter = new LiveWaiter();
  const untrack = ctx.trackLive(waiter);
  const onClose = (): void => waiter.end('disconnect');
  res.once('close', onClose);
  let sub: Subscription | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let release: (() => void) | undefined;
  try {
    // The storage slot (queued for, if storage is busy) covers the first read only: an open SSE stream holds none.
    release = await ctx.admit();
    sub = await storage.subscribe(name, waiter.hint);
    const subscribed = tick();
    const meta = await storage.head(name);
    const encoding = sseEncodingFor(meta.config.contentType);
    let result = await ctx.read(q.offset, subscribed);
    release();

    const headers: Record<string, string> = {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
    };
    if (encoding === 'base64') headers['Stream-SSE-Data-Encoding'] = 'base64';
    writeHead(res, 200, headers);
    if (config.sseReconnectMs > 0) {
      reconnectTimer = setTimeout(() => waiter.end('shutdown'), config.sseReconnectMs);
    }

    let cursor = nextCursor(q.cursor, Date.now(), config.cursor);
    let first = true;
    for (;;) {
      let out = '';
      if (result.messages.length > 0) out += sseDataOf(result, encoding);
      if (result.messages.length > 0 || first || (result.closed && result.upToDate)) {
        const closedAtTail = result.closed && result.upToDate;
        cursor = advanceCursor(cursor, Date.now(), config.cursor);
        out += sseControl({
          streamNextOffset: result.nextOffset,
          streamCursor: closedAtTail ? undefined : cursor,
          upToDate: result.upToDate,
          streamClosed: closedAtTail,
        });
      }
      first = false;
      if (out.length > 0 && !(await write(res, out))) return;
      if (result.closed && result.upToDate) break;
      if (result.upToDate) {
        // Caught up: wait for a hint, sending keep-alive comments while idle.
        let reason = await waiter.wait(config.sseKeepAliveMs);
        while (reason === 'timeout') {
          if (!(await write(res, SSE_KEEP_ALIVE))) return;
          reason = await waiter.wait(config.sseKeepAliveMs);
        }
        if (reason !== 'hint') break;
      } else if (waiter.ended !== undefined) {
        break;
      }
      try {
        // Connections woken by the same commit at the same offset share one read.
        result = await ctx.read(result.nextOffset, Math.max(subscribed, waiter.wokenAt));
      } catch (err) {
        // Deleted or expired while we were streaming: end cleanly; a reconnect then gets the 404 / 410.
        if (isStorageError(err, 'NOT_FOUND') || isStorageError(err, 'GONE') || isStorageError(err, 'EXPIRED'))
          break;
        throw err;
      }
    }
    if (waiter.ended !== 'disconnect') res.end();
  } finally {
    release?.();
    clearTimeout(reconnectTimer);
    sub?.unsubscribe();
    untrack();
    res.off('close', onClose);
  }
}

/** Writes a chunk, honouring back-pressure. Resolves `false` when the client has gone. */
function write(res: ServerResponse, chunk: string): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return Promise.resolve(false);
  if (res.write(chunk)) return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => () => {
      res.off('drain', onDrain);
      res.off('close', onGone);
      resolve(ok);
    };
    const onDrain = done(true);
    const onGone = done(false);
    res.once('drain', onDrain);
    res.once('close', onGone);
  });
}
