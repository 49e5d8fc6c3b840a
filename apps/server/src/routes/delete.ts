import type { RequestContext } from '../app.js';

/** `DELETE {stream}` (§5.4): 204; 404 when missing; 410 when already soft-deleted. Forks keep their data. */
export async function handleDelete(ctx: RequestContext): Promise<void> {
  const release = ctx.admit();
  try {
    await ctx.storage.delete(ctx.name);
  } finally {
    release();
  }
  ctx.streams.deleted();
  ctx.res.writeHead(204, { 'Cache-Control': 'no-store' });
  ctx.res.end();
}
