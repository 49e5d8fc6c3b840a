import type { RequestContext } from '../context.js';
import { parseReadQuery, sendRead } from '../http/read-response.js';
import { tick } from '../http/shared-read.js';
import { handleLongPoll } from './long-poll.js';
import { handleSse } from './sse.js';

/** `GET {stream}`: catch-up (§5.6), long-poll (§5.7) or SSE (§5.8). */
export async function handleGet(ctx: RequestContext): Promise<void> {
  const q = parseReadQuery(ctx.query);
  if (q.live === 'long-poll') return handleLongPoll(ctx, q);
  if (q.live === 'sse') return handleSse(ctx, q);
  const release = await ctx.admit();
  try {
    const arrived = tick();
    const meta = await ctx.storage.head(ctx.name);
    const result = await ctx.read(q.offset, arrived);
    await sendRead(ctx, q, meta, result, undefined);
  } finally {
    release();
  }
}
