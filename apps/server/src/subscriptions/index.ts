import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Storage, StorageError, supportsSubscriptions } from '@streamkeep/storage';
import type { Logger } from 'pino';
import { sendSubscriptionError } from './http.js';
import { loadSubscriptionSecrets } from './keys.js';
import { resolveSubscriptionSettings, type SubscriptionOptions } from './options.js';
import { matchSubscriptionRoute } from './routes.js';
import { SubscriptionService } from './service.js';

export type { SubscriptionOptions } from './options.js';
export { SubscriptionService } from './service.js';

/** The segment that starts the reserved subscription API under the base path (protocol §6). */
const RESERVED = '__ds';

/**
 * The subscription API of one app: what `app.ts` wires in with a few lines — route `{base}/__ds/…` here, and after a
 * successful stream create, append or delete call {@link SubscriptionApi.after} (only while {@link watching}: a store
 * without subscriptions costs the hot path one property read).
 */
export class SubscriptionApi {
  private service: SubscriptionService | undefined;
  private starting: Promise<SubscriptionService | undefined> | undefined;
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

  /** Starts the service over an opened storage, when it declares the `subscriptions` capability. */
  attach(storage: Storage): Promise<SubscriptionService | undefined> {
    if (!supportsSubscriptions(storage)) return Promise.resolve(undefined);
    this.starting = (async () => {
      const secrets = await loadSubscriptionSecrets(storage, this.settings.dataDir, this.logger);
      const service = new SubscriptionService(storage, secrets, this.settings, this.basePath, this.logger);
      await service.start();
      if (this.listening !== undefined && !this.heard) service.lastOrigin = this.listening;
      this.service = service;
      return service;
    })();
    this.starting.catch((err: unknown) => this.logger.error({ err }, 'subscriptions failed to start'));
    return this.starting;
  }

  /** True for a path (relative to the base path, still encoded) of the reserved API. */
  static matches(rest: string): boolean {
    return rest.startsWith(RESERVED) && (rest.length === RESERVED.length || rest[RESERVED.length] === '/');
  }

  /** Serves a `{base}/__ds/<rest>` request: 501 when the storage has no subscriptions. */
  handle(req: IncomingMessage, res: ServerResponse, rest: string, instance: string): void {
    const served = (async () => {
      const route = matchSubscriptionRoute(rest.slice(RESERVED.length + 1), req.method ?? '');
      const service = await this.starting;
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
    served.catch((err: unknown) => sendSubscriptionError(req, res, err, instance, this.logger));
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
    await this.service?.close();
  }
}
