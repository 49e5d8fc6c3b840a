import type { IncomingMessage } from 'node:http';
import { HttpError } from '../error-status.js';

/**
 * Reads a request body up to `limit` bytes. A declared `Content-Length` over the limit is refused before a byte is
 * read; a chunked body is refused as soon as the running total passes the limit, so an oversized body is never
 * buffered whole.
 *
 * @returns the body in one buffer that owns its memory exactly (not a slice of a socket or pool buffer, so that
 *   messages cut from it and retained by a storage backend pin exactly the body and nothing else).
 * @throws HttpError `BODY_TOO_LARGE` (413).
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined) {
    const n = Number(declared);
    if (Number.isFinite(n) && n > limit) {
      return Promise.reject(tooLarge(limit));
    }
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let settled = false;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      cleanup();
      // Stop pulling bytes off the socket: the response says 413 and closes the connection.
      req.pause();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > limit) {
        chunks.length = 0;
        fail(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      if (settled) return;
      settled = true;
      cleanup();
      // Node's HTTP parser hands each body chunk over in a buffer of its own (not a view into a socket slab), so a
      // body that arrived as one such chunk already has the property we want and needs no copy.
      const only = chunks.length === 1 ? chunks[0]! : undefined;
      if (only !== undefined && only.byteOffset === 0 && only.buffer.byteLength === only.length) {
        resolve(only);
        return;
      }
      const body = Buffer.allocUnsafeSlow(total);
      let at = 0;
      for (const c of chunks) {
        c.copy(body, at);
        at += c.length;
      }
      resolve(body);
    };
    const onError = (): void => fail(new HttpError('REQUEST_ABORTED', 'the request body could not be read'));
    const onClose = (): void => {
      // The client went away mid-body: its error, not ours (nobody is left to read the answer).
      if (!req.complete) fail(new HttpError('REQUEST_ABORTED', 'the request body was cut off'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

function tooLarge(limit: number): HttpError {
  return new HttpError('BODY_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`, {
    Connection: 'close',
  });
}
