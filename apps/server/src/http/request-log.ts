import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import type * as PinoHttp from 'pino-http';

// `pino-http` is loaded when request logging is on, not by every process that imports the app: each module a server
// keeps loaded is resident heap, and a larger heap makes V8 collect it more often (see startServer).
const require = createRequire(import.meta.url);

/**
 * What an incoming `X-Request-Id` may be to be honoured (one a proxy or the client chose, so that its logs and ours
 * share the id): printable, no spaces or quotes, at most 128 characters. Anything else is replaced by a fresh UUID
 * rather than echoed, so a client cannot put arbitrary text in our logs or response headers.
 */
const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** The request's id: its own valid `X-Request-Id`, else a random UUID. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  // The global Web Crypto's `randomUUID`, which loads node:crypto the first time a fresh id is needed.
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : crypto.randomUUID();
}

const kId = Symbol('streamkeep.requestId');

interface WithId {
  [kId]?: string;
}

/**
 * Request logging with `pino-http`: one line per request when its response ends (`request completed`, or
 * `request errored` for a 5xx, at error level), with the request id, method, URL, client address and port, status
 * and `responseTime` in ms. No headers are logged: they may carry credentials.
 */
export function requestLogger(
  logger: Logger,
): (req: IncomingMessage, res: ServerResponse, id: string) => void {
  const { pinoHttp } = require('pino-http') as typeof PinoHttp;
  const log = pinoHttp({
    logger,
    genReqId: (req) => (req as WithId)[kId] ?? crypto.randomUUID(),
    // A response cut off (an SSE or long-poll client going away) is the client's doing: info, "request aborted".
    customLogLevel: (_req, res) => (res.statusCode >= 500 && res.writableFinished ? 'error' : 'info'),
    customErrorMessage: (_req, res) => (res.writableFinished ? 'request errored' : 'request aborted'),
    // Our own serializers over the raw objects, not wrapped around pino's standard ones, which copy every header.
    wrapSerializers: false,
    serializers: {
      req: (req: IncomingMessage & WithId) => ({
        id: req[kId],
        method: req.method,
        url: req.url,
        remoteAddress: req.socket?.remoteAddress,
        remotePort: req.socket?.remotePort,
      }),
      res: (res: ServerResponse) => ({ statusCode: res.statusCode }),
    },
    quietReqLogger: true,
  });
  return (req, res, id) => {
    (req as WithId)[kId] = id;
    log(req, res);
  };
}
