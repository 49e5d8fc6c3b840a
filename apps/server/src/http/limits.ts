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
 * Admission for storage work: at most `limit` requests may be inside their storage calls at once; beyond that a
 * request is shed with 503 and `Retry-After` before it touches storage. A slot is taken after the request body has
 * arrived, so slow uploads (slowloris) never hold one, and a live request gives its slot back while it waits.
 */
export class Admission {
  private active = 0;

  constructor(private readonly limit: number) {}

  /** Currently admitted requests. */
  get inFlight(): number {
    return this.active;
  }

  /**
   * Takes a slot or throws `OVERLOADED` (503). The returned release is idempotent.
   *
   * @throws HttpError `OVERLOADED`.
   */
  admit(): () => void {
    if (this.active >= this.limit) {
      throw new HttpError('OVERLOADED', `more than ${this.limit} requests are using storage; retry shortly`, {
        'Retry-After': '1',
      });
    }
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
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
