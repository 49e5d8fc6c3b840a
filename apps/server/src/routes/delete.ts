import type { RequestContext } from '../context.js';
import { writeHead } from '../http/respond.js';

/** `DELETE {stream}` (§5.4): 204; 404 when missing; 410 when already soft-deleted. Forks keep their data. */
export async function handleDelete(ctx: RequestContext): Promise<void> {
  const release = await ctx.admit();
  try {
    await ctx.storage.delete(ctx.name);
  } finally {
    release();
  }
  ctx.streams.deleted();
  writeHead(ctx.res, 204, { 'Cache-Control': 'no-store' });
  ctx.res.end();
}
