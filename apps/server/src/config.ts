import { Command, InvalidArgumentError, Option } from 'commander';
import {
  DEFAULT_BASE_PATH,
  DEFAULT_LONG_POLL_TIMEOUT_MS,
  DEFAULT_MAX_HEADER_BYTES,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_LIVE_READS,
  DEFAULT_MAX_QUEUED,
  DEFAULT_MAX_READ_BYTES,
  DEFAULT_MAX_REQUEST_BODY_BYTES,
  DEFAULT_MAX_STREAMS,
  DEFAULT_QUEUE_TARGET_MS,
} from './options.js';

/** Everything the `streamkeep` binary can be told, from flags or environment variables. */
export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  readonly storage: 'memory' | 'file' | 'postgres';
  readonly dataDir: string;
  readonly syncOnAppend: boolean;
  /** Connection URL of the postgres backend; required with `storage: 'postgres'`. */
  readonly postgresUrl: string | undefined;
  readonly postgresSchema: string;
  readonly postgresPoolMax: number;
  readonly longPollTimeoutMs: number;
  readonly basePath: string;
  readonly maxBodyBytes: number;
  /** Per-stream byte limit; `undefined` = unlimited. */
  readonly maxStreamBytes: number | undefined;
  /** Storage-wide byte limit; `undefined` = unlimited. */
  readonly maxTotalBytes: number | undefined;
  readonly maxReadBytes: number;
  readonly maxHeaderBytes: number;
  /** Most streams; `undefined` = unlimited. */
  readonly maxStreams: number | undefined;
  readonly maxLiveReads: number;
  /** Live reads per client address; `undefined` = no per-client limit. */
  readonly maxLiveReadsPerClient: number | undefined;
  readonly maxInFlight: number;
  readonly maxQueued: number;
  readonly queueTargetMs: number;
  readonly sseKeepAliveMs: number;
  readonly sseReconnectMs: number;
  readonly corsOrigins: '*' | readonly string[];
  readonly compression: boolean;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly logLevel: string;
}

export const DEFAULT_SERVER_CONFIG: ServerConfig = {
  host: '127.0.0.1',
  port: 4437,
  storage: 'file',
  dataDir: './data',
  syncOnAppend: true,
  postgresUrl: undefined,
  postgresSchema: 'streamkeep',
  postgresPoolMax: 10,
  longPollTimeoutMs: DEFAULT_LONG_POLL_TIMEOUT_MS,
  basePath: DEFAULT_BASE_PATH,
  maxBodyBytes: DEFAULT_MAX_REQUEST_BODY_BYTES,
  maxStreamBytes: undefined,
  maxTotalBytes: undefined,
  maxReadBytes: DEFAULT_MAX_READ_BYTES,
  maxHeaderBytes: DEFAULT_MAX_HEADER_BYTES,
  maxStreams: DEFAULT_MAX_STREAMS,
  maxLiveReads: DEFAULT_MAX_LIVE_READS,
  maxLiveReadsPerClient: undefined,
  maxInFlight: DEFAULT_MAX_IN_FLIGHT,
  maxQueued: DEFAULT_MAX_QUEUED,
  queueTargetMs: DEFAULT_QUEUE_TARGET_MS,
  sseKeepAliveMs: 15_000,
  sseReconnectMs: 60_000,
  corsOrigins: '*',
  compression: true,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  shutdownTimeoutMs: 10_000,
  logLevel: 'info',
};

/** One setting: its flag, environment variable, help and parser. The table drives both commander and the README. */
interface Setting {
  readonly key: keyof ServerConfig;
  readonly flags: string;
  readonly env: string;
  readonly help: string;
  readonly parse: (raw: string) => unknown;
  /** A boolean with a `--no-` twin. */
  readonly negatable?: boolean;
  /** How `--help` shows the default, when the value itself would mislead. */
  readonly defaultText?: string;
}

function integer(min: number) {
  return (raw: string): number => {
    const t = raw.trim().replace(/_/g, '');
    const n = Number(t);
    if (!/^[0-9]+$/.test(t) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`expected a whole number >= ${min}, got ${JSON.stringify(raw)}`);
    }
    return n;
  };
}

