import {
  type Clock,
  type ForkInfo,
  formatOffset,
  type StorageCapabilities,
  type StorageErrorCode,
  type StorageErrorDetails,
  type StreamConfig,
  type StreamMetadata,
} from '@streamkeep/storage';

// The reference model's state — its table of streams — and the rules every one of its operations shares: visibility,
// tails, byte limits, TTL renewal, lineage release, name claims, config identity and a stream's logical content. Like
// the rest of the model it restates the contract without the contract's shared rule helpers.

/**
 * The outcome of one operation: a value, or the `code` of the `StorageError` it must reject with and, for the codes
 * whose `details` the contract documents, those details.
 */
export type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | {
      readonly ok: false;
      readonly code: StorageErrorCode;
      readonly details?: StorageErrorDetails | undefined;
    };

export interface ModelProducer {
  epoch: number;
  lastSeq: number;
  updatedAt: number;
}

export interface ModelStream {
  readonly name: string;
  readonly contentType: string;
  readonly ttlSeconds: number | null;
  expiresAt: number | null;
  readonly createdClosed: boolean;
  /** The position of the first local message: (0, 0), or the fork offset. */
  readonly baseSeq: number;
  readonly baseBytes: number;
  readonly local: Uint8Array[];
  localBytes: number;
  readonly fork: ForkInfo | null;
  closed: boolean;
  lastSeq: string | null;
  readonly producers: Map<string, ModelProducer>;
  readonly createdAt: number;
  updatedAt: number | null;
  refCount: number;
  tombstone: boolean;
}

/** One message of a stream's logical content (inherited ancestors first, then its own). */
export interface ModelMessage {
  readonly offset: string;
  readonly data: Uint8Array;
}

/** The byte limits of a model; `undefined` is unlimited. */
export interface ModelLimits {
  readonly maxTotalBytes?: number | undefined;
  readonly maxStreamBytes?: number | undefined;
}

class Reject extends Error {
  constructor(
    readonly code: StorageErrorCode,
    readonly details?: StorageErrorDetails,
  ) {
    super(code);
  }
}

/** Ends the current operation with the rejection `code` (caught by {@link ModelState.run}). */
export function fail(code: StorageErrorCode, details?: StorageErrorDetails): never {
  throw new Reject(code, details);
}

