import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One webhook delivery as the receiver saw it. */
export interface Delivery {
  /** `performance.now()` when the whole request body had arrived. */
  readonly at: number;
  /** The subscription, from the receiver URL it was POSTed to (`/hook/<server>/<subscription>`). */
  readonly subscription: string;
  /** Each stream of the wake and its tail offset, from the body (`streams[].path`, `streams[].tail_offset`). */
  readonly tails: ReadonlyMap<string, string>;
}

interface Waiter {
  readonly stream: string;
  readonly offset: string;
  readonly resolve: (d: Delivery) => void;
}

/** Deliveries received by the subscriptions of one server (one key of the receiver). */
export class Inbox {
  /** Every delivery received so far. */
  count = 0;
  /** Deliveries whose body could not be read as a wake (counted, never matched). */
  malformed = 0;
  private readonly waiters = new Map<string, Waiter[]>();

  constructor(readonly key: string) {}

  /**
   * Resolves with the first delivery to `subscription` whose tail of `stream` is at or past `offset` (offsets are
   * lexicographically ordered, protocol §4), or `undefined` after `timeoutMs`. Register before the append: the
   * webhook may arrive before the append's acknowledgement.
   */
  wait(
    subscription: string,
    stream: string,
    offset: () => string,
    timeoutMs: number,
  ): Promise<Delivery | undefined> {
    return new Promise((resolve) => {
      const list = this.waiters.get(subscription) ?? [];
      let settled = false;
      const timer = setTimeout(() => done(undefined), timeoutMs);
      const done = (d: Delivery | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const rest = (this.waiters.get(subscription) ?? []).filter((w) => w !== waiter);
        if (rest.length) this.waiters.set(subscription, rest);
        else this.waiters.delete(subscription);
        resolve(d);
      };
      // The offset is read lazily: it is only known once the append is acknowledged, and a delivery that arrives
      // before then is kept as a candidate below.
      const waiter: Waiter = {
        stream,
        get offset() {
          return offset();
        },
        resolve: done,
      };
      list.push(waiter);
      this.waiters.set(subscription, list);
    });
  }

  /** @internal called by the receiver for each delivery. */
  deliver(d: Delivery): void {
    this.count++;
    const list = this.waiters.get(d.subscription);
    if (!list) return;
    for (const w of [...list]) {
      const tail = d.tails.get(w.stream);
      const want = w.offset;
      // `want` is empty while the append is still in flight: any delivery carrying the stream then belongs to it (no
      // earlier append to the stream is unacknowledged: the sampler waits for each wake before the next append).
      if (tail !== undefined && (want === '' || tail >= want)) w.resolve(d);
    }
  }
}

/**
 * The webhook receiver of the subscriptions scenario: an HTTP server on 127.0.0.1 in the harness process. Every
 * delivery is answered at once with `200 {"done": true}`, so the server acks the wake synchronously (§6.3) and the next
 * append to the stream wakes the subscription again; nothing calls back.
 */
export class WebhookReceiver {
  private readonly inboxes = new Map<string, Inbox>();
  private server: Server | undefined;
  private origin = '';

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      void this.handle(req).then(
        () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"done":true}');
        },
        () => {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end('{"error":"bad delivery"}');
        },
      );
    });
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** The inbox of one server's subscriptions (created on first use). */
  inbox(key: string): Inbox {
    let box = this.inboxes.get(key);
    if (!box) {
      box = new Inbox(key);
      this.inboxes.set(key, box);
    }
    return box;
  }

  /** The webhook URL of `subscription` on the server whose inbox is `key`. */
  url(key: string, subscription: string): string {
    return `${this.origin}/hook/${encodeURIComponent(key)}/${encodeURIComponent(subscription)}`;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const at = performance.now();
    const m = /^\/hook\/([^/]+)\/([^/?]+)/.exec(req.url ?? '');
    const box = m ? this.inboxes.get(decodeURIComponent(m[1] as string)) : undefined;
    if (!m || !box) throw new Error(`no inbox for ${req.url}`);
    const tails = new Map<string, string>();
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        streams?: { path?: unknown; tail_offset?: unknown }[];
      };
      for (const s of body.streams ?? []) {
        if (typeof s.path === 'string' && typeof s.tail_offset === 'string') {
          tails.set(s.path.replace(/^\/+/, ''), s.tail_offset);
        }
      }
    } catch {
      box.malformed++;
    }
    box.deliver({ at, subscription: decodeURIComponent(m[2] as string), tails });
  }
}
