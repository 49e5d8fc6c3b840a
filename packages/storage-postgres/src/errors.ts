import { isStorageError, StorageError } from '@streamkeep/storage';

/** SQLSTATEs after which the whole transaction is run again: the database undid it and a retry can succeed. */
const RETRYABLE_SQLSTATES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
]);

/** Node socket errors that mean the server could not be reached or the connection broke. */
const NETWORK_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** True for errors after which the transaction is retried (serialization failures, deadlocks). */
export function isRetryable(err: unknown): boolean {
  const code = sqlState(err);
  return code !== undefined && RETRYABLE_SQLSTATES.has(code);
}

/** Unique constraints whose violation means another transaction created the same thing first. */
const CREATE_RACE_CONSTRAINTS = new Set([
  'streams_name_key', // two instances created one stream name at once
  'subscriptions_pkey', // two mutations inserted the record of one subscription id at once
]);

/**
 * True when a create lost a race on a unique constraint: run again, the transaction finds the winner's row and
 * decides against it.
 */
export function isNameRace(err: unknown): boolean {
  return (
    sqlState(err) === '23505' &&
    CREATE_RACE_CONSTRAINTS.has((err as { constraint?: unknown }).constraint as string)
  );
}

/**
 * Maps anything thrown while talking to PostgreSQL onto the contract's backend-health codes. Storage errors and
 * programmer errors (`TypeError`, `RangeError` raised by our own argument checks) pass through unchanged.
 */
export function toStorageError(err: unknown): unknown {
  if (isStorageError(err)) return err;
  const code = sqlState(err);
  const isDatabaseError = typeof (err as { severity?: unknown } | null)?.severity === 'string';
  if (!isDatabaseError && (err instanceof TypeError || err instanceof RangeError)) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (code !== undefined) {
    if (code === '53100' || code === '53400') {
      return new StorageError('INSUFFICIENT_STORAGE', `PostgreSQL is out of space: ${message}`, {
        cause: err,
      });
    }
    if (
      code.startsWith('08') || // connection_exception
      code.startsWith('57P') || // admin/crash shutdown, cannot connect now
      code.startsWith('53') || // out of memory, too many connections
      code === '57014' || // query_canceled (statement_timeout)
      code === '55P03' || // lock_not_available (lock_timeout)
      code === '25006' || // read_only_sql_transaction: a standby after failover
      RETRYABLE_SQLSTATES.has(code) ||
      NETWORK_ERRNOS.has(code)
    ) {
      return new StorageError('UNAVAILABLE', `PostgreSQL is unavailable: ${message}`, { cause: err });
    }
    if (code === 'XX001' || code === 'XX002') {
      return new StorageError('CORRUPTED', `PostgreSQL reports corrupted data: ${message}`, { cause: err });
    }
  }
  if (
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection closed|not queryable/i.test(
      message,
    )
  ) {
    return new StorageError('UNAVAILABLE', `PostgreSQL is unavailable: ${message}`, { cause: err });
  }
  return new StorageError('INTERNAL', `PostgreSQL storage failure: ${message}`, { cause: err });
}
