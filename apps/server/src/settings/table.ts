import { machineResources, sizeLimits } from '../http/sizing.js';
import {
  atLeastBytes,
  basePath,
  host,
  integer,
  optional,
  origins,
  parseBoolean,
  parseBytes,
  postgresSchema,
  postgresUrl,
  publicOrigin,
} from './parsers.js';

/**
 * One setting of the `streamkeep` binary. The table below is the single place a setting is defined: the
 * {@link ServerConfig} type, the command-line flags with their environment variables (`cli.ts`), `--help` and the
 * README's flag table (`settingsMarkdown`, checked by a test) all come from it.
 */
export interface Setting<T> {
  /** commander flag syntax: `--port <port>`; booleans are `--name [bool]` and also get a `--no-name` twin. */
  readonly flags: string;
  /** The environment variable that sets it when the flag is absent. */
  readonly env: string;
  readonly help: string;
  readonly default: T;
  /** Parses a flag or environment value; throws `InvalidArgumentError`. Absent when `choices` is given. */
  readonly parse?: (raw: string) => T;
  /** The allowed values, when the setting is one of a few words. */
  readonly choices?: readonly T[];
  /** The value may hold a password: error messages never repeat it (commander's would). */
  readonly secret?: boolean;
  /** Text for the default where the value itself would mislead (sized by the machine, or "unlimited"). */
  readonly defaultText?: string;
}

function define<T>(setting: Setting<T>): Setting<T> {
  return setting;
}

export const BACKENDS = ['memory', 'file', 'postgres'] as const;
export type Backend = (typeof BACKENDS)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const bool = { parse: parseBoolean } as const;
const optionalCount = optional(integer(1));
const optionalBytes = optional(parseBytes);
/** Limits sized from this machine's memory and open-file limit (see `sizeLimits`). */
const SIZED = sizeLimits(machineResources(), 1024 * 1024);

