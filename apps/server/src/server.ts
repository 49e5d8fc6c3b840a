import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { Storage } from '@streamkeep/storage';
import type { QuarantinedStream } from '@streamkeep/storage-file';
import { type Logger, pino } from 'pino';
import { createApp, type StreamkeepApp } from './app.js';
import { ensureDataDir } from './data-dir.js';
import { HttpError, problemFor } from './error-status.js';
import type { ServerMetrics } from './metrics.js';
import type { ServerConfig } from './settings/table.js';
import { subscriptionOptionsFrom } from './subscriptions/options.js';

/** A listening server and the handle to stop it. */
export interface RunningServer {
  /** `http://host:port`. */
  readonly url: string;
  readonly server: Server;
  readonly app: StreamkeepApp;
  /** Resolves once storage is open; rejects if it cannot be opened. */
  readonly storage: Promise<Storage>;
  /** The metrics served at `/metrics` (unless `config.metrics` is off). */
  readonly metrics: ServerMetrics | undefined;
  /**
   * Graceful stop: see {@link StreamkeepApp.shutdown}; then closes connections and the storage, all within
   * `shutdownTimeoutMs`. Idempotent. Rejects, once everything is closed, when closing the storage failed (a file
   * backend's final checkpoint, say: nothing acknowledged is lost, the next start recovers it), so that the
   * process can exit non-zero; a close still running at the deadline is not waited for.
   */
  close(): Promise<void>;
}

/**
 * Opens the backend the configuration names, logging through `logger`: the file backend's recovery progress
 * ("recovering storage", at most every 2 s while a long open is under way), a warning per quarantined stream, and
 * for every backend one "storage open" summary line.
 */
export async function openStorage(
  config: ServerConfig,
  logger: Logger = pino({ level: 'silent' }),
  metrics?: ServerMetrics,
): Promise<Storage> {
  const limits = {
    ...(config.maxTotalBytes === undefined ? {} : { maxTotalBytes: config.maxTotalBytes }),
    ...(config.maxStreamBytes === undefined ? {} : { maxStreamBytes: config.maxStreamBytes }),
    // Commit-group figures for /metrics, from backends whose options take this observer (others ignore the key).
    ...(metrics === undefined ? {} : { onCommit: metrics.commit }),
  };
  const started = performance.now();
  const opened = (storage: Storage, fields: Record<string, unknown> = {}): Storage => {
    const durationMs = Math.round(performance.now() - started);
    metrics?.storageOpened(durationMs / 1000);
    logger.info(
      { storage: config.storage, ...fields, durationMs, capabilities: storage.capabilities },
      'storage open',
    );
    return storage;
  };
  // Loaded on demand, so a server loads only the backend it uses (and the postgres driver only when asked for).
  if (config.storage === 'memory') {
    const { MemoryStorage } = await import('@streamkeep/storage-memory');
    return opened(new MemoryStorage(limits));
  }
  if (config.storage === 'postgres') {
    if (config.postgresUrl === undefined) throw new RangeError('the postgres backend needs postgresUrl');
    const { PostgresStorage } = await import('@streamkeep/storage-postgres');
    const storage = await PostgresStorage.open({
      connectionString: config.postgresUrl,
      schema: config.postgresSchema,
      // A database that does not answer fails the open after this long instead of holding start-up forever.
      pool: { max: config.postgresPoolMax, connectionTimeoutMillis: config.postgresConnectTimeoutMs },
      ...limits,
    });
    return opened(storage);
  }
  const { FileStorage } = await import('@streamkeep/storage-file');
  const rootDir = resolve(config.dataDir);
  await ensureDataDir(rootDir);
  const warned = new Set<string>();
  const quarantined = (q: QuarantinedStream): void => {
    if (warned.has(q.dir)) return;
    warned.add(q.dir);
    logger.warn({ stream: q.name, path: q.dir, reason: q.reason }, 'stream quarantined: damaged, refused');
  };
  const storage = await FileStorage.open({
    rootDir,
    syncOnAppend: config.syncOnAppend,
    ...limits,
    onProgress: (p) => logger.info({ ...p, elapsedMs: Math.round(p.elapsedMs) }, 'recovering storage'),
    onQuarantine: quarantined,
  });
  const r = storage.recovery;
  // Streams found damaged at open are in the report too: warn about any the callback did not already name.
  for (const q of r.quarantined) quarantined(q);
  // The lists are capped: after a crash every stream may have had a torn tail.
  const few = <T>(list: readonly T[]): T[] => list.slice(0, 20);
  return opened(storage, {
    rootDir,
    streams: r.streams,
    messages: r.messages,
    logBytes: r.logBytes,
    tailsTruncated: r.truncated.length,
    ...(r.truncated.length === 0 ? {} : { truncated: few(r.truncated) }),
    redone: r.redone,
    quarantined: r.quarantined.length,
    ...(r.quarantined.length === 0
      ? {}
      : {
          quarantinedStreams: few(r.quarantined).map((q) => ({
            stream: q.name,
            path: q.dir,
            reason: q.reason,
          })),
        }),
    recoveryMs: Math.round(r.durationMs),
  });
}

