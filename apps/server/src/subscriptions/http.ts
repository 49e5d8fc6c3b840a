import type { IncomingMessage, ServerResponse } from 'node:http';
import { isStorageError } from '@streamkeep/storage';
import type { Logger } from 'pino';
import { HttpError, problemFor } from '../error-status.js';
import { readBody } from '../http/body.js';
import { writeHead } from '../http/respond.js';
import { WebhookUrlRejected } from '../webhooks/ssrf.js';

/** Largest JSON body of a `__ds` request. */
const MAX_BODY_BYTES = 1024 * 1024;

/** Reads a JSON object body; an empty body is `{}`. @throws HttpError `INVALID_JSON`, `BODY_TOO_LARGE`. */
export async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const raw = await readBody(req, MAX_BODY_BYTES);
  if (raw.byteLength === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HttpError('INVALID_JSON', 'the body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new HttpError('INVALID_JSON', 'the body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

export function sendJson(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  writeHead(res, status, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    ...headers,
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}

export function sendNoContent(res: ServerResponse): void {
  writeHead(res, 204, { 'Cache-Control': 'no-store' });
  res.end();
}

/**
 * Sends the problem document of `err` (through the one status table, `error-status.ts`) with the `error` member the
 * subscription protocol prescribes: `{ error: { code, message, … } }` — e.g. `409 { error: { code: "FENCED" } }`,
 * `409 ALREADY_CLAIMED` with `current_holder`, `400 WEBHOOK_URL_REJECTED`.
 */
export function sendSubscriptionError(
  req: IncomingMessage,
  res: ServerResponse,
  err: unknown,
  instance: string,
  logger: Logger,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  let status: number;
  let problem: Record<string, unknown>;
  let headers: Record<string, string>;
  const extra: Record<string, unknown> = {};
  if (err instanceof WebhookUrlRejected) {
    status = 400;
    headers = {};
    problem = {
      type: 'about:blank',
      title: 'Bad Request',
      status,
      code: err.code,
      detail: err.message,
      instance,
    };
  } else {
    const p = problemFor(err, instance);
    if (p.serverFault) logger.error({ err, instance, method: req.method }, 'request failed');
    status = p.status;
    headers = p.headers;
    problem = { ...p.problem };
    if (isStorageError(err)) {
      if (err.details.currentHolder !== undefined) extra.current_holder = err.details.currentHolder;
      if (err.details.generation !== undefined) extra.generation = err.details.generation;
    }
  }
  const body = JSON.stringify({
    ...problem,
    error: { code: problem.code, message: problem.detail, ...extra },
  });
  writeHead(res, status, {
    ...headers,
    'Content-Type': 'application/problem+json',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}
