import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { problemFor } from '../error-status.js';
import { writeHead } from './respond.js';

/** How much of a refused body is read and thrown away after the refusal, so the client sees the answer. */
export const REFUSED_BODY_DRAIN_BYTES = 256 * 1024;
/**
 * How long the connection stays open after the refusal for the client to read it, unless the client closes first
 * (which a client that read the answer does). Go waits 500 ms the same way; on a loaded machine a client can take
 * longer than that to be scheduled and read, and then loses the answer to the reset, so we wait longer. The socket is
 * paused meanwhile (at most {@link REFUSED_BODY_DRAIN_BYTES} read), so a lingering refusal costs a socket, not memory.
 */
export const REFUSED_BODY_LINGER_MS = 5_000;

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
  if (p.headers.Connection === 'close' && !req.complete && req.socket !== null) {
    lingerAfterRefusal(req, req.socket);
  }
  writeHead(res, p.status, {
    ...p.headers,
    'Content-Type': 'application/problem+json',
    'Cache-Control': 'no-store',
    ...(body === undefined ? {} : { 'Content-Length': Buffer.byteLength(body) }),
  });
  res.end(body);
}

/**
 * A request refused before its body arrived (413, or a refusal while shutting down) is answered with
 * `Connection: close`. Node then closes the socket as soon as the answer is written; a client still sending its body
 * (one without `Expect: 100-continue`: fetch, undici, curl for small bodies) gets a TCP reset, and a reset makes its
 * kernel drop the answer unread. So, like Go's net/http: once the answer is out, send FIN, read and discard up to
 * {@link REFUSED_BODY_DRAIN_BYTES} of the body (past that, pause: TCP flow control stops the client without memory
 * growing here), and close for good after {@link REFUSED_BODY_LINGER_MS} or when the client closes first.
 */
function lingerAfterRefusal(req: IncomingMessage, socket: Socket): void {
  // Reading the body ourselves also keeps Node from "dumping" it, which discards a body without any bound.
  let drained = 0;
  const onData = (chunk: Buffer): void => {
    drained += chunk.length;
    if (drained > REFUSED_BODY_DRAIN_BYTES) {
      req.off('data', onData);
      req.pause();
    }
  };
  req.on('data', onData);
  req.resume();
  // Node's server calls `destroySoon` once a response marked `Connection: close` is written; this replaces it for
  // this one socket, which is never reused.
  socket.destroySoon = function lingeringClose(this: Socket): void {
    if (this.writable) this.end();
    const timer = setTimeout(() => this.destroy(), REFUSED_BODY_LINGER_MS);
    timer.unref();
    this.once('close', () => clearTimeout(timer));
    this.once('end', () => this.destroy());
  };
}
