import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ReadResult, Storage } from '@streamkeep/storage';
import { type Logger, pino } from 'pino';
import { HttpError, problemFor } from './error-status.js';
import { type CursorPolicy, DEFAULT_CURSOR_POLICY } from './http/cursor.js';
import { PROTOCOL_REQUEST_HEADERS, PROTOCOL_RESPONSE_HEADERS } from './http/headers.js';
import { Admission, requestHeadBytes, StreamCounter } from './http/limits.js';
import type { LiveWaiter } from './http/live.js';
import { isReservedName, parseStreamNameCached } from './http/names.js';
import { baseHeaderFactory, setBaseHeaders, writeHead } from './http/respond.js';
import { SharedReads } from './http/shared-read.js';
import { handleDelete } from './routes/delete.js';
import { handleGet } from './routes/get.js';
import { handleHead } from './routes/head.js';
import { handlePost } from './routes/post.js';
import { handlePut } from './routes/put.js';

/** Options of {@link createApp}. Every field but `storage` has a default. */
export interface AppOptions {
  /** The backend, or a promise of it: until it resolves, `/readyz` and stream routes answer 503. */
  readonly storage: Storage | Promise<Storage>;
  /** Where streams live: `{basePath}/{name}`. @default '/v1/stream' */
  readonly basePath?: string | undefined;
  /** How long a long-poll waits for data before answering 204. @default 30000 */
  readonly longPollTimeoutMs?: number | undefined;
  /** Largest request body; larger bodies are refused with 413 while they stream in. @default 10 MiB */
  readonly maxRequestBodyBytes?: number | undefined;
  /** Largest catch-up response (and SSE data event) in payload bytes; longer reads are cut into chunks. @default 1 MiB */
  readonly maxReadBytes?: number | undefined;
  /**
   * Largest request head: the request line plus every header as `Name: value\r\n`, in bytes; larger ones get 431.
   * (`startServer` also sets Node's own parser limit to this.) @default 16 KiB
   */
  readonly maxHeaderBytes?: number | undefined;
  /** Most streams the server holds; creating one more gets 507 (`undefined` = no limit). @default 100000 */
  readonly maxStreams?: number | undefined;
  /** Most long-poll and SSE requests open at once; one more gets 503 with `Retry-After`. @default 1000 */
  readonly maxLiveReads?: number | undefined;
  /**
   * Most long-poll and SSE requests one client address may hold open; one more gets 429 with `Retry-After`. Behind a
   * proxy every client has the proxy's address, so leave it off there and limit per client in the proxy.
   * @default undefined (no per-client limit)
   */
  readonly maxLiveReadsPerClient?: number | undefined;
  /**
   * Most requests inside their storage calls at once (taken after the body has arrived; live reads give it back while
   * they wait); one more gets 503 with `Retry-After`. @default 64
   */
  readonly maxInFlight?: number | undefined;
  /** SSE keep-alive comment after this long without output. @default 15000 */
  readonly sseKeepAliveMs?: number | undefined;
  /** SSE connections are closed cleanly after this long so that clients reconnect (§5.8: about 60 s). @default 60000 */
  readonly sseReconnectMs?: number | undefined;
  /** Allowed CORS origins: `'*'` or a list of exact origins. @default '*' */
  readonly corsOrigins?: '*' | readonly string[] | undefined;
  /** Gzip GET bodies for clients that accept it. @default true */
  readonly compression?: boolean | undefined;
  /** Smallest body worth compressing. @default 1024 */
  readonly compressionMinBytes?: number | undefined;
  /** `Cache-Control` of catch-up and long-poll 200 responses. @default 'public, max-age=60, stale-while-revalidate=300' */
  readonly readCacheControl?: string | undefined;
  /** Cursor interval and epoch (§10.1). */
  readonly cursor?: CursorPolicy | undefined;
  /** Absolute origin used in `Location` (e.g. `https://streams.example.com`); default: the request's `Host`. */
  readonly publicOrigin?: string | undefined;
  /** Structured logger. @default a silent pino logger */
  readonly logger?: Logger | undefined;
}