/** Every setting, keyed by its name in {@link ServerConfig}. The order is the order of `--help` and the README. */
export const SETTINGS = {
  host: define({
    flags: '--host <host>',
    env: 'STREAMKEEP_HOST',
    help: 'interface to listen on',
    default: '127.0.0.1',
    parse: host,
  }),
  port: define({
    flags: '--port <port>',
    env: 'STREAMKEEP_PORT',
    help: 'TCP port (0 picks a free one)',
    default: 4437,
    parse: integer(0, 65_535),
  }),
  storage: define<Backend>({
    flags: '--storage <backend>',
    env: 'STREAMKEEP_STORAGE',
    help: 'storage backend',
    default: 'file',
    choices: BACKENDS,
  }),
  dataDir: define({
    flags: '--data-dir <dir>',
    env: 'STREAMKEEP_DATA_DIR',
    help: 'data directory of the file backend',
    default: './data',
    parse: (s: string) => s,
  }),
  syncOnAppend: define({
    flags: '--sync-on-append [bool]',
    env: 'STREAMKEEP_SYNC_ON_APPEND',
    help: 'fsync every commit before acknowledging it (file backend)',
    default: true,
    ...bool,
  }),
  postgresUrl: define<string | undefined>({
    flags: '--postgres-url <url>',
    env: 'STREAMKEEP_POSTGRES_URL',
    help: 'PostgreSQL connection URL of the postgres backend (falls back to DATABASE_URL)',
    default: undefined,
    parse: postgresUrl,
    secret: true,
    defaultText: '$DATABASE_URL, else none',
  }),
  postgresSchema: define({
    flags: '--postgres-schema <name>',
    env: 'STREAMKEEP_POSTGRES_SCHEMA',
    help: "schema holding the postgres backend's tables; every instance serving the same streams uses the same one",
    default: 'streamkeep',
    parse: postgresSchema,
  }),
  postgresPoolMax: define({
    flags: '--postgres-pool-max <count>',
    env: 'STREAMKEEP_POSTGRES_POOL_MAX',
    help: 'most pooled PostgreSQL connections per instance (plus one for LISTEN)',
    default: 10,
    parse: integer(1),
  }),
  postgresConnectTimeoutMs: define({
    flags: '--postgres-connect-timeout <ms>',
    env: 'STREAMKEEP_POSTGRES_CONNECT_TIMEOUT',
    help: 'how long one PostgreSQL connection attempt may take before it fails, in ms',
    default: 10_000,
    parse: integer(1),
  }),
  longPollTimeoutMs: define({
    flags: '--long-poll-timeout <ms>',
    env: 'STREAMKEEP_LONG_POLL_TIMEOUT',
    help: 'how long a long-poll waits before answering 204, in ms',
    default: 30_000,
    parse: integer(0),
  }),
  basePath: define({
    flags: '--base-path <path>',
    env: 'STREAMKEEP_BASE_PATH',
    help: 'URL path under which streams live',
    default: '/v1/stream',
    parse: basePath,
  }),
  publicOrigin: define<string | undefined>({
    flags: '--public-origin <origin>',
    env: 'STREAMKEEP_PUBLIC_ORIGIN',
    help: 'origin clients reach this server at (Location headers, webhook callback URLs)',
    default: undefined,
    parse: publicOrigin,
    defaultText: 'the request Host; for webhooks, the listening address',
  }),
  maxBodyBytes: define({
    flags: '--max-body-bytes <bytes>',
    env: 'STREAMKEEP_MAX_BODY_BYTES',
    help: 'largest request body; larger ones get 413',
    default: 10 * 1024 * 1024,
    parse: parseBytes,
    defaultText: '10mib',
  }),
  maxStreamBytes: define<number | undefined>({
    flags: '--max-stream-bytes <bytes>',
    env: 'STREAMKEEP_MAX_STREAM_BYTES',
    help: 'payload bytes one stream may hold (0 = unlimited)',
    default: undefined,
    parse: optionalBytes,
    defaultText: 'unlimited',
  }),
  maxTotalBytes: define<number | undefined>({
    flags: '--max-total-bytes <bytes>',
    env: 'STREAMKEEP_MAX_TOTAL_BYTES',
    help: 'payload bytes all streams together may hold (0 = unlimited)',
    default: undefined,
    parse: optionalBytes,
    defaultText: 'unlimited',
  }),
  maxReadBytes: define({
    flags: '--max-read-bytes <bytes>',
    env: 'STREAMKEEP_MAX_READ_BYTES',
    help: 'largest catch-up response / SSE data event; longer reads are chunked',
    default: 1024 * 1024,
    parse: parseBytes,
    defaultText: '1mib',
  }),
  maxHeaderBytes: define({
    flags: '--max-header-bytes <bytes>',
    env: 'STREAMKEEP_MAX_HEADER_BYTES',
    help: 'largest request line + headers (at least 1k); larger ones get 431',
    default: 16 * 1024,
    parse: atLeastBytes(1024),
    defaultText: '16kib',
  }),
  maxStreams: define<number | undefined>({
    flags: '--max-streams <count>',
    env: 'STREAMKEEP_MAX_STREAMS',
    help: 'most streams the server holds; creating one more gets 507 (0 = unlimited)',
    default: 1_000_000,
    parse: optionalCount,
  }),
  maxLiveReads: define({
    flags: '--max-live-reads <count>',
    env: 'STREAMKEEP_MAX_LIVE_READS',
    help: 'most long-poll + SSE requests open at once; one more gets 503 with Retry-After',
    default: SIZED.maxLiveReads,
    parse: integer(0),
    defaultText: 'sized by memory and ulimit -n',
  }),
  maxLiveReadsPerClient: define<number | undefined>({
    flags: '--max-live-reads-per-client <count>',
    env: 'STREAMKEEP_MAX_LIVE_READS_PER_CLIENT',
    help: 'most long-poll + SSE requests one client address holds open; one more gets 429 (0 = unlimited; leave off behind a proxy)',
    default: undefined,
    parse: optionalCount,
    defaultText: 'unlimited',
  }),
  maxInFlight: define({
    flags: '--max-in-flight <count>',
    env: 'STREAMKEEP_MAX_IN_FLIGHT',
    help: 'most requests using storage at once; more wait in a queue (see --queue-target)',
    default: SIZED.maxInFlight,
    parse: integer(1),
    defaultText: 'sized by memory',
  }),
  maxQueued: define({
    flags: '--max-queued <count>',
    env: 'STREAMKEEP_MAX_QUEUED',
    help: 'most requests waiting for storage; one more gets 503 with Retry-After at once',
    default: SIZED.maxQueued,
    parse: integer(0),
    defaultText: 'sized by memory',
  }),
  queueTargetMs: define({
    flags: '--queue-target <ms>',
    env: 'STREAMKEEP_QUEUE_TARGET',
    help: 'queueing delay to stay under: once it has stayed above for 1 s, older waiters get 503 + Retry-After',
    default: 100,
    parse: integer(1),
  }),
  sseKeepAliveMs: define({
    flags: '--sse-keep-alive <ms>',
    env: 'STREAMKEEP_SSE_KEEP_ALIVE',
    help: 'SSE keep-alive comment interval, in ms',
    default: 15_000,
    parse: integer(10),
  }),
  sseReconnectMs: define({
    flags: '--sse-reconnect <ms>',
    env: 'STREAMKEEP_SSE_RECONNECT',
    help: 'close SSE connections after this long so clients reconnect (0 = never), in ms',
    default: 60_000,
    parse: integer(0),
  }),
  corsOrigins: define<'*' | readonly string[]>({
    flags: '--cors-origins <list>',
    env: 'STREAMKEEP_CORS_ORIGINS',
    help: 'allowed CORS origins, comma-separated, or *',
    default: '*',
    parse: origins,
  }),
  compression: define({
    flags: '--compression [bool]',
    env: 'STREAMKEEP_COMPRESSION',
    help: 'gzip read responses for clients that accept it',
    default: true,
    ...bool,
  }),
  headersTimeoutMs: define({
    flags: '--headers-timeout <ms>',
    env: 'STREAMKEEP_HEADERS_TIMEOUT',
    help: 'time a client has to send its request headers, in ms',
    default: 10_000,
    parse: integer(1),
  }),
  requestTimeoutMs: define({
    flags: '--request-timeout <ms>',
    env: 'STREAMKEEP_REQUEST_TIMEOUT',
    help: 'time a client has to send its whole request (headers and body), in ms',
    default: 60_000,
    parse: integer(1),
  }),
  keepAliveTimeoutMs: define({
    flags: '--keep-alive-timeout <ms>',
    env: 'STREAMKEEP_KEEP_ALIVE_TIMEOUT',
    help: 'how long an idle keep-alive connection stays open, in ms',
    default: 5_000,
    parse: integer(1),
  }),
  shutdownTimeoutMs: define({
    flags: '--shutdown-timeout <ms>',
    env: 'STREAMKEEP_SHUTDOWN_TIMEOUT',
    help: 'on SIGTERM / SIGINT, how long in-flight requests and closing the storage may take before the process exits anyway, in ms',
    default: 10_000,
    parse: integer(0),
  }),
  logLevel: define<LogLevel>({
    flags: '--log-level <level>',
    env: 'STREAMKEEP_LOG_LEVEL',
    help: 'pino log level',
    default: 'info',
    choices: LOG_LEVELS,
  }),
  logRequests: define({
    flags: '--log-requests [bool]',
    env: 'STREAMKEEP_LOG_REQUESTS',
    help: 'one info line per request (method, URL, status, time, request id, client address)',
    default: true,
    ...bool,
  }),
  metrics: define({
    flags: '--metrics [bool]',
    env: 'STREAMKEEP_METRICS',
    help: 'serve Prometheus metrics at /metrics',
    default: true,
    ...bool,
  }),
  webhookAllowLoopback: define({
    flags: '--webhook-allow-loopback [bool]',
    env: 'STREAMKEEP_WEBHOOK_ALLOW_LOOPBACK',
    help: 'admit webhook URLs on loopback addresses (plain http is allowed only there)',
    default: true,
    ...bool,
  }),
  webhookAllowPrivate: define({
    flags: '--webhook-allow-private [bool]',
    env: 'STREAMKEEP_WEBHOOK_ALLOW_PRIVATE',
    help: 'admit webhook URLs on private and unique-local addresses (link-local and metadata never)',
    default: false,
    ...bool,
  }),
  webhookTimeoutMs: define({
    flags: '--webhook-timeout <ms>',
    env: 'STREAMKEEP_WEBHOOK_TIMEOUT',
    help: 'how long one webhook delivery may take, connection to last byte of the answer, in ms',
    default: 5_000,
    parse: integer(1),
  }),
  webhookMaxAnswerBytes: define({
    flags: '--webhook-max-answer-bytes <bytes>',
    env: 'STREAMKEEP_WEBHOOK_MAX_ANSWER_BYTES',
    help: 'largest webhook answer read; a longer one fails the delivery',
    default: 64 * 1024,
    parse: parseBytes,
    defaultText: '64kib',
  }),
  webhookConcurrency: define({
    flags: '--webhook-concurrency <count>',
    env: 'STREAMKEEP_WEBHOOK_CONCURRENCY',
    help: 'webhook deliveries in flight at once',
    default: 16,
    parse: integer(1),
  }),
  webhookMinIntervalMs: define({
    flags: '--webhook-min-interval <ms>',
    env: 'STREAMKEEP_WEBHOOK_MIN_INTERVAL',
    help: 'while appends keep the server busy, least time between two deliveries to one subscription (wakes meanwhile are coalesced), in ms; 0: none',
    default: 250,
    parse: integer(0),
  }),
  webhookRate: define({
    flags: '--webhook-rate <per-second>',
    env: 'STREAMKEEP_WEBHOOK_RATE',
    help: 'while appends keep the server busy, webhook deliveries started per second (all subscriptions together)',
    default: 20,
    parse: integer(1),
  }),
  webhookKeepAliveMs: define({
    flags: '--webhook-keep-alive <ms>',
    env: 'STREAMKEEP_WEBHOOK_KEEP_ALIVE',
    help: 'how long an idle connection to a webhook receiver is kept for the next delivery, in ms; 0: one connection per delivery',
    default: 4_000,
    parse: integer(0),
  }),
  webhookMaxAttempts: define({
    flags: '--webhook-max-attempts <count>',
    env: 'STREAMKEEP_WEBHOOK_MAX_ATTEMPTS',
    help: 'failed deliveries (retried after 1 s doubling to 60 s, ±20 %) before a subscription is marked failed',
    default: 10,
    parse: integer(1),
  }),
};

/** The value type of one setting. */
type ValueOf<S> = S extends Setting<infer T> ? T : never;

/** Everything the `streamkeep` binary can be told, from flags or environment variables: one field per setting. */
export type ServerConfig = { readonly [K in keyof typeof SETTINGS]: ValueOf<(typeof SETTINGS)[K]> };

export type SettingKey = keyof ServerConfig;

/** Every setting at its default. */
export const DEFAULT_SERVER_CONFIG: ServerConfig = Object.freeze(
  Object.fromEntries(Object.entries(SETTINGS).map(([k, s]) => [k, s.default])),
) as ServerConfig;

/** True for the boolean settings, which take an optional value and have a `--no-` twin. */
export function isBoolean(s: Setting<unknown>): boolean {
  return typeof s.default === 'boolean';
}
