import type { StorageError, StorageErrorCode } from '@streamkeep/storage';
import { isStorageError } from '@streamkeep/storage';

/**
 * The one table that turns a storage error code into an HTTP status. Storage knows nothing of HTTP; every route maps
 * failures through here (and through {@link problemFor}), never by matching messages.
 */
export const STORAGE_ERROR_STATUS: { readonly [C in StorageErrorCode]: number } = {
  NOT_FOUND: 404,
  // An expired stream behaves as missing (PROTOCOL §4: "expired streams return 404").
  EXPIRED: 404,
  // §5.4: soft-deleted streams answer 410 to GET, HEAD, POST and DELETE…
  GONE: 410,
  CONFIG_MISMATCH: 409,
  // …and 409 to a PUT at their path.
  PATH_BLOCKED: 409,
  FORK_FROM_TOMBSTONE: 409,
  FORK_OFFSET_BEYOND_TAIL: 400,
  FORK_SUB_OFFSET_OUT_OF_RANGE: 400,
  STREAM_CLOSED: 409,
  CONTENT_TYPE_MISMATCH: 409,
  SEQ_CONFLICT: 409,
  PRODUCER_SEQ_GAP: 409,
  PRODUCER_EPOCH_FENCED: 403,
  PRODUCER_INVALID_EPOCH_SEQ: 400,
  EMPTY_APPEND: 400,
  INVALID_OFFSET: 400,
  INVALID_CONTENT_TYPE: 400,
  INVALID_TTL: 400,
  CONFLICTING_EXPIRY: 400,
  INVALID_STREAM_NAME: 400,
  INVALID_PRODUCER: 400,
  MESSAGE_TOO_LARGE: 413,
  // The storage-wide quota is the server's problem, not the request's: 507 Insufficient Storage.
  STORAGE_LIMIT_EXCEEDED: 507,
  STREAM_LIMIT_EXCEEDED: 413,
  UNAVAILABLE: 503,
  INSUFFICIENT_STORAGE: 507,
  // A stream whose stored data failed an integrity check is quarantined: refused until an operator acts, which a
  // retry will not change. To its clients it is as good as missing (§5.6: 404), and it is not a fault of this
  // request: the operator was warned once, when the damage was found (see openStorage).
  CORRUPTED: 404,
  INTERNAL: 500,
  STORAGE_CLOSED: 503,
  NOT_SUPPORTED: 501,
  // Subscriptions (PROTOCOL §6–7, under `__ds`).
  SUBSCRIPTION_NOT_FOUND: 404,
  SUBSCRIPTION_CONFLICT: 409,
  INVALID_SUBSCRIPTION: 400,
  ALREADY_CLAIMED: 409,
  FENCED: 409,
  NO_PENDING_WORK: 409,
};

/** Error codes raised by the HTTP layer itself (request parsing, limits, lifecycle), with their statuses. */
export const HTTP_ERROR_STATUS = {
  /** A protocol header is malformed or missing (Content-Type on POST, Stream-TTL, producer headers, …). */
  INVALID_HEADER: 400,
  /** A query parameter is malformed, repeated or missing where required (`offset` in live modes). */
  INVALID_QUERY: 400,
  /** A POST without `Stream-Closed: true` carried no body (§5.2: MUST be 400). */
  EMPTY_BODY: 400,
  /** A JSON-mode POST carried `[]` (§9.1: MUST be 400). */
  EMPTY_ARRAY: 400,
  /** A JSON-mode body is not valid UTF-8 JSON (§9.1: MUST be 400). */
  INVALID_JSON: 400,
  /** The request body is larger than the configured limit; refused while it streams in. */
  BODY_TOO_LARGE: 413,
  /** The client closed the connection before its body was complete (the answer reaches nobody). */
  REQUEST_ABORTED: 400,
  /** No stream route matches the path. */
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  /** Node's parser refused the request (bad framing, bad characters, unknown method). */
  MALFORMED_REQUEST: 400,
  /** The headers or the whole request did not arrive within the configured timeouts. */
  REQUEST_TIMEOUT: 408,
  /** The request line and headers are larger than the configured limit. */
  HEADERS_TOO_LARGE: 431,
  /** Storage did not open within the start-up wait or failed to open, or the server is shutting down. */
  SERVICE_UNAVAILABLE: 503,
  /**
   * Load shedding (`Retry-After`): the request waited for storage longer than the queue target while the queue stood
   * above it, or the queue was full.
   */
  OVERLOADED: 503,
  /** Load shedding: the server holds its maximum of long-poll and SSE connections (`Retry-After`). */
  TOO_MANY_LIVE_READS: 503,
  /** Rate limiting (§12.5): this client address holds its maximum of live reads (`Retry-After`). */
  TOO_MANY_CLIENT_LIVE_READS: 429,
  /** The server holds its maximum number of streams; a create waits for a delete or an expiry. */
  TOO_MANY_STREAMS: 507,
  /** An unexpected failure; details are logged, not sent. */
  INTERNAL_ERROR: 500,
} as const;

