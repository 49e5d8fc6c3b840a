import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ReadResult, Storage } from '@streamkeep/storage';
import { type Logger, pino } from 'pino';
import { HttpError, problemFor } from './error-status.js';
import { AdmissionQueue, admitRequest, type Release } from './http/admission.js';
import { PROTOCOL_REQUEST_HEADERS, PROTOCOL_RESPONSE_HEADERS } from './http/headers.js';
import { LiveReadLimit, requestHeadBytes, StreamCounter } from './http/limits.js';
import type { LiveWaiter } from './http/live.js';
import { isReservedName, parseStreamNameCached } from './http/names.js';
import { baseHeaderFactory, setBaseHeaders, writeHead } from './http/respond.js';
import { SharedReads } from './http/shared-read.js';
import { StartupWait } from './http/startup.js';
import { type AppConfig, type AppOptions, resolveAppConfig } from './options.js';
import { handleDelete } from './routes/delete.js';
import { handleGet } from './routes/get.js';
import { handleHead } from './routes/head.js';
import { handlePost } from './routes/post.js';
import { handlePut } from './routes/put.js';

export type { AppConfig, AppOptions } from './options.js';
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
} from './options.js';

/** What a route gets for one request. */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly storage: Storage;
  readonly config: AppConfig;
  readonly logger: Logger;
  /** The decoded stream name. */
  readonly name: string;
  /** The request path and query, for problem documents. */
  readonly instance: string;
  readonly query: URLSearchParams;
  /**
   * Registers a live request so shutdown can end it; returns the deregistration.
   *
   * @throws HttpError `TOO_MANY_LIVE_READS` (503) when `maxLiveReads` are already open.
   */
  trackLive(waiter: LiveWaiter): () => void;
  /**
   * Takes a storage slot (see {@link AppOptions.maxInFlight}), at once or after queueing; returns its release, which
   * is idempotent.
   *
   * @throws HttpError `OVERLOADED` (503) when shed; `REQUEST_ABORTED` when the client leaves the queue.
   */
  admit(): Release | Promise<Release>;
  /** The stream-count limit: reserve before creating, report deletes. */
  readonly streams: StreamCounter;
  /**
   * Reads up to `maxReadBytes` of this request's stream at `offset`, sharing a read of the same stream and offset
   * that other requests started after tick `notBefore` (see {@link SharedReads}). The result is shared: read-only.
   */
  read(offset: string, notBefore: number): Promise<ReadResult>;
}

/** The {@link RequestContext} of one request; the query string is parsed only if a route asks for it. */
class Context implements RequestContext {
  private parsedQuery: URLSearchParams | undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly storage: Storage,
    readonly config: AppConfig,
    readonly logger: Logger,
    readonly name: string,
    readonly instance: string,
    private readonly rawQuery: string,
    private readonly track: (waiter: LiveWaiter, req: IncomingMessage) => () => void,
    private readonly admission: AdmissionQueue,
    readonly streams: StreamCounter,
    private readonly reads: SharedReads,
  ) {}

  read(offset: string, notBefore: number): Promise<ReadResult> {
    return this.reads.read(this.name, offset, this.config.maxReadBytes, notBefore);
  }

  get query(): URLSearchParams {
    this.parsedQuery ??= new URLSearchParams(this.rawQuery);
    return this.parsedQuery;
  }

  trackLive(waiter: LiveWaiter): () => void {
    return this.track(waiter, this.req);
  }

  admit(): Release | Promise<Release> {
    return admitRequest(this.admission, this.res);
  }
}

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
}

const ALLOW_METHODS = 'GET, HEAD, PUT, POST, DELETE, OPTIONS';
const ALLOW_HEADERS = PROTOCOL_REQUEST_HEADERS.join(', ');
const EXPOSE_HEADERS = PROTOCOL_RESPONSE_HEADERS.join(', ');

/** Sends a problem document for `err` (or just ends the response if streaming already began). */
export function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  err: unknown,
  instance: string,
  logger: Logger,
): void {
  const p = problemFor(err, instance);
  if (p.serverFault) logger.error({ err, instance, method: req.method }, 'request failed');
  if (res.headersSent) {
    // Mid-stream failure: the status line is gone, so the only honest signal left is cutting the connection.
    res.destroy();
    return;
  }
  const body = req.method === 'HEAD' ? undefined : JSON.stringify(p.problem);
  writeHead(res, p.status, {
    ...p.headers,
    'Content-Type': 'application/problem+json',
    'Cache-Control': 'no-store',
    ...(body === undefined ? {} : { 'Content-Length': Buffer.byteLength(body) }),
  });
  res.end(body);
  if (p.headers.Connection === 'close' && !req.complete) {
    // The body was refused part-way (413): stop reading it, but let the response reach the client first.
    res.once('finish', () => req.socket?.end());
  }
}

/**
 * Creates the Durable Streams request handler over a {@link Storage}: mount it in `node:http`
 * (`createServer(app)`), Express or Fastify. The handler streams long-poll and SSE responses without buffering.
 */
export function createApp(options: AppOptions): StreamkeepApp {
  const config = resolveAppConfig(options);
  const logger = options.logger ?? pino({ level: 'silent' });
  const baseHeaders = baseHeaderFactory(config.corsOrigins, EXPOSE_HEADERS);
  const streamPrefix = config.basePath === '/' ? '/' : `${config.basePath}/`;
  let storage: Storage | undefined;
  let streams: StreamCounter | undefined;
  let reads: SharedReads | undefined;
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
      streams = new StreamCounter(s, config.maxStreams);
      reads = new SharedReads(s);
      logger.debug({ capabilities: s.capabilities }, 'storage ready');
      starting.settle();
    },
    (err: unknown) => {
      storageError = err;
      logger.error({ err }, 'storage failed to open');
      starting.settle();
    },
  );

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

  const logRequests = logger.isLevelEnabled('debug');
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (logRequests) {
      const url = req.url;
      const started = performance.now();
      res.once('close', () => {
        logger.debug(
          {
            method: req.method,
            url,
            status: res.statusCode,
            ms: Math.round((performance.now() - started) * 10) / 10,
            aborted: !res.writableFinished,
          },
          'request',
        );
      });
    }
    serve(req, res);
  };

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
    res.once('close', requestDone);
    let name: string;
    try {
      name = parseStreamNameCached(path.slice(streamPrefix.length));
      if (isReservedName(name)) {
        throw new HttpError('ROUTE_NOT_FOUND', 'the __ds subscription API is not available on this server');
      }
    } catch (err) {
      sendError(req, res, err, instance, logger);
      return;
    }
    const ctx = new Context(
      req,
      res,
      storage,
      config,
      logger,
      name,
      instance,
      q === -1 ? '' : url.slice(q + 1),
      trackLive,
      admission,
      streams!,
      reads!,
    );
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
    route(ctx).catch((err: unknown) => sendError(req, res, err, instance, logger));
  };

  const app = handler as StreamkeepApp;
  Object.defineProperties(app, {
    ready: { get: () => storage !== undefined && !shuttingDown },
    storage: { get: () => storage },
    load: {
      get: () => ({
        inFlight: admission.inFlight,
        queued: admission.queued + starting.waiting,
        liveReads: live.size,
        shed: admission.shed,
      }),
    },
  });
  (app as { shutdown: StreamkeepApp['shutdown'] }).shutdown = async (graceMs = 10_000) => {
    shuttingDown = true;
    starting.settle();
    for (const w of live) w.end('shutdown');
    if (inFlight === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, graceMs);
      idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  };
  return app;
}