/**
 * Binds the app to a port. The server listens before storage is open (`/readyz` answers 503 until it is, and stream
 * requests wait for it up to the request timeout), and has header, request and keep-alive timeouts so slow clients
 * cannot hold connections.
 */
export async function startServer(
  config: ServerConfig,
  options: { logger?: Logger; storage?: Storage | Promise<Storage>; metrics?: ServerMetrics } = {},
): Promise<RunningServer> {
  const logger = options.logger ?? pino({ level: 'silent' });
  // prom-client (and what it loads: https, tls, OpenTelemetry's API) is loaded only when metrics are on: 1.2 MB more
  // of resident heap makes V8 collect the old generation several times as often under a stream of large appends.
  const metrics = config.metrics
    ? (options.metrics ?? new (await import('./metrics.js')).ServerMetrics())
    : undefined;
  const storage = Promise.resolve(options.storage ?? openStorage(config, logger, metrics));
  // The app observes failures through its own handler; this keeps the rejection from being reported as unhandled.
  storage.catch(() => {});
  const app = createApp({
    storage,
    basePath: config.basePath,
    longPollTimeoutMs: config.longPollTimeoutMs,
    maxRequestBodyBytes: config.maxBodyBytes,
    maxReadBytes: config.maxReadBytes,
    maxHeaderBytes: config.maxHeaderBytes,
    maxStreams: config.maxStreams,
    maxLiveReads: config.maxLiveReads,
    maxLiveReadsPerClient: config.maxLiveReadsPerClient,
    maxInFlight: config.maxInFlight,
    maxQueued: config.maxQueued,
    queueTargetMs: config.queueTargetMs,
    // A request waiting for storage to open is bounded like one whose body is still arriving.
    startupWaitMs: config.requestTimeoutMs,
    sseKeepAliveMs: config.sseKeepAliveMs,
    sseReconnectMs: config.sseReconnectMs,
    corsOrigins: config.corsOrigins,
    publicOrigin: config.publicOrigin,
    compression: config.compression,
    logger,
    logRequests: config.logRequests,
    metrics,
    subscriptions: subscriptionOptionsFrom(config),
  });
  const server = createServer(
    {
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      keepAliveTimeout: config.keepAliveTimeoutMs,
      // Node's parser counts a little less than the app does (see requestHeadBytes), so at the same figure it only
      // catches what the app's exact check would refuse anyway, before such a head is ever buffered whole.
      maxHeaderSize: config.maxHeaderBytes,
      connectionsCheckingInterval: Math.min(2_000, config.headersTimeoutMs),
    },
    app,
  );
  // `Expect: 100-continue`: invite the body only when it can be accepted, so an oversized upload is refused with 413
  // before the client sends a byte of it.
  server.on('checkContinue', (req, res) => {
    const declared = Number(req.headers['content-length']);
    if (!(declared > config.maxBodyBytes)) res.writeContinue();
    app(req, res);
  });
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket) => {
    logger.debug({ err: err.message, code: err.code }, 'client error');
    if (socket.writable && !socket.destroyed) {
      const refusal =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new HttpError('REQUEST_TIMEOUT', 'the request did not arrive in time')
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? new HttpError('HEADERS_TOO_LARGE', 'the request line and headers are too large')
            : new HttpError('MALFORMED_REQUEST', 'the request is not valid HTTP/1.1');
      const { status, problem } = problemFor(refusal);
      // Node's own refusals (malformed requests, timeouts) carry the security headers too, and a problem document
      // when the request is known not to be a HEAD (whose response must not have a body): that is, when the bytes
      // the parser choked on still begin with the request line.
      const method = /^([A-Z]+) /.exec(err.rawPacket?.subarray(0, 16).toString('latin1') ?? '')?.[1];
      const body = method !== undefined && method !== 'HEAD' ? JSON.stringify(problem) : '';
      socket.end(
        `HTTP/1.1 ${status} ${problem.title}\r\n` +
          (body ? 'Content-Type: application/problem+json\r\n' : '') +
          'Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nCross-Origin-Resource-Policy: cross-origin\r\n' +
          `Connection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    } else {
      socket.destroy();
    }
  });
  try {
    await new Promise<void>((ok, fail) => {
      const failed = (err: NodeJS.ErrnoException): void => fail(listenError(err, config));
      server.once('error', failed);
      // A deep accept queue (the kernel caps it at net.core.somaxconn) lets a burst of thousands of connections
      // wait for the event loop instead of being dropped; Node's default is 511.
      server.listen({ port: config.port, host: config.host, backlog: 65_535 }, () => {
        server.off('error', failed);
        ok();
      });
    });
  } catch (err) {
    // The storage began opening alongside; release it (the file backend's lock, a database pool) before failing.
    await withDeadline(
      storage.then((s) => s.close()),
      config.shutdownTimeoutMs,
    );
    throw err;
  }
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  // Webhook callback URLs need an origin before any request has named one; an unspecified listening address is
  // reached on loopback.
  const reachable = addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address === '::' ? '[::1]' : host;
  app.listeningAt(`http://${reachable}:${addr.port}`);
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${addr.port}`,
    server,
    app,
    storage,
    metrics,
    close() {
      closing ??= (async () => {
        // Everything below shares one deadline, whatever state the server is in (storage still opening, a
        // database that does not answer, a close that hangs): past it, the promise resolves anyway.
        const deadline = performance.now() + config.shutdownTimeoutMs;
        const left = (): number => Math.max(0, deadline - performance.now());
        const stopped = new Promise<void>((ok) => server.close(() => ok()));
        server.closeIdleConnections();
        await app.shutdown(left());
        server.closeAllConnections();
        await stopped;
        // Storage that has not opened yet is not waited for: it is closed whenever it does open.
        const opened = app.storage;
        if (opened === undefined) {
          storage.then((s) => s.close()).catch(() => {});
          return;
        }
        let failure: { err: unknown } | undefined;
        const closed = opened.close().catch((err: unknown) => {
          failure = { err };
          logger.error({ err }, 'closing storage failed');
        });
        await withDeadline(closed, left());
        if (failure !== undefined) throw failure.err;
      })();
      return closing;
    },
  };
}

/** Resolves when `promise` settles or after `ms`, whichever comes first; never rejects. */
async function withDeadline(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => {}),
    new Promise<void>((ok) => {
      timer = setTimeout(ok, ms);
    }),
  ]);
  clearTimeout(timer);
}

/** A failure to start that the operator can act on: the message says what and where, without a stack. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** Turns a listen failure into one clear sentence (the port is taken, the host does not resolve or is not ours). */
function listenError(err: NodeJS.ErrnoException, config: ServerConfig): Error {
  const where = `${config.host}:${config.port}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return new StartupError(`cannot listen on ${where}: the port is already in use`, { cause: err });
    case 'EACCES':
      return new StartupError(
        `cannot listen on ${where}: permission denied (ports below 1024 need privileges)`,
        {
          cause: err,
        },
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartupError(`cannot listen on ${where}: unknown host ${JSON.stringify(config.host)}`, {
        cause: err,
      });
    case 'EADDRNOTAVAIL':
      return new StartupError(`cannot listen on ${where}: the address is not one of this machine's`, {
        cause: err,
      });
    default:
      return new StartupError(`cannot listen on ${where}: ${err.message}`, { cause: err });
  }
}
