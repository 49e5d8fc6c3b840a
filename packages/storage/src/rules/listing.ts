import { compareUtf8 } from './names.js';

/** A validated listing query (see `validateListStreams`). */
export interface ListingQuery {
  readonly prefix?: string | undefined;
  readonly after?: string | undefined;
  readonly limit?: number | undefined;
}

/** True when a *visible* stream named `name` belongs to the listing: it starts with `prefix` and sorts after `after`. */
export function listingIncludes(name: string, query: ListingQuery): boolean {
  if (query.prefix !== undefined && !name.startsWith(query.prefix)) return false;
  return query.after === undefined || compareUtf8(name, query.after) > 0;
}

/** True when a page holding `count` entries is full. */
export function listingFull(count: number, query: ListingQuery): boolean {
  return query.limit !== undefined && count >= query.limit;
}

/**
 * The page a listing returns from the visible streams: those {@link listingIncludes} admits, sorted by name in UTF-8
 * byte order, at most `limit` of them.
 */
export function listingPage<T extends { readonly name: string }>(
  visible: Iterable<T>,
  query: ListingQuery,
): T[] {
  const page: T[] = [];
  for (const item of visible) if (listingIncludes(item.name, query)) page.push(item);
  page.sort((a, b) => compareUtf8(a.name, b.name));
  if (query.limit !== undefined && page.length > query.limit) page.length = query.limit;
  return page;
}