/** Byte-wise order of the UTF-8 encodings. */
export function utf8Order(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function sizeOf(messages: readonly Uint8Array[]): number {
  let n = 0;
  for (const m of messages) n += m.byteLength;
  return n;
}

/** Text before the first `;`, trimmed, lower-cased; empty or non-header characters are invalid. */
export function contentTypeOf(raw: string): string {
  const cut = raw.split(';')[0] ?? '';
  const value = cut.trim().toLowerCase();
  if (value === '' || /[^\t\x20-\x7e\x80-\xff]/.test(value)) fail('INVALID_CONTENT_TYPE');
  return value;
}

export function sameConfig(a: StreamConfig, b: StreamConfig): boolean {
  if (
    a.contentType !== b.contentType ||
    a.ttlSeconds !== b.ttlSeconds ||
    a.createdClosed !== b.createdClosed
  ) {
    return false;
  }
  return a.ttlSeconds !== null || a.expiresAt === b.expiresAt;
}

/** What a create or fork request is matched against: the config, with the stream's *current* closure (§5.1). */
export function identityOf(s: ModelStream): StreamConfig {
  return { ...configOf(s), createdClosed: s.closed };
}

export function configOf(s: ModelStream): StreamConfig {
  return {
    contentType: s.contentType,
    ttlSeconds: s.ttlSeconds,
    expiresAt: s.expiresAt,
    createdClosed: s.createdClosed,
  };
}

/** The model's streams, its clock, limits and declared capabilities, and the rules its operations share. */
export class ModelState {
  readonly streams = new Map<string, ModelStream>();

  constructor(
    readonly clock: Clock,
    readonly limits: ModelLimits,
    readonly capabilities: StorageCapabilities | undefined,
  ) {}

  now(): number {
    return this.clock.now();
  }

  expired(s: ModelStream): boolean {
    return s.expiresAt !== null && this.now() >= s.expiresAt;
  }

  tail(s: ModelStream): string {
    return formatOffset(s.baseSeq + s.local.length, s.baseBytes + s.localBytes);
  }

  totalBytes(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.localBytes;
    return n;
  }

  access(name: string): ModelStream {
    const s = this.streams.get(name);
    if (s === undefined) fail('NOT_FOUND');
    if (s.tombstone) fail('GONE');
    if (this.expired(s)) fail('EXPIRED');
    return s;
  }

  checkLimits(bytes: number, otherTotal: number, streamBytes: number): void {
    if (bytes === 0) return;
    const { maxTotalBytes, maxStreamBytes } = this.limits;
    if (maxTotalBytes !== undefined && otherTotal + bytes > maxTotalBytes) fail('STORAGE_LIMIT_EXCEEDED');
    if (maxStreamBytes !== undefined && streamBytes + bytes > maxStreamBytes) fail('STREAM_LIMIT_EXCEEDED');
  }

  renew(s: ModelStream): void {
    if (s.ttlSeconds !== null) s.expiresAt = this.now() + s.ttlSeconds * 1000;
  }

  push(s: ModelStream, messages: readonly Uint8Array[]): void {
    for (const m of messages) {
      s.local.push(m.slice());
      s.localBytes += m.byteLength;
    }
  }

  /** Hard-removes a stream and releases its lineage: a tombstoned ancestor left without forks goes too. */
  remove(s: ModelStream): void {
    this.streams.delete(s.name);
    let fork = s.fork;
    while (fork !== null) {
      const parent = this.streams.get(fork.source);
      if (parent === undefined) return;
      parent.refCount = Math.max(0, parent.refCount - 1);
      if (!parent.tombstone || parent.refCount > 0) return;
      this.streams.delete(parent.name);
      fork = parent.fork;
    }
  }

  /** Decides what an existing entry means for a create or fork of the same name; returns it when it must be replaced. */
  existing(
    name: string,
  ): { kind: 'none' } | { kind: 'replace'; old: ModelStream } | { kind: 'live'; s: ModelStream } {
    const s = this.streams.get(name);
    if (s === undefined) return { kind: 'none' };
    if (this.expired(s) || s.tombstone) {
      if (s.refCount > 0 || s.tombstone) fail('PATH_BLOCKED');
      return { kind: 'replace', old: s };
    }
    return { kind: 'live', s };
  }

  newStream(name: string, config: StreamConfig, baseSeq: number, baseBytes: number, fork: ForkInfo | null) {
    const s: ModelStream = {
      name,
      contentType: config.contentType,
      ttlSeconds: config.ttlSeconds,
      expiresAt: config.expiresAt,
      createdClosed: config.createdClosed,
      baseSeq,
      baseBytes,
      local: [],
      localBytes: 0,
      fork,
      closed: config.createdClosed,
      lastSeq: null,
      producers: new Map(),
      createdAt: this.now(),
      updatedAt: null,
      refCount: 0,
      tombstone: false,
    };
    this.streams.set(name, s);
    return s;
  }

  /** A stream's logical content: its ancestors' messages below each fork offset, then its own. */
  logical(s: ModelStream): ModelMessage[] {
    const out: ModelMessage[] = [];
    if (s.fork !== null) {
      const parent = this.streams.get(s.fork.source);
      if (parent !== undefined) {
        const bound = s.fork.offset;
        for (const m of this.logical(parent)) if (m.offset < bound) out.push(m);
      }
    }
    let seq = s.baseSeq;
    let bytes = s.baseBytes;
    for (const data of s.local) {
      out.push({ offset: formatOffset(seq, bytes), data });
      seq += 1;
      bytes += data.byteLength;
    }
    return out;
  }

  metadata(s: ModelStream): StreamMetadata {
    return {
      name: s.name,
      config: configOf(s),
      nextOffset: this.tail(s),
      closed: s.closed,
      totalBytes: s.localBytes,
      messageCount: s.local.length,
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
      lastSeq: s.lastSeq,
      fork: s.fork === null ? null : { ...s.fork },
    };
  }

  /** Runs one operation: its value, or the rejection it ended with through {@link fail}. */
  run<T>(body: () => T): Outcome<T> {
    try {
      return { ok: true, value: body() };
    } catch (err) {
      if (err instanceof Reject)
        return err.details === undefined
          ? { ok: false, code: err.code }
          : { ok: false, code: err.code, details: err.details };
      throw err;
    }
  }
}