/** The resolved options shared by the routes. */
export interface AppConfig {
  readonly basePath: string;
  readonly longPollTimeoutMs: number;
  readonly maxRequestBodyBytes: number;
  readonly maxReadBytes: number;
  readonly maxHeaderBytes: number;
  readonly maxStreams: number | undefined;
  readonly maxLiveReads: number;
  readonly maxLiveReadsPerClient: number | undefined;
  readonly maxInFlight: number;
  readonly sseKeepAliveMs: number;
  readonly sseReconnectMs: number;
  readonly corsOrigins: '*' | readonly string[];
  readonly compression: boolean;
  readonly compressionMinBytes: number;
  readonly readCacheControl: string;
  readonly cursor: CursorPolicy;
  readonly publicOrigin: string | undefined;
}

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
   * Takes a storage slot (see {@link AppOptions.maxInFlight}); returns its release, which is idempotent.
   *
   * @throws HttpError `OVERLOADED` (503).
   */
  admit(): () => void;
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
    readonly admit: () => () => void,
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
}

/** A Node request listener serving the Durable Streams protocol, plus lifecycle controls. */
export interface StreamkeepApp {
  (req: IncomingMessage, res: ServerResponse): void;
  /** True once storage is open and until shutdown begins. */
  readonly ready: boolean;
  /** The storage, once open. */
  readonly storage: Storage | undefined;
  /**
   * Graceful shutdown: `/readyz` turns 503, new stream requests are refused with 503, long-polls answer 204 at once,
   * SSE streams end after their current event, and the promise resolves when in-flight requests have finished (or
   * after `graceMs`). Does not close the storage: its owner does, after this resolves.
   */
  shutdown(graceMs?: number): Promise<void>;
}

export const DEFAULT_BASE_PATH = '/v1/stream';
export const DEFAULT_LONG_POLL_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_REQUEST_BODY_BYTES = 10 * 1024 * 1024;
export const DEFAULT_MAX_READ_BYTES = 1024 * 1024;
export const DEFAULT_READ_CACHE_CONTROL = 'public, max-age=60, stale-while-revalidate=300';
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
export const DEFAULT_MAX_STREAMS = 100_000;
export const DEFAULT_MAX_LIVE_READS = 1_000;
export const DEFAULT_MAX_IN_FLIGHT = 64;

const ALLOW_METHODS = 'GET, HEAD, PUT, POST, DELETE, OPTIONS';
const ALLOW_HEADERS = PROTOCOL_REQUEST_HEADERS.join(', ');
const EXPOSE_HEADERS = PROTOCOL_RESPONSE_HEADERS.join(', ');

function normalizeBasePath(p: string): string {
  let s = p.trim();
  if (!s.startsWith('/')) s = `/${s}`;
  while (s.length > 1 && s.endsWith('/')) s = s.slice(0, -1);
  return s;
}

function positive(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v >= 0)) throw new RangeError(`${name} must be a non-negative number`);
  return v;
}