export type HttpErrorCode = keyof typeof HTTP_ERROR_STATUS;

/** An error raised by the HTTP layer, carrying its code and any protocol headers the response needs. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly status: number;
  constructor(
    readonly code: HttpErrorCode,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.status = HTTP_ERROR_STATUS[code];
  }
}

/** An RFC 9457 problem document as sent on the wire. */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: string;
  readonly detail?: string;
  readonly instance?: string;
}

/** The status, headers and body of an error response. */
export interface ProblemResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly problem: Problem;
  /** True for failures the operator should see in the logs (5xx). */
  readonly serverFault: boolean;
}

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  413: 'Content Too Large',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  507: 'Insufficient Storage',
};

/** Protocol headers that travel with particular storage errors (§5.2, §5.2.1). */
function storageErrorHeaders(err: StorageError): Record<string, string> {
  const d = err.details;
  switch (err.code) {
    case 'STREAM_CLOSED':
      // §5.2: "409 Conflict with Stream-Closed: true and Stream-Next-Offset set to the final offset" (MUST).
      return d.nextOffset === undefined
        ? { 'Stream-Closed': 'true' }
        : { 'Stream-Closed': 'true', 'Stream-Next-Offset': d.nextOffset };
    case 'PRODUCER_EPOCH_FENCED':
      return d.currentEpoch === undefined ? {} : { 'Producer-Epoch': String(d.currentEpoch) };
    case 'PRODUCER_SEQ_GAP': {
      const h: Record<string, string> = {};
      if (d.expectedSeq !== undefined) h['Producer-Expected-Seq'] = String(d.expectedSeq);
      if (d.receivedSeq !== undefined) h['Producer-Received-Seq'] = String(d.receivedSeq);
      return h;
    }
    case 'UNAVAILABLE':
    case 'STORAGE_CLOSED':
      return { 'Retry-After': '1' };
    default:
      return {};
  }
}

/**
 * Maps any thrown value to the problem response the client gets. Storage errors go through
 * {@link STORAGE_ERROR_STATUS}, HTTP-layer errors carry their own code; anything else is a 500 whose message is not
 * disclosed.
 */
export function problemFor(err: unknown, instance?: string): ProblemResponse {
  let status: number;
  let code: string;
  let detail: string | undefined;
  let headers: Record<string, string>;
  if (isStorageError(err)) {
    status = STORAGE_ERROR_STATUS[err.code] ?? 500;
    code = err.code;
    // Messages of backend-health failures may describe the host (paths, errno); keep them in the logs.
    detail =
      err.code === 'CORRUPTED'
        ? 'the stream is quarantined: its stored data failed an integrity check'
        : status >= 500 && status !== 503 && status !== 507
          ? undefined
          : err.message;
    headers = storageErrorHeaders(err);
  } else if (err instanceof HttpError) {
    status = err.status;
    code = err.code;
    detail = err.message;
    headers = { ...err.headers };
    if (status === 503 && headers['Retry-After'] === undefined) headers['Retry-After'] = '1';
  } else {
    status = 500;
    code = 'INTERNAL_ERROR';
    detail = undefined;
    headers = {};
  }
  const problem: Problem = {
    type: 'about:blank',
    title: TITLES[status] ?? 'Error',
    status,
    code,
    ...(detail === undefined ? {} : { detail }),
    ...(instance === undefined ? {} : { instance }),
  };
  // A limit the HTTP layer enforces (507 TOO_MANY_STREAMS) is the client's doing, not a fault to log per request.
  const serverFault =
    status >= 500 &&
    status !== 503 &&
    status !== 501 &&
    !(err instanceof HttpError && code !== 'INTERNAL_ERROR');
  return { status, headers, problem, serverFault };
}
