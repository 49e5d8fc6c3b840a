import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Storage } from '@streamkeep/storage';
import { pino } from 'pino';
import { type AppServices, Context, type RequestContext } from './context.js';
import { HttpError } from './error-status.js';
import { AdmissionQueue } from './http/admission.js';
import { PROTOCOL_REQUEST_HEADERS, PROTOCOL_RESPONSE_HEADERS } from './http/headers.js';
import { LiveReadLimit, requestHeadBytes, StreamCounter } from './http/limits.js';
import type { LiveWaiter } from './http/live.js';
import { isReservedName, parseStreamNameCached } from './http/names.js';
import { sendError } from './http/problem-response.js';
import { requestIdOf, requestLogger } from './http/request-log.js';
import { baseHeaderFactory, setBaseHeaders, setRequestId, writeHead } from './http/respond.js';
import { SharedReads } from './http/shared-read.js';
import { StartupWait } from './http/startup.js';
import type { RouteLabel } from './metrics.js';
import { handleDelete } from './routes/delete.js';
import { handleGet } from './routes/get.js';
import { handleHead } from './routes/head.js';
import { handlePost } from './routes/post.js';
import { handlePut } from './routes/put.js';
import { type AppOptions, resolveAppConfig } from './settings/app-options.js';
import { SubscriptionApi, type SubscriptionOptions } from './subscriptions/index.js';

/** When a response's request started, for the request-duration histogram. */
const STARTED = Symbol('started');
/** Set on a stream request's response while it counts towards the in-flight figure shutdown waits for. */
const IN_FLIGHT = Symbol('inFlight');
type TrackedResponse = ServerResponse & { [STARTED]?: number; [IN_FLIGHT]?: boolean };

export type { RequestContext } from './context.js';
export { sendError } from './http/problem-response.js';
export type { AppConfig, AppOptions } from './settings/app-options.js';
export {
  DEFAULT_BASE_PATH,
  DEFAULT_LONG_POLL_TIMEOUT_MS,
  DEFAULT_MAX_HEADER_BYTES,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_LIVE_READS,
  DEFAULT_MAX_QUEUED,
  DEFAULT_MAX_READ_BYTES,
  DEFAULT_MAX_REQUEST_BODY_BYTES,
  DEFAULT_MAX_STREAMS,
  DEFAULT_QUEUE_INTERVAL_MS,
  DEFAULT_QUEUE_TARGET_MS,
  DEFAULT_READ_CACHE_CONTROL,
  DEFAULT_STARTUP_WAIT_MS,
  resolveAppConfig,
} from './settings/app-options.js';

/** A Node request listener serving the Durable Streams protocol, plus lifecycle controls. */
export interface StreamkeepApp {
  (req: IncomingMessage, res: ServerResponse): void;
  /** True once storage is open and until shutdown begins. */
  readonly ready: boolean;
  /** The storage, once open. */
  readonly storage: Storage | undefined;
  /** Load now: requests inside storage, queued for it, live reads open, requests shed so far (see `maxQueued`). */
  readonly load: { inFlight: number; queued: number; liveReads: number; shed: number };
  /**
   * Graceful shutdown: `/readyz` turns 503, new stream requests are refused with 503, long-polls answer 204 at once,
   * SSE streams end after their current event, and the promise resolves when in-flight requests have finished (or
   * after `graceMs`). Does not close the storage: its owner does, after this resolves.
   */
  shutdown(graceMs?: number): Promise<void>;
  /**
   * Tells the handler the origin it is reachable at (e.g. `http://127.0.0.1:4437`), for webhook callback URLs sent
   * before any `__ds` request has named one (after a restart, or on an instance of a cluster that serves none).
   * `publicOrigin`, when set, takes precedence; `startServer` calls this once listening.
   */
  listeningAt(origin: string): void;
}

const ALLOW_METHODS = 'GET, HEAD, PUT, POST, DELETE, OPTIONS';
const ALLOW_HEADERS = PROTOCOL_REQUEST_HEADERS.join(', ');
const EXPOSE_HEADERS = PROTOCOL_RESPONSE_HEADERS.join(', ');

/**
 * Creates the Durable Streams request handler over a {@link Storage}: mount it in `node:http`
 * (`createServer(app)`), Express or Fastify. The handler streams long-poll and SSE responses without buffering.
 */
