import {
  formatOffset,
  type ListStreamsOptions,
  parseOffset,
  type ReadResult,
  StorageError,
  type StreamMetadata,
} from '@streamkeep/storage';
import { fail, type ModelState, utf8Order } from './state.js';

// The model's reads: messages from an offset within a byte budget (renewing a sliding TTL), metadata, existence and
// the listing. Each function that can reject runs inside `ModelState.run`.

export function read(
  state: ModelState,
  name: string,
  from: string,
  options: { maxBytes?: number | undefined },
): ReadResult {
  let parsed: ReturnType<typeof parseOffset>;
  try {
    parsed = parseOffset(from);
  } catch (err) {
    if (err instanceof StorageError) fail(err.code);
    throw err;
  }
  const s = state.access(name);
  const all = state.logical(s);
  const tail = state.tail(s);
  let start: number;
  if (parsed.kind === 'now') start = all.length;
  else if (parsed.kind === 'start') start = 0;
  else {
    const at = formatOffset(parsed.readSeq, parsed.byteOffset);
    start = all.findIndex((m) => m.offset >= at);
    if (start === -1) start = all.length;
  }
  let end = start;
  let bytes = 0;
  while (end < all.length) {
    const size = all[end]!.data.byteLength;
    if (options.maxBytes !== undefined && end > start && bytes + size > options.maxBytes) break;
    bytes += size;
    end += 1;
  }
  const upToDate = end === all.length;
  state.renew(s);
  return {
    messages: all.slice(start, end).map((m) => m.data),
    nextOffset: upToDate ? tail : all[end]!.offset,
    upToDate,
    closed: s.closed,
  };
}

export function head(state: ModelState, name: string): StreamMetadata {
  return state.metadata(state.access(name));
}

export function exists(state: ModelState, name: string): boolean {
  const s = state.streams.get(name);
  return s !== undefined && !s.tombstone && !state.expired(s);
}

export function listStreams(state: ModelState, options: ListStreamsOptions): StreamMetadata[] {
  if (state.capabilities?.listStreams === false) fail('NOT_SUPPORTED');
  const visible = [...state.streams.values()]
    .filter((s) => !s.tombstone && !state.expired(s))
    .filter((s) => options.prefix === undefined || s.name.startsWith(options.prefix))
    .filter((s) => options.after === undefined || utf8Order(s.name, options.after) > 0)
    .sort((a, b) => utf8Order(a.name, b.name));
  const limited = options.limit === undefined ? visible : visible.slice(0, options.limit);
  return limited.map((s) => state.metadata(s));
}