/** Resolves {@link AppOptions} into the config the routes read. */
export function resolveAppConfig(options: Omit<AppOptions, 'storage' | 'logger'>): AppConfig {
  return {
    basePath: normalizeBasePath(options.basePath ?? DEFAULT_BASE_PATH),
    longPollTimeoutMs: positive('longPollTimeoutMs', options.longPollTimeoutMs, DEFAULT_LONG_POLL_TIMEOUT_MS),
    maxRequestBodyBytes: positive(
      'maxRequestBodyBytes',
      options.maxRequestBodyBytes,
      DEFAULT_MAX_REQUEST_BODY_BYTES,
    ),
    maxReadBytes: Math.max(1, positive('maxReadBytes', options.maxReadBytes, DEFAULT_MAX_READ_BYTES)),
    maxHeaderBytes: positive('maxHeaderBytes', options.maxHeaderBytes, DEFAULT_MAX_HEADER_BYTES),
    maxStreams:
      'maxStreams' in options && options.maxStreams === undefined
        ? undefined
        : positive('maxStreams', options.maxStreams, DEFAULT_MAX_STREAMS),
    maxLiveReads: positive('maxLiveReads', options.maxLiveReads, DEFAULT_MAX_LIVE_READS),
    maxLiveReadsPerClient:
      options.maxLiveReadsPerClient === undefined
        ? undefined
        : positive('maxLiveReadsPerClient', options.maxLiveReadsPerClient, 0),
    maxInFlight: Math.max(1, positive('maxInFlight', options.maxInFlight, DEFAULT_MAX_IN_FLIGHT)),
    sseKeepAliveMs: Math.max(10, positive('sseKeepAliveMs', options.sseKeepAliveMs, 15_000)),
    sseReconnectMs: positive('sseReconnectMs', options.sseReconnectMs, 60_000),
    corsOrigins: options.corsOrigins ?? '*',
    compression: options.compression ?? true,
    compressionMinBytes: positive('compressionMinBytes', options.compressionMinBytes, 1024),
    readCacheControl: options.readCacheControl ?? DEFAULT_READ_CACHE_CONTROL,
    cursor: options.cursor ?? DEFAULT_CURSOR_POLICY,
    publicOrigin: options.publicOrigin?.replace(/\/+$/, ''),
  };
}

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
  const admission = new Admission(config.maxInFlight);
  const admit = (): (() => void) => admission.admit();
  let storageError: unknown;
  let shuttingDown = false;
  const live = new Set<LiveWaiter>();
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];

  Promise.resolve(options.storage).then(
    (s) => {
      storage = s;
      streams = new StreamCounter(s, config.maxStreams);
      reads = new SharedReads(s);
      logger.debug({ capabilities: s.capabilities }, 'storage ready');
    },
    (err: unknown) => {
      storageError = err;
      logger.error({ err }, 'storage failed to open');
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

  /** Open live reads per client address (only kept when there is a per-client limit). */
  const liveByClient = new Map<string, number>();
  const perClient = config.maxLiveReadsPerClient;
  const trackLive = (waiter: LiveWaiter, req: IncomingMessage): (() => void) => {
    if (live.size >= config.maxLiveReads) {
      throw new HttpError(
        'TOO_MANY_LIVE_READS',
        `${config.maxLiveReads} live reads are open; retry shortly`,
        {
          'Retry-After': '1',
        },
      );
    }
    // The peer address is looked up (a system call) only when there is a per-client limit to keep.
    const client = perClient === undefined ? '' : (req.socket.remoteAddress ?? '');
    if (perClient !== undefined) {
      const n = liveByClient.get(client) ?? 0;
      if (n >= perClient) {
        throw new HttpError('TOO_MANY_CLIENT_LIVE_READS', `this client has ${perClient} live reads open`, {
          'Retry-After': '1',
        });
      }
      liveByClient.set(client, n + 1);
    }
    if (shuttingDown) waiter.end('shutdown');
    live.add(waiter);
    let tracked = true;
    return () => {
      if (!tracked) return;
      tracked = false;
      live.delete(waiter);
      if (perClient === undefined) return;
      const n = (liveByClient.get(client) ?? 1) - 1;
      if (n > 0) liveByClient.set(client, n);
      else liveByClient.delete(client);
    };
  };

  const logRequests = logger.isLevelEnabled('debug');
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '/';
    if (logRequests) {
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
        status: ready ? 'ready' : shuttingDown ? 'shutting-down' : 'starting',
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
      const why = storageError === undefined ? 'storage is not open yet' : 'storage failed to open';
      sendError(req, res, new HttpError('SERVICE_UNAVAILABLE', why), instance, logger);
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
      admit,
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
  });
  (app as { shutdown: StreamkeepApp['shutdown'] }).shutdown = async (graceMs = 10_000) => {
    shuttingDown = true;
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