export function createApp(options: AppOptions & { subscriptions?: SubscriptionOptions }): StreamkeepApp {
  const config = resolveAppConfig(options);
  const logger = options.logger ?? pino({ level: 'silent' });
  const subscriptions = new SubscriptionApi(
    { publicOrigin: config.publicOrigin, ...options.subscriptions },
    config.basePath,
    logger,
  );
  const metrics = options.metrics;
  const baseHeaders = baseHeaderFactory(config.corsOrigins, EXPOSE_HEADERS);
  const streamPrefix = config.basePath === '/' ? '/' : `${config.basePath}/`;
  let storage: Storage | undefined;
  let services: AppServices | undefined;
  const admission = new AdmissionQueue({
    concurrency: config.maxInFlight,
    maxQueued: config.maxQueued,
    targetMs: config.queueTargetMs,
    intervalMs: config.queueIntervalMs,
  });
  const starting = new StartupWait(config.startupWaitMs, config.maxQueued);
  let storageError: unknown;
  let shuttingDown = false;
  const liveReads = new LiveReadLimit<LiveWaiter>(config.maxLiveReads, config.maxLiveReadsPerClient);
  const live = liveReads.open;
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];

  Promise.resolve(options.storage).then(
    (s) => {
      storage = s;
      services = {
        storage: s,
        config,
        logger,
        metrics,
        admission,
        streams: new StreamCounter(s, config.maxStreams),
        reads: new SharedReads(s),
        trackLive,
      };
      logger.debug({ capabilities: s.capabilities }, 'storage ready');
      void subscriptions.attach(s);
      starting.settle();
    },
    (err: unknown) => {
      storageError = err;
      logger.error({ err }, 'storage failed to open');
      starting.settle();
    },
  );

  const load = (): StreamkeepApp['load'] => ({
    inFlight: admission.inFlight,
    queued: admission.queued + starting.waiting,
    liveReads: live.size,
    shed: admission.shed,
  });

  const requestDone = (): void => {
    inFlight--;
    if (inFlight === 0 && idleWaiters.length > 0) {
      const w = idleWaiters;
      idleWaiters = [];
      for (const f of w) f();
    }
  };

  const trackLive = (waiter: LiveWaiter, req: IncomingMessage): (() => void) => {
    const untrack = liveReads.add(waiter, req);
    if (shuttingDown) waiter.end('shutdown');
    return untrack;
  };

  const logRequest = options.logRequests ? requestLogger(logger) : undefined;
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    // Every response carries the request's id: the client's own `X-Request-Id` when valid, so that a proxy's logs,
    // the client's and ours line up; a fresh one only when something will log it.
    if (logRequest !== undefined) {
      const id = requestIdOf(req);
      setRequestId(res, id);
      logRequest(req, res, id);
    } else if (req.headers['x-request-id'] !== undefined) {
      setRequestId(res, requestIdOf(req));
    }
    if (metrics !== undefined) {
      (res as TrackedResponse)[STARTED] = performance.now();
      res.on('close', onResponseClose);
    }
    serve(req, res);
  };
  // One listener function shared by every response, registered with `on` (a response closes once; `once` would wrap
  // it in a fresh closure per request): it finds the request, its start, and whether it counts towards shutdown's
  // in-flight figure on `res`, so that a stream request adds no second listener.
  function onResponseClose(this: TrackedResponse): void {
    if (this[IN_FLIGHT] === true) requestDone();
    if (metrics === undefined) return;
    const req = this.req;
    metrics.request(
      routeOf(req, streamPrefix),
      req.method ?? '',
      this.statusCode,
      (performance.now() - (this[STARTED] ?? 0)) / 1000,
    );
  }

  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    // Security headers on every response, errors included (§12.7): no MIME sniffing of stream bytes, and an explicit
    // cross-origin resource policy. Stream contents are untrusted (§12.3) and a writer chooses their `Content-Type`,
    // so a sandboxing CSP keeps a stream created as `text/html` or `image/svg+xml` from running script on this origin
    // when a browser opens its URL directly; `fetch` and `EventSource` readers are unaffected.
    setBaseHeaders(res, baseHeaders(req));
    if (requestHeadBytes(req) > config.maxHeaderBytes) {
      const err = new HttpError(
        'HEADERS_TOO_LARGE',
        `the request line and headers exceed ${config.maxHeaderBytes} bytes`,
        { Connection: 'close' },
      );
      sendError(req, res, err, path.length > 256 ? `${path.slice(0, 256)}…` : url, logger);
      return;
    }

    if (req.method === 'OPTIONS') {
      // CORS preflight: every protocol request header is allowed, If-None-Match included (conformance 0.3.6).
      writeHead(res, 204, {
        'Access-Control-Allow-Methods': ALLOW_METHODS,
        'Access-Control-Allow-Headers': ALLOW_HEADERS,
        'Access-Control-Max-Age': '86400',
        'Content-Length': 0,
      });
      res.end();
      return;
    }
    if (path === '/healthz') {
      writeHead(res, 200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : 'ok');
      return;
    }
    if (path === '/metrics' && metrics !== undefined && (req.method === 'GET' || req.method === 'HEAD')) {
      metrics.text().then(
        (text) => {
          writeHead(res, 200, {
            'Content-Type': metrics.contentType,
            'Cache-Control': 'no-store',
            'Content-Length': Buffer.byteLength(text),
          });
          res.end(req.method === 'HEAD' ? undefined : text);
        },
        (err: unknown) => sendError(req, res, err, path, logger),
      );
      return;
    }
    if (path === '/readyz') {
      // Readiness also advertises what the backend can do, so operators and clients can see which optional
      // protocol features (forks, expiry, producers) this deployment refuses with 501.
      const ready = storage !== undefined && !shuttingDown;
      const body = JSON.stringify({
        status: ready
          ? 'ready'
          : shuttingDown
            ? 'shutting-down'
            : storageError === undefined
              ? 'starting'
              : 'failed',
        ...(storage === undefined ? {} : { capabilities: storage.capabilities }),
      });
      writeHead(res, ready ? 200 : 503, {
        'Content-Type': 'application/json',
        'Cache-Control': 'no-store',
        'Content-Length': Buffer.byteLength(body),
        ...(ready ? {} : { 'Retry-After': '1' }),
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }

    const instance = url;
    if (!path.startsWith(streamPrefix) || path.length === streamPrefix.length) {
      sendError(req, res, new HttpError('ROUTE_NOT_FOUND', `no route for ${path}`), instance, logger);
      return;
    }
    if (shuttingDown) {
      sendError(
        req,
        res,
        new HttpError('SERVICE_UNAVAILABLE', 'the server is shutting down', { Connection: 'close' }),
        instance,
        logger,
      );
      return;
    }
    if (storage === undefined) {
      if (storageError === undefined) {
        // Starting: wait for storage (bounded), then serve the request as if it had just arrived.
        starting.wait(res).then(
          () => serve(req, res),
          (err: unknown) => sendError(req, res, err, instance, logger),
        );
      } else {
        sendError(req, res, new HttpError('SERVICE_UNAVAILABLE', 'storage failed to open'), instance, logger);
      }
      return;
    }

    inFlight++;
    (res as TrackedResponse)[IN_FLIGHT] = true;
    if (metrics === undefined) res.on('close', onResponseClose);
    const rawName = path.slice(streamPrefix.length);
    // Subscriptions (§6–7): the reserved `__ds` API is routed before stream handling.
    if (SubscriptionApi.matches(rawName)) {
      subscriptions.handle(req, res, rawName, instance);
      return;
    }
    let name: string;
    try {
      name = parseStreamNameCached(rawName);
      if (isReservedName(name)) {
        throw new HttpError('ROUTE_NOT_FOUND', 'the __ds subscription API is not available on this server');
      }
    } catch (err) {
      sendError(req, res, err, instance, logger);
      return;
    }
    const ctx = new Context(req, res, services!, name, instance, q === -1 ? '' : url.slice(q + 1));
    let route: ((ctx: RequestContext) => Promise<void>) | undefined;
    switch (req.method) {
      case 'GET':
        route = handleGet;
        break;
      case 'HEAD':
        route = handleHead;
        break;
      case 'PUT':
        route = handlePut;
        break;
      case 'POST':
        route = handlePost;
        break;
      case 'DELETE':
        route = handleDelete;
        break;
      default:
        sendError(
          req,
          res,
          new HttpError('METHOD_NOT_ALLOWED', `method ${req.method} is not allowed`, {
            Allow: ALLOW_METHODS,
          }),
          instance,
          logger,
        );
        return;
    }
    const done = route(ctx);
    // Subscriptions: a create, append or delete wakes, links or unlinks — queued, never awaited by the request.
    if (subscriptions.watching) subscriptions.after(done, req.method, name, res);
    done.catch((err: unknown) => sendError(req, res, err, instance, logger));
  };

  const app = handler as StreamkeepApp;
  Object.defineProperties(app, {
    ready: { get: () => storage !== undefined && !shuttingDown },
    storage: { get: () => storage },
    load: { get: load },
  });
  metrics?.watch(() => ({ ...load(), storageOpen: storage !== undefined && !shuttingDown }));
  (app as { shutdown: StreamkeepApp['shutdown'] }).shutdown = async (graceMs = 10_000) => {
    shuttingDown = true;
    starting.settle();
    const subscriptionsClosed = subscriptions.close();
    for (const w of live) w.end('shutdown');
    if (inFlight === 0) return subscriptionsClosed;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, graceMs);
      idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    await subscriptionsClosed;
  };
  (app as { listeningAt: StreamkeepApp['listeningAt'] }).listeningAt = (origin) =>
    subscriptions.listeningAt(origin);
  return app;
}

/** The metrics route label of a request (never its stream name: label values must stay few). */
function routeOf(req: IncomingMessage, streamPrefix: string): RouteLabel {
  const url = req.url ?? '/';
  if (url.startsWith(streamPrefix)) {
    if (req.method !== 'GET') return 'stream';
    const q = url.indexOf('?');
    const query = q === -1 ? '' : url.slice(q);
    return query.includes('live=long-poll')
      ? 'stream_long_poll'
      : query.includes('live=sse')
        ? 'stream_sse'
        : 'stream';
  }
  if (req.method === 'OPTIONS') return 'preflight';
  const path = url.split('?', 1)[0];
  return path === '/healthz'
    ? 'healthz'
    : path === '/readyz'
      ? 'readyz'
      : path === '/metrics'
        ? 'metrics'
        : 'unknown';
}
