import {
  type ByteLimits,
  type Clock,
  type CommitObserver,
  resolveByteLimits,
  type StorageCapabilities,
  systemClock,
} from '@streamkeep/storage';
import pg from 'pg';
import { quoteSchema } from './schema.js';

// What `PostgresStorage.open` accepts, its defaults and checks, how the options become the pool's and the LISTEN
// client's connection settings, and the capabilities this backend declares.

/** Connection-pool settings passed through to `pg.Pool` (and, minus the pool-only ones, to the LISTEN client). */
export type PostgresPoolOptions = Omit<pg.PoolConfig, 'connectionString' | 'types'>;

/** Options of {@link PostgresStorage.open}. */
export interface PostgresStorageOptions {
  /** A libpq-style connection URL, e.g. `postgresql://user:pass@db:5432/app`. Optional when `pool` names the host. */
  readonly connectionString?: string | undefined;
  /** The schema holding Streamkeep's tables; created or migrated on open. @default 'streamkeep' */
  readonly schema?: string | undefined;
  /**
   * Source of "now" for expiry, TTL renewal, timestamps and producer pruning — and, when given, for subscriptions.
   * @default systemClock for streams; the database's clock for subscriptions (leases, `createdAt`)
   */
  readonly clock?: Clock | undefined;
  /** Payload bytes across all streams of the schema, enforced across instances. @default Infinity */
  readonly maxTotalBytes?: number | undefined;
  /** Payload bytes stored locally by one stream. @default Infinity */
  readonly maxStreamBytes?: number | undefined;
  /** The largest single message accepted (`MESSAGE_TOO_LARGE` above). At most 512 MiB. @default 256 MiB */
  readonly maxMessageBytes?: number | undefined;
  /** How often a transaction that hit a serialization failure or deadlock is run again. @default 10 */
  readonly maxRetries?: number | undefined;
  /** Pool settings (`max`, `idleTimeoutMillis`, `connectionTimeoutMillis`, `ssl`, …). @default { max: 10 } */
  readonly pool?: PostgresPoolOptions | undefined;
  /**
   * Called after each applied commit (one per transaction), `syncMs` being the time its last statement and COMMIT
   * took. See `CommitReport` in `@streamkeep/storage`.
   */
  readonly onCommit?: CommitObserver | undefined;
}

export const CAPABILITIES: StorageCapabilities = Object.freeze({
  durable: true,
  forks: true,
  expiry: true,
  producers: true,
  listStreams: true,
  byteLimits: true,
  multiInstance: true,
  subscriptions: true,
});

const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024;
const HARD_MAX_MESSAGE_BYTES = 512 * 1024 * 1024;

const POOL_ONLY_KEYS = [
  'max',
  'min',
  'idleTimeoutMillis',
  'allowExitOnIdle',
  'maxUses',
  'maxLifetimeSeconds',
  'log',
  'Promise',
] as const;

/** Parses int8 as a JavaScript number: every count, offset and size stays below 2^53. */
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === 20 && format !== 'binary') return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** The options with every default filled in and every value checked. */
export interface ResolvedOptions {
  /** The schema's name, unquoted. */
  readonly schema: string;
  readonly clock: Clock;
  /**
   * True when no clock was given: subscriptions then read "now" from the database (one clock for every instance's
   * leases) rather than from {@link ResolvedOptions.clock}.
   */
  readonly databaseClock: boolean;
  readonly onCommit: CommitObserver | undefined;
  readonly limits: ByteLimits;
  readonly maxMessageBytes: number;
  readonly maxRetries: number;
  readonly pool: pg.PoolConfig;
  /** The pool settings without the pool-only keys, for the LISTEN connection. */
  readonly client: pg.ClientConfig;
}

/** @throws RangeError for an invalid schema name, byte limit, `maxMessageBytes` or `maxRetries`. */
export function resolveOptions(options: PostgresStorageOptions): ResolvedOptions {
  const schema = options.schema ?? 'streamkeep';
  quoteSchema(schema);
  const limits = resolveByteLimits(options);
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (
    !Number.isSafeInteger(maxMessageBytes) ||
    maxMessageBytes < 0 ||
    maxMessageBytes > HARD_MAX_MESSAGE_BYTES
  ) {
    throw new RangeError(`maxMessageBytes must be an integer between 0 and ${HARD_MAX_MESSAGE_BYTES}`);
  }
  const maxRetries = options.maxRetries ?? 10;
  if (!Number.isSafeInteger(maxRetries) || maxRetries < 0) throw new RangeError('maxRetries must be >= 0');

  const pool: pg.PoolConfig = { max: 10, ...options.pool, types: TYPES };
  if (options.connectionString !== undefined) pool.connectionString = options.connectionString;
  const client: Record<string, unknown> = { ...pool };
  for (const key of POOL_ONLY_KEYS) delete client[key];

  return {
    schema,
    clock: options.clock ?? systemClock,
    databaseClock: options.clock === undefined,
    onCommit: options.onCommit,
    limits,
    maxMessageBytes,
    maxRetries,
    pool,
    client: client as pg.ClientConfig,
  };
}
