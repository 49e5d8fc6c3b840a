import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type Storage,
  StorageError,
  type SubscriptionStore,
  supportsSubscriptions,
} from '@streamkeep/storage';
import type { Logger } from 'pino';
import { resolveSubscriptionSettings, type SubscriptionOptions } from './options.js';
import type { SubscriptionService } from './service.js';

export type { SubscriptionOptions } from './options.js';
export type { SubscriptionService } from './service.js';

/** The segment that starts the reserved subscription API under the base path (protocol §6). */
const RESERVED = '__ds';

/**
 * The subscription API of one app: what `app.ts` wires in with a few lines — route `{base}/__ds/…` here, and after a
 * successful stream create, append or delete call {@link SubscriptionApi.after} (only while {@link watching}: a store
 * without subscriptions costs the hot path one property read).
 *
 * The service (and its code: webhook delivery, signing keys, `https`) is loaded and started only when needed: at once
 * over a store that announces changes (shared by instances) or holds subscriptions, else by the first `__ds` request
 * or when a listing every `refreshIntervalMs` finds a subscription (made through another app on the same store), as
 * the service's own refresh would. Until then the server neither loads nor creates the signing key.
 */
export class SubscriptionApi {
  private service: SubscriptionService | undefined;
  /** The store, once attached and declaring the `subscriptions` capability. */
  private store: (Storage & SubscriptionStore) | undefined;
  /** Attached: resolves once it is known whether the service starts now. */
  private attached: Promise<unknown> | undefined;
  private starting: Promise<SubscriptionService> | undefined;
  /** While the service is not started: the periodic look for a subscription made elsewhere. */
  private probe: ReturnType<typeof setInterval> | undefined;
  private closed = false;
  private listening: string | undefined;
  /** A `__ds` request has named the origin clients use. */
  private heard = false;
  private readonly settings;

  constructor(
    options: SubscriptionOptions | undefined,
    private readonly basePath: string,
    private readonly logger: Logger,
  ) {
    this.settings = resolveSubscriptionSettings(options);
  }

  /** True while any subscription may exist on the storage: then the stream routes report their changes. */
  get watching(): boolean {
    return this.service?.watching === true;
  }

  /** The running service, once started (tests). */
  get current(): SubscriptionService | undefined {
    return this.service;
  }

  /**
   * The origin the server listens at: the origin of callback URLs until a `__ds` request names one (its `Host`), so
   * that a restarted instance, or one of a cluster that serves no `__ds` request, sends callbacks that reach it.
   */
  listeningAt(origin: string): void {
    this.listening = origin;
    if (this.service !== undefined && !this.heard) this.service.lastOrigin = origin;
  }

  /**
   * Takes an opened storage: when it declares the `subscriptions` capability, starts the service now if it may have
   * work (a shared store, or any subscription kept), else at the first `__ds` request. Resolves with the service if
   * it started.
   */
  attach(storage: Storage): Promise<SubscriptionService | undefined> {
    if (!supportsSubscriptions(storage)) return Promise.resolve(undefined);
    this.store = storage;
    const now =
      storage.onSubscriptionsChanged !== undefined
        ? Promise.resolve(true)
        : storage.listSubscriptions({ limit: 1 }).then((found) => found.length > 0);
    const attached = now.then((start) => {
      if (start) return this.start();
      this.probe = setInterval(() => void this.look(storage), this.settings.refreshIntervalMs);
      this.probe.unref();
      return undefined;
    });
    this.attached = attached.catch(() => {});
    attached.catch((err: unknown) => this.logger.error({ err }, 'subscriptions failed to start'));
    return attached;
  }

  private async look(storage: SubscriptionStore): Promise<void> {
    try {
      const found = await storage.listSubscriptions({ limit: 1 });
      if (found.length > 0 && !this.closed) await this.start();
    } catch (err) {
      this.logger.error({ err }, 'subscriptions failed to start');
    }
  }

  /** Loads and starts the service, once. */
  private start(): Promise<SubscriptionService> {
    const store = this.store;
    if (store === undefined) return Promise.reject(new Error('no subscription store attached'));
    clearInterval(this.probe);
    this.starting ??= (async () => {
      const [{ loadSubscriptionSecrets }, { SubscriptionService }] = await Promise.all([
        import('./keys.js'),
        import('./service.js'),
      ]);
      const secrets = await loadSubscriptionSecrets(store, this.settings.dataDir, this.logger);
      const service = new SubscriptionService(store, secrets, this.settings, this.basePath, this.logger);
      await service.start();
      if (this.listening !== undefined && !this.heard) service.lastOrigin = this.listening;
      this.service = service;
      return service;
    })();
    return this.starting;
  }

  /** True for a path (relative to the base path, still encoded) of the reserved API. */
  static matches(rest: string): boolean {
    return rest.startsWith(RESERVED) && (rest.length === RESERVED.length || rest[RESERVED.length] === '/');
  }

  /** Serves a `{base}/__ds/<rest>` request: 501 when the storage has no subscriptions. */
  handle(req: IncomingMessage, res: ServerResponse, rest: string, instance: string): void {
    const served = (async () => {
      const { matchSubscriptionRoute } = await import('./routes.js');
      const route = matchSubscriptionRoute(rest.slice(RESERVED.length + 1), req.method ?? '');
      await this.attached;
      const service = this.store === undefined ? undefined : await this.start();
      if (service === undefined) {
        throw new StorageError(
          'NOT_SUPPORTED',
          'this server’s storage does not support subscriptions (__ds)',
        );
      }
      let origin = this.settings.publicOrigin;
      if (origin === undefined) {
        const secure = (req.socket as { encrypted?: boolean }).encrypted === true;
        origin = `${secure ? 'https' : 'http'}://${req.headers.host ?? 'localhost'}`;
        service.lastOrigin = origin;
        this.heard = true;
      }
      await route(service, req, res, origin);
    })();
    served.catch(async (err: unknown) => {
      const { sendSubscriptionError } = await import('./http.js');
      sendSubscriptionError(req, res, err, instance, this.logger);
    });
  }

  /**
   * After a stream request finished: a create (`PUT` → 201) links and wakes, an append (`POST` → 2xx) wakes, a
   * `DELETE` (204) unlinks. Never awaited by the request: the work is queued.
   */
  after(done: Promise<void>, method: string | undefined, name: string, res: ServerResponse): void {
    const service = this.service;
    if (service === undefined) return;
    done.then(
      () => {
        const status = res.statusCode;
        if (method === 'POST' && status >= 200 && status < 300) service.appended(name);
        else if (method === 'PUT' && status === 201) service.created(name);
        else if (method === 'DELETE' && status === 204) service.deleted(name);
      },
      () => {},
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.probe);
    await this.service?.close();
  }
}
