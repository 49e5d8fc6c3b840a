import { randomBytes } from 'node:crypto';
import type { StreamListener } from '@streamkeep/storage';
import pg from 'pg';

/** What happened to a stream: new data or closure (`w`), or removal / soft delete (`r`, the last hint). */
export type ChangeKind = 'w' | 'r';

/** How many removed stream ids are remembered for subscribers that registered while the removal was in flight. */
const RECENT_REMOVALS = 4096;

/**
 * Cross-instance wake-ups: one LISTEN connection per storage instance, fanned out to the local listeners of each
 * stream, keyed by stream id (so waking one stream never looks at another's listeners).
 *
 * @remarks
 * Commits call `pg_notify(channel, '<instance> <kind> <stream id>')` inside their transaction, so PostgreSQL delivers
 * the notification only when (and after) the commit is visible. The committing instance wakes its own listeners
 * directly after COMMIT and skips its own notifications when they come back. If the LISTEN connection drops,
 * notifications may have been lost, so after reconnecting every local listener is woken once (a spurious hint is
 * harmless; a lost one would stall a reader).
 */
export class Notifier {
  readonly instanceId: string = randomBytes(6).toString('hex');
  readonly #channel: string;
  readonly #config: pg.ClientConfig;
  readonly #listeners = new Map<string, Set<StreamListener>>();
  readonly #recentRemovals = new Set<string>();
  #client: pg.Client | undefined;
  #closed = false;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #reconnectDelay = 100;

  private constructor(config: pg.ClientConfig, channel: string) {
    this.#config = config;
    this.#channel = channel;
  }

  /** Connects and LISTENs before resolving, so every commit after `start` resolves is heard. */
  static async start(config: pg.ClientConfig, channel: string): Promise<Notifier> {
    const notifier = new Notifier(config, channel);
    notifier.#client = await notifier.#connect();
    return notifier;
  }

  get channel(): string {
    return this.#channel;
  }

  /** The payload of a notification about stream `id`. */
  payload(kind: ChangeKind, id: number): string {
    return `${this.instanceId} ${kind} ${id}`;
  }

  /**
   * Registers a listener on stream `id`. Returns false (and registers nothing) when the stream's removal has already
   * been announced: the caller then gives the listener its last hint itself.
   */
  add(id: number, listener: StreamListener): boolean {
    const key = String(id);
    if (this.#recentRemovals.has(key)) return false;
    let set = this.#listeners.get(key);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(key, set);
    }
    set.add(listener);
    return true;
  }

  remove(id: number, listener: StreamListener): void {
    const key = String(id);
    const set = this.#listeners.get(key);
    if (set === undefined) return;
    set.delete(listener);
    if (set.size === 0) this.#listeners.delete(key);
  }

  /** Delivers a change to the local listeners of one stream (after a local commit or a notification). */
  dispatch(kind: ChangeKind, key: string): void {
    if (kind === 'r') this.#rememberRemoval(key);
    const set = this.#listeners.get(key);
    if (set === undefined) return;
    if (kind === 'r') this.#listeners.delete(key);
    for (const listener of [...set]) callListener(listener);
  }

  /** Stops listening and drops every registration. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    const client = this.#client;
    this.#client = undefined;
    if (client !== undefined) await client.end().catch(() => {});
  }

  #rememberRemoval(key: string): void {
    this.#recentRemovals.add(key);
    if (this.#recentRemovals.size > RECENT_REMOVALS) {
      const oldest = this.#recentRemovals.values().next().value;
      if (oldest !== undefined) this.#recentRemovals.delete(oldest);
    }
  }

  async #connect(): Promise<pg.Client> {
    const client = new pg.Client(this.#config);
    client.on('error', () => this.#lost(client));
    client.on('end', () => this.#lost(client));
    client.on('notification', (message) => {
      if (message.channel !== this.#channel || message.payload === undefined) return;
      const [instance, kind, id] = message.payload.split(' ');
      if (instance === this.instanceId || id === undefined || (kind !== 'w' && kind !== 'r')) return;
      this.dispatch(kind, id);
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.#channel}"`);
    } catch (err) {
      client.removeAllListeners('end');
      client.removeAllListeners('error');
      client.on('error', () => {});
      await client.end().catch(() => {});
      throw err;
    }
    return client;
  }

  #lost(client: pg.Client): void {
    if (this.#closed || this.#client !== client) return;
    this.#client = undefined;
    client.end().catch(() => {});
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer !== undefined) return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#connect().then(
        (client) => {
          if (this.#closed) {
            client.end().catch(() => {});
            return;
          }
          this.#client = client;
          this.#reconnectDelay = 100;
          for (const set of [...this.#listeners.values()]) {
            for (const listener of [...set]) callListener(listener);
          }
        },
        () => {
          this.#reconnectDelay = Math.min(this.#reconnectDelay * 2, 5_000);
          this.#scheduleReconnect();
        },
      );
    }, this.#reconnectDelay);
    this.#reconnectTimer.unref();
  }
}

function callListener(listener: StreamListener): void {
  try {
    listener();
  } catch (err) {
    process.emitWarning(`a stream listener threw: ${String(err)}`);
  }
}
