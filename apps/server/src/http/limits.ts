import type { IncomingMessage } from 'node:http';
import type { Storage } from '@streamkeep/storage';
import { HttpError } from '../error-status.js';

/**
 * The size of a request head as this server counts it: the request line (`METHOD url HTTP/1.1\r\n`) plus every header
 * written as `Name: value\r\n`. Node's parser enforces a limit of its own (`maxHeaderSize`) with slightly different
 * bookkeeping; this count gives the limit an exact, documented edge.
 */
export function requestHeadBytes(req: IncomingMessage): number {
  // Method, URL and header strings are latin1 on the wire, so string length is byte length.
  let n = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 12;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i++) n += raw[i]!.length + 2;
  return n;
}

/**
 * The live-read limits: at most `max` long-poll and SSE requests open at once (503 `TOO_MANY_LIVE_READS` beyond),
 * and, when `perClient` is set, at most that many from one client address (429 `TOO_MANY_CLIENT_LIVE_READS`).
 */
export class LiveReadLimit<T> {
  readonly open = new Set<T>();
  /** Open live reads per client address (only kept when there is a per-client limit). */
  private readonly byClient = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly perClient: number | undefined,
  ) {}

  /**
   * Counts `item` as open for the request `req`; returns the idempotent deregistration.
   *
   * @throws HttpError `TOO_MANY_LIVE_READS` (503) or `TOO_MANY_CLIENT_LIVE_READS` (429).
   */
  add(item: T, req: IncomingMessage): () => void {
    if (this.open.size >= this.max) {
      throw new HttpError('TOO_MANY_LIVE_READS', `${this.max} live reads are open; retry shortly`, {
        'Retry-After': '1',
      });
    }
    const perClient = this.perClient;
    // The peer address is looked up (a system call) only when there is a per-client limit to keep.
    const client = perClient === undefined ? '' : (req.socket.remoteAddress ?? '');
    if (perClient !== undefined) {
      const n = this.byClient.get(client) ?? 0;
      if (n >= perClient) {
        throw new HttpError('TOO_MANY_CLIENT_LIVE_READS', `this client has ${perClient} live reads open`, {
          'Retry-After': '1',
        });
      }
      this.byClient.set(client, n + 1);
    }
    this.open.add(item);
    let tracked = true;
    return () => {
      if (!tracked) return;
      tracked = false;
      this.open.delete(item);
      if (perClient === undefined) return;
      const n = (this.byClient.get(client) ?? 1) - 1;
      if (n > 0) this.byClient.set(client, n);
      else this.byClient.delete(client);
    };
  }
}

/** A pending stream creation: `done(created)` settles it. */
export interface StreamReservation {
  done(created: boolean): void;
}

const NO_RESERVATION: StreamReservation = { done: () => {} };

/**
 * Counts the streams a server holds so that creations past `max` are refused. The count is seeded from `listStreams`
 * and kept by the server's own creates and deletes; streams can also vanish behind its back (expiry), so before
 * refusing it recounts, at most once per `recountIntervalMs`.
 */
export class StreamCounter {
  private count: number | undefined;
  private pending = 0;
  private lastRecount = Number.NEGATIVE_INFINITY;
  private recounting: Promise<void> | undefined;

  constructor(
    private readonly storage: Storage,
    private readonly max: number | undefined,
    private readonly recountIntervalMs = 1_000,
  ) {}

  private recount(): Promise<void> {
    this.recounting ??= (async () => {
      try {
        if (!this.storage.capabilities.listStreams) {
          this.count ??= 0;
          return;
        }
        this.count = (await this.storage.listStreams()).length;
        this.lastRecount = Date.now();
      } finally {
        this.recounting = undefined;
      }
    })();
    return this.recounting;
  }

  /**
   * Reserves room for creating `name`. An existing stream needs no room (the PUT is idempotent or a conflict).
   *
   * @throws HttpError `TOO_MANY_STREAMS` (507).
   */
  async reserve(name: string): Promise<StreamReservation> {
    if (this.max === undefined) return NO_RESERVATION;
    if (this.count === undefined) await this.recount();
    if (this.count! + this.pending >= this.max) {
      if (await this.storage.exists(name)) return NO_RESERVATION;
      if (Date.now() - this.lastRecount >= this.recountIntervalMs) await this.recount();
      if (this.count! + this.pending >= this.max) {
        throw new HttpError('TOO_MANY_STREAMS', `this server holds its maximum of ${this.max} streams`);
      }
    }
    this.pending++;
    let settled = false;
    return {
      done: (created) => {
        if (settled) return;
        settled = true;
        this.pending--;
        if (created && this.count !== undefined) this.count++;
      },
    };
  }

  /** A stream was deleted through this server. */
  deleted(): void {
    if (this.count !== undefined && this.count > 0) this.count--;
  }
}
