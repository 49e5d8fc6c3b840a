import type { Storage } from '@streamkeep/storage';
import type { Logger } from 'pino';
import { type CursorPolicy, DEFAULT_CURSOR_POLICY } from '../http/cursor.js';
import type { ServerMetrics } from '../metrics.js';
import { SETTINGS } from './table.js';

/** Options of {@link createApp}. Every field but `storage` has a default. */
export interface AppOptions {
  /**
   * The backend, or a promise of it: until it resolves, `/readyz` answers 503 and stream requests wait for it (see
   * `startupWaitMs`).
   */
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
  /** Most streams the server holds; creating one more gets 507 (`undefined` = no limit). @default 1000000 */
  readonly maxStreams?: number | undefined;
  /**
   * Most long-poll and SSE requests open at once; one more gets 503 with `Retry-After`.
   * @default sized by memory and `ulimit -n` (see `sizeLimits`)
   */
  readonly maxLiveReads?: number | undefined;
  /**
   * Most long-poll and SSE requests one client address may hold open; one more gets 429 with `Retry-After`. Behind a
   * proxy every client has the proxy's address, so leave it off there and limit per client in the proxy.
   * @default undefined (no per-client limit)
   */
  readonly maxLiveReadsPerClient?: number | undefined;
  /**
   * Most requests inside their storage calls at once (a slot is taken after the body has arrived; live reads give it
   * back while they wait); more wait in a queue (see `queueTargetMs`). @default sized by memory, 64 to 4096
   */
  readonly maxInFlight?: number | undefined;
  /** Most requests waiting for a storage slot; one more gets 503 at once (`0`: no queue). @default sized by memory */
  readonly maxQueued?: number | undefined;
  /**
   * Queueing delay the server aims to stay under: once it has stayed above this for `queueIntervalMs`, requests that
   * have waited longer are shed with 503 and `Retry-After`. @default 100
   */
  readonly queueTargetMs?: number | undefined;
  /** How long the queueing delay may stay above `queueTargetMs` before shedding starts. @default 1000 */
  readonly queueIntervalMs?: number | undefined;
  /** How long a stream request arriving before storage is open waits for it, then 503. @default 30000 */
  readonly startupWaitMs?: number | undefined;
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
  /** Log one info line per request through `logger` (see `requestLogger`). @default false */
  readonly logRequests?: boolean | undefined;
  /** Prometheus metrics, served at `/metrics` when given. @default none (no `/metrics`) */
  readonly metrics?: ServerMetrics | undefined;
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
  readonly maxQueued: number;
  readonly queueTargetMs: number;
  readonly queueIntervalMs: number;
  readonly startupWaitMs: number;
  readonly sseKeepAliveMs: number;
  readonly sseReconnectMs: number;
  readonly corsOrigins: '*' | readonly string[];
  readonly compression: boolean;
  readonly compressionMinBytes: number;
  readonly readCacheControl: string;
  readonly cursor: CursorPolicy;
  readonly publicOrigin: string | undefined;
}

// The defaults of the options the binary also has a flag for come from the settings table, so they are stated once.
export const DEFAULT_BASE_PATH = SETTINGS.basePath.default;
export const DEFAULT_LONG_POLL_TIMEOUT_MS = SETTINGS.longPollTimeoutMs.default;
export const DEFAULT_MAX_REQUEST_BODY_BYTES = SETTINGS.maxBodyBytes.default;
export const DEFAULT_MAX_READ_BYTES = SETTINGS.maxReadBytes.default;
export const DEFAULT_READ_CACHE_CONTROL = 'public, max-age=60, stale-while-revalidate=300';
export const DEFAULT_MAX_HEADER_BYTES = SETTINGS.maxHeaderBytes.default;
export const DEFAULT_MAX_STREAMS = SETTINGS.maxStreams.default;
export const DEFAULT_MAX_LIVE_READS = SETTINGS.maxLiveReads.default;
export const DEFAULT_MAX_IN_FLIGHT = SETTINGS.maxInFlight.default;
export const DEFAULT_MAX_QUEUED = SETTINGS.maxQueued.default;
export const DEFAULT_QUEUE_TARGET_MS = SETTINGS.queueTargetMs.default;
export const DEFAULT_QUEUE_INTERVAL_MS = 1_000;
export const DEFAULT_STARTUP_WAIT_MS = 30_000;

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
export function resolveAppConfig(
  options: Omit<AppOptions, 'storage' | 'logger' | 'metrics' | 'logRequests'>,
): AppConfig {
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
    maxStreams: !('maxStreams' in options)
      ? DEFAULT_MAX_STREAMS
      : options.maxStreams === undefined
        ? undefined
        : positive('maxStreams', options.maxStreams, 0),
    maxLiveReads: positive('maxLiveReads', options.maxLiveReads, DEFAULT_MAX_LIVE_READS),
    maxLiveReadsPerClient:
      options.maxLiveReadsPerClient === undefined
        ? undefined
        : positive('maxLiveReadsPerClient', options.maxLiveReadsPerClient, 0),
    maxInFlight: Math.max(1, positive('maxInFlight', options.maxInFlight, DEFAULT_MAX_IN_FLIGHT)),
    maxQueued: positive('maxQueued', options.maxQueued, DEFAULT_MAX_QUEUED),
    queueTargetMs: positive('queueTargetMs', options.queueTargetMs, DEFAULT_QUEUE_TARGET_MS),
    queueIntervalMs: positive('queueIntervalMs', options.queueIntervalMs, DEFAULT_QUEUE_INTERVAL_MS),
    startupWaitMs: positive('startupWaitMs', options.startupWaitMs, DEFAULT_STARTUP_WAIT_MS),
    sseKeepAliveMs: Math.max(
      10,
      positive('sseKeepAliveMs', options.sseKeepAliveMs, SETTINGS.sseKeepAliveMs.default),
    ),
    sseReconnectMs: positive('sseReconnectMs', options.sseReconnectMs, SETTINGS.sseReconnectMs.default),
    corsOrigins: options.corsOrigins ?? SETTINGS.corsOrigins.default,
    compression: options.compression ?? SETTINGS.compression.default,
    compressionMinBytes: positive('compressionMinBytes', options.compressionMinBytes, 1024),
    readCacheControl: options.readCacheControl ?? DEFAULT_READ_CACHE_CONTROL,
    cursor: options.cursor ?? DEFAULT_CURSOR_POLICY,
    publicOrigin: options.publicOrigin?.replace(/\/+$/, ''),
  };
}