/** Byte sizes: a whole number with an optional binary unit (`10mib`, `512k`, `1g`). */
export function parseBytes(raw: string): number {
  const m = /^\s*([0-9_]+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i.exec(raw);
  if (m === null)
    throw new InvalidArgumentError(
      `expected a byte size such as 1048576 or 10mib, got ${JSON.stringify(raw)}`,
    );
  const n = Number(m[1]!.replace(/_/g, ''));
  const unit = (m[2] ?? 'b').toLowerCase()[0];
  const scale = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  const v = n * scale;
  if (!Number.isSafeInteger(v)) throw new InvalidArgumentError(`byte size too large: ${raw}`);
  return v;
}

/** A limit where `0`, `none` or `unlimited` mean no limit. */
function optional(parse: (raw: string) => number) {
  return (raw: string): number | undefined => {
    const t = raw.trim().toLowerCase();
    return t === '' || t === '0' || t === 'none' || t === 'unlimited' ? undefined : parse(raw);
  };
}
const optionalCount = optional(integer(1));
const optionalBytes = optional(parseBytes);

export function parseBoolean(raw: string): boolean {
  const t = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off'].includes(t)) return false;
  throw new InvalidArgumentError(`expected true or false, got ${JSON.stringify(raw)}`);
}

function oneOf<T extends string>(...values: T[]) {
  return (raw: string): T => {
    const t = raw.trim().toLowerCase() as T;
    if (!values.includes(t))
      throw new InvalidArgumentError(`expected one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
    return t;
  };
}

function origins(raw: string): '*' | string[] {
  const list = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (list.length === 0 || list.includes('*')) return '*';
  return list;
}

/** A `postgres://` or `postgresql://` URL; the message never repeats it, since it may hold a password. */
function postgresUrl(raw: string): string {
  const t = raw.trim();
  let url: URL | undefined;
  try {
    url = new URL(t);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')) {
    throw new InvalidArgumentError('expected a URL such as postgresql://user:password@host:5432/database');
  }
  return t;
}

/** The identifiers `PostgresStorage` accepts as a schema name, checked here so a typo is a flag error, not a crash. */
function postgresSchema(raw: string): string {
  const t = raw.trim();
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(t) || /^pg_/i.test(t)) {
    throw new InvalidArgumentError(
      `expected a plain identifier (letters, digits, _; not starting with a digit or pg_; at most 63 characters), got ${JSON.stringify(raw)}`,
    );
  }
  return t;
}

function basePath(raw: string): string {
  const t = raw.trim();
  if (!t.startsWith('/') || /[?#\s]/.test(t)) {
    throw new InvalidArgumentError(`expected a path starting with /, got ${JSON.stringify(raw)}`);
  }
  return t;
}

export const SETTINGS: readonly Setting[] = [
  {
    key: 'host',
    flags: '--host <host>',
    env: 'STREAMKEEP_HOST',
    help: 'interface to listen on',
    parse: (s) => s.trim(),
  },
  {
    key: 'port',
    flags: '--port <port>',
    env: 'STREAMKEEP_PORT',
    help: 'TCP port (0 picks a free one)',
    parse: integer(0),
  },
  {
    key: 'storage',
    flags: '--storage <backend>',
    env: 'STREAMKEEP_STORAGE',
    help: 'storage backend: memory, file or postgres',
    parse: oneOf('memory', 'file', 'postgres'),
  },
  {
    key: 'dataDir',
    flags: '--data-dir <dir>',
    env: 'STREAMKEEP_DATA_DIR',
    help: 'data directory of the file backend',
    parse: (s) => s,
  },
  {
    key: 'syncOnAppend',
    flags: '--sync-on-append',
    env: 'STREAMKEEP_SYNC_ON_APPEND',
    help: 'fsync every commit before acknowledging it (file backend); --no-sync-on-append to turn off',
    parse: parseBoolean,
    negatable: true,
  },
  {
    key: 'postgresUrl',
    flags: '--postgres-url <url>',
    env: 'STREAMKEEP_POSTGRES_URL',
    help: 'PostgreSQL connection URL of the postgres backend (falls back to DATABASE_URL)',
    parse: postgresUrl,
    defaultText: '$DATABASE_URL, else none',
  },
  {
    key: 'postgresSchema',
    flags: '--postgres-schema <name>',
    env: 'STREAMKEEP_POSTGRES_SCHEMA',
    help: "schema holding the postgres backend's tables; every instance serving the same streams uses the same one",
    parse: postgresSchema,
  },
  {
    key: 'postgresPoolMax',
    flags: '--postgres-pool-max <count>',
    env: 'STREAMKEEP_POSTGRES_POOL_MAX',
    help: 'most pooled PostgreSQL connections per instance (plus one for LISTEN)',
    parse: integer(1),
  },
  {
    key: 'longPollTimeoutMs',
    flags: '--long-poll-timeout <ms>',
    env: 'STREAMKEEP_LONG_POLL_TIMEOUT',
    help: 'how long a long-poll waits before answering 204, in ms',
    parse: integer(0),
  },
  {
    key: 'basePath',
    flags: '--base-path <path>',
    env: 'STREAMKEEP_BASE_PATH',
    help: 'URL path under which streams live',
    parse: basePath,
  },
  {
    key: 'maxBodyBytes',
    flags: '--max-body-bytes <bytes>',
    env: 'STREAMKEEP_MAX_BODY_BYTES',
    help: 'largest request body; larger ones get 413',
    parse: parseBytes,
  },
  {
    key: 'maxStreamBytes',
    flags: '--max-stream-bytes <bytes>',
    env: 'STREAMKEEP_MAX_STREAM_BYTES',
    help: 'payload bytes one stream may hold (0 = unlimited)',
    parse: optionalBytes,
  },
  {
    key: 'maxTotalBytes',
    flags: '--max-total-bytes <bytes>',
    env: 'STREAMKEEP_MAX_TOTAL_BYTES',
    help: 'payload bytes all streams together may hold (0 = unlimited)',
    parse: optionalBytes,
  },
  {
    key: 'maxReadBytes',
    flags: '--max-read-bytes <bytes>',
    env: 'STREAMKEEP_MAX_READ_BYTES',
    help: 'largest catch-up response / SSE data event; longer reads are chunked',
    parse: parseBytes,
  },
  {
    key: 'maxHeaderBytes',
    flags: '--max-header-bytes <bytes>',
    env: 'STREAMKEEP_MAX_HEADER_BYTES',
    help: 'largest request line + headers (at least 1k); larger ones get 431',
    parse: (raw) => {
      const n = parseBytes(raw);
      if (n < 1024) throw new InvalidArgumentError(`expected at least 1k, got ${JSON.stringify(raw)}`);
      return n;
    },
  },
  {
    key: 'maxStreams',
    flags: '--max-streams <count>',
    env: 'STREAMKEEP_MAX_STREAMS',
    help: 'most streams the server holds; creating one more gets 507 (0 = unlimited)',
    parse: optionalCount,
  },
  {
    key: 'maxLiveReads',
    flags: '--max-live-reads <count>',
    env: 'STREAMKEEP_MAX_LIVE_READS',
    help: 'most long-poll + SSE requests open at once; one more gets 503 with Retry-After',
    parse: integer(0),
    defaultText: `${DEFAULT_MAX_LIVE_READS}, sized by memory and ulimit -n`,
  },
  {
    key: 'maxLiveReadsPerClient',
    flags: '--max-live-reads-per-client <count>',
    env: 'STREAMKEEP_MAX_LIVE_READS_PER_CLIENT',
    help: 'most long-poll + SSE requests one client address holds open; one more gets 429 (0 = unlimited; leave off behind a proxy)',
    parse: optionalCount,
  },
  {
    key: 'maxInFlight',
    flags: '--max-in-flight <count>',
    env: 'STREAMKEEP_MAX_IN_FLIGHT',
    help: 'most requests using storage at once; more wait in a queue (see --queue-target)',
    parse: integer(1),
    defaultText: `${DEFAULT_MAX_IN_FLIGHT}, sized by memory`,
  },
  {
    key: 'maxQueued',
    flags: '--max-queued <count>',
    env: 'STREAMKEEP_MAX_QUEUED',
    help: 'most requests waiting for storage; one more gets 503 with Retry-After at once',
    parse: integer(0),
    defaultText: `${DEFAULT_MAX_QUEUED}, sized by memory`,
  },
  {
    key: 'queueTargetMs',
    flags: '--queue-target <ms>',
    env: 'STREAMKEEP_QUEUE_TARGET',
    help: 'queueing delay to stay under: once it has stayed above for 1 s, older waiters get 503 + Retry-After',
    parse: integer(1),
  },
  {
    key: 'sseKeepAliveMs',
    flags: '--sse-keep-alive <ms>',
    env: 'STREAMKEEP_SSE_KEEP_ALIVE',
    help: 'SSE keep-alive comment interval, in ms',
    parse: integer(10),
  },
  {
    key: 'sseReconnectMs',
    flags: '--sse-reconnect <ms>',
    env: 'STREAMKEEP_SSE_RECONNECT',
    help: 'close SSE connections after this long so clients reconnect (0 = never), in ms',
    parse: integer(0),
  },
  {
    key: 'corsOrigins',
    flags: '--cors-origins <list>',
    env: 'STREAMKEEP_CORS_ORIGINS',
    help: 'allowed CORS origins, comma-separated, or *',
    parse: origins,
  },
  {
    key: 'compression',
    flags: '--compression',
    env: 'STREAMKEEP_COMPRESSION',
    help: 'gzip read responses for clients that accept it; --no-compression to turn off',
    parse: parseBoolean,
    negatable: true,
  },
  {
    key: 'headersTimeoutMs',
    flags: '--headers-timeout <ms>',
    env: 'STREAMKEEP_HEADERS_TIMEOUT',
    help: 'time a client has to send its request headers, in ms',
    parse: integer(1),
  },
  {
    key: 'requestTimeoutMs',
    flags: '--request-timeout <ms>',
    env: 'STREAMKEEP_REQUEST_TIMEOUT',
    help: 'time a client has to send its whole request (headers and body), in ms',
    parse: integer(1),
  },
  {
    key: 'keepAliveTimeoutMs',
    flags: '--keep-alive-timeout <ms>',
    env: 'STREAMKEEP_KEEP_ALIVE_TIMEOUT',
    help: 'how long an idle keep-alive connection stays open, in ms',
    parse: integer(1),
  },
  {
    key: 'shutdownTimeoutMs',
    flags: '--shutdown-timeout <ms>',
    env: 'STREAMKEEP_SHUTDOWN_TIMEOUT',
    help: 'grace period for in-flight requests on SIGTERM / SIGINT, in ms',
    parse: integer(0),
  },
  {
    key: 'logLevel',
    flags: '--log-level <level>',
    env: 'STREAMKEEP_LOG_LEVEL',
    help: 'pino log level: fatal, error, warn, info, debug, trace or silent',
    parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
  },
];

function describeDefault(v: unknown): string {
  if (v === undefined) return 'unlimited';
  return String(v);
}

/** The `streamkeep` command: parse with {@link parseServerConfig}. */
export function buildCommand(): Command {
  const cmd = new Command('streamkeep')
    .description(
      'Serve Durable Streams over HTTP on a Streamkeep storage backend.\n' +
        'Every flag has an environment variable; a flag given on the command line wins over the variable.',
    )
    .helpOption('-h, --help', 'show this help')
    .allowExcessArguments(false);
  for (const s of SETTINGS) {
    const def = DEFAULT_SERVER_CONFIG[s.key];
    const opt = new Option(
      s.flags,
      `${s.help} [env ${s.env}] (default: ${s.defaultText ?? describeDefault(def)})`,
    );
    cmd.addOption(opt);
    if (s.negatable) {
      const name = s.flags.slice(2);
      cmd.addOption(new Option(`--no-${name}`).hideHelp());
    }
  }
  return cmd;
}

/**
 * Resolves the configuration: defaults, overridden by environment variables, overridden by flags.
 *
 * @throws commander's `CommanderError` (unknown flags, `--help`; with `exitOverride`) or `InvalidArgumentError` (a bad
 *   value, naming its flag or environment variable).
 */
export function parseServerConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  configure?: (cmd: Command) => void,
): ServerConfig {
  const cmd = buildCommand();
  configure?.(cmd);
  cmd.parse(argv as string[], { from: 'user' });
  const flags = cmd.opts<Record<string, unknown>>();
  const out: Record<string, unknown> = { ...DEFAULT_SERVER_CONFIG };
  for (const s of SETTINGS) {
    const rawEnv = env[s.env];
    if (rawEnv !== undefined && rawEnv !== '') {
      try {
        out[s.key] = s.parse(rawEnv);
      } catch (err) {
        throw new InvalidArgumentError(`${s.env}: ${(err as Error).message}`);
      }
    }
    const attribute = new Option(s.flags).attributeName();
    if (cmd.getOptionValueSource(attribute) !== 'cli') continue;
    const value = flags[attribute];
    if (s.negatable) {
      out[s.key] = value === true;
      continue;
    }
    try {
      out[s.key] = s.parse(String(value));
    } catch (err) {
      throw new InvalidArgumentError(`${s.flags.split(' ')[0]}: ${(err as Error).message}`);
    }
  }
  if (out.postgresUrl === undefined) {
    const fallback = env.DATABASE_URL;
    if (fallback !== undefined && fallback !== '') {
      try {
        out.postgresUrl = postgresUrl(fallback);
      } catch (err) {
        if (out.storage === 'postgres')
          throw new InvalidArgumentError(`DATABASE_URL: ${(err as Error).message}`);
      }
    }
  }
  if (out.storage === 'postgres' && out.postgresUrl === undefined) {
    throw new InvalidArgumentError(
      '--storage postgres needs a connection URL: --postgres-url, STREAMKEEP_POSTGRES_URL or DATABASE_URL',
    );
  }
  return out as unknown as ServerConfig;
}
