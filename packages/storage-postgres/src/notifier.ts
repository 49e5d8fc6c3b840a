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
 *
 * Subscription changes travel on a second channel of their own (`'<instance> <base64url id>'`, sent by the
 * subscription store in the transaction of the change): every other instance calls its subscription listeners with
 * the id; after a reconnect they are called once with `undefined` (anything may have changed meanwhile).
 */
export class Notifier {
  readonly instanceId: string = randomBytes(6).toString('hex');
  readonly #channel: string;
  readonly #subscriptionChannel: string;
  readonly #subscriptionListeners = new Set<(id: string | undefined) => void>();
  readonly #config: pg.ClientConfig;
  readonly #listeners = new Map<string, Set<StreamListener>>();
  readonly #recentRemovals = new Set<string>();
  #client: pg.Client | undefined;
  #closed = false;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #reconnectDelay = 100;

  private constructor(config: pg.ClientConfig, channel: string, subscriptionChannel: string) {
    this.#config = config;
    this.#channel = channel;
    this.#subscriptionChannel = subscriptionChannel;
  }

  /** Connects and LISTENs (on both channels) before resolving, so every commit after `start` resolves is heard. */
  static async start(
    config: pg.ClientConfig,
    channel: string,
    subscriptionChannel: string,
  ): Promise<Notifier> {
    const notifier = new Notifier(config, channel, subscriptionChannel);
    notifier.#client = await notifier.#connect();
    return notifier;
  }

  get channel(): string {
    return this.#channel;
  }

  get subscriptionChannel(): string {
    return this.#subscriptionChannel;
  }

  /** The payload of a notification that subscription `id` was created, reconfigured or deleted. */
  subscriptionPayload(id: string): string {
    return `${this.instanceId} ${Buffer.from(id, 'utf8').toString('base64url')}`;
  }

  /** Registers a listener of other instances' subscription changes; returns its (idempotent) removal. */
  onSubscriptionsChanged(listener: (id: string | undefined) => void): () => void {
    if (typeof listener !== 'function') {
      throw new TypeError(`listener must be a function, got ${typeof listener}`);
    }
    if (this.#closed) return () => {};
    // A wrapper, so that registering one function twice gives two independent registrations.
    const registration = (id: string | undefined) => listener(id);
    this.#subscriptionListeners.add(registration);
    return () => {
      this.#subscriptionListeners.delete(registration);
    };
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
    this.#subscriptionListeners.clear();
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    const client = this.#client;
    this.#client = undefined;
    if (client !== undefined) await client.end().catch(() => {});
  }

  #subscriptionsChanged(id: string | undefined): void {
    for (const listener of [...this.#subscriptionListeners]) {
      try {
        listener(id);
      } catch (err) {
        process.emitWarning(`a subscription listener threw: ${String(err)}`);
      }
    }
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
      if (message.payload === undefined) return;
      if (message.channel === this.#subscriptionChannel) {
        const [instance, id] = message.payload.split(' ');
        if (instance === this.instanceId || id === undefined) return;
        this.#subscriptionsChanged(Buffer.from(id, 'base64url').toString('utf8'));
        return;
      }
      if (message.channel !== this.#channel) return;
      const [instance, kind, id] = message.payload.split(' ');
      if (instance === this.instanceId || id === undefined || (kind !== 'w' && kind !== 'r')) return;
      this.dispatch(kind, id);
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.#channel}"; LISTEN "${this.#subscriptionChannel}"`);
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
          this.#subscriptionsChanged(undefined);
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
