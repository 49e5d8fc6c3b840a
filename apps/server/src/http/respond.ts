import type { IncomingMessage, ServerResponse } from 'node:http';

/** Header values a route hands to {@link writeHead}. */
export type ResponseHeaders = Record<string, string | number>;

/**
 * The headers every response of one request carries (security and CORS, §12.7), kept as a flat `[name, value, …]`
 * list and prepended at {@link writeHead}. Setting them with `res.setHeader` at the start of each request cost six
 * validated, lower-cased map insertions per request, and made every `writeHead` take Node's slow merging path.
 */
export interface BaseHeaders {
  readonly list: readonly string[];
  /** `Vary` the request already needs (CORS with an origin list varies on `Origin`). */
  readonly vary: string | undefined;
}

const kBase = Symbol('streamkeep.baseHeaders');
const kRequestId = Symbol('streamkeep.requestId');

interface WithBase {
  [kBase]?: BaseHeaders;
  [kRequestId]?: string;
}

const SECURITY = [
  'X-Content-Type-Options',
  'nosniff',
  'Cross-Origin-Resource-Policy',
  'cross-origin',
  'Content-Security-Policy',
  "default-src 'none'; frame-ancestors 'none'; sandbox",
  'Referrer-Policy',
  'no-referrer',
];

/**
 * Precomputes the base headers of an app: one shared list when every origin is allowed; with an origin list, the
 * request's allowed origin is added per request.
 */
export function baseHeaderFactory(
  origins: '*' | readonly string[],
  exposeHeaders: string,
): (req: IncomingMessage) => BaseHeaders {
  if (origins === '*') {
    const shared: BaseHeaders = {
      list: [...SECURITY, 'Access-Control-Allow-Origin', '*', 'Access-Control-Expose-Headers', exposeHeaders],
      vary: undefined,
    };
    return () => shared;
  }
  const refused: BaseHeaders = { list: SECURITY, vary: 'Origin' };
  return (req) => {
    const origin = req.headers.origin;
    if (origin === undefined || !origins.includes(origin)) return refused;
    return {
      list: [
        ...SECURITY,
        'Access-Control-Allow-Origin',
        origin,
        'Access-Control-Expose-Headers',
        exposeHeaders,
      ],
      vary: 'Origin',
    };
  };
}

/** Attaches the request's base headers to its response. */
export function setBaseHeaders(res: ServerResponse, base: BaseHeaders): void {
  (res as WithBase)[kBase] = base;
}

/** Makes every response of this request carry `X-Request-Id: id` (see `requestIdOf`). */
export function setRequestId(res: ServerResponse, id: string): void {
  (res as WithBase)[kRequestId] = id;
}

/** The `Vary` value for a response that also varies on `value`. */
export function varyWith(res: ServerResponse, value: string): string {
  const prior = (res as WithBase)[kBase]?.vary;
  return prior === undefined ? value : `${prior}, ${value}`;
}

/**
 * Writes the status line and headers: the request's base headers, `Vary` if the base needs one and `headers` does
 * not name it, then `headers`. One flat list, so Node serialises it in a single pass.
 */
export function writeHead(res: ServerResponse, status: number, headers: ResponseHeaders): void {
  const base = (res as WithBase)[kBase];
  const list: (string | number)[] = base === undefined ? [] : base.list.slice();
  for (const name in headers) list.push(name, headers[name]!);
  if (base?.vary !== undefined && headers.Vary === undefined) list.push('Vary', base.vary);
  const id = (res as WithBase)[kRequestId];
  if (id !== undefined) list.push('X-Request-Id', id);
  res.writeHead(status, list);
}
