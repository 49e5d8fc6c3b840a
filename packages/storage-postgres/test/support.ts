import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

/** The URL of the test server (see global-setup.ts). */
export function pgUrl(): string {
  return inject('pgUrl');
}

/** A schema name no other test (or test process) uses. */
export function freshSchema(prefix = 't'): string {
  return `${prefix}_${process.pid}_${randomBytes(6).toString('hex')}`;
}

let admin: pg.Pool | undefined;

/** Drops a test schema with everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  admin ??= new pg.Pool({ connectionString: pgUrl(), max: 2 });
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

/** Runs one statement as the test administrator (to inspect or damage state behind the storage's back). */
export async function adminQuery<R extends pg.QueryResultRow>(
  text: string,
  values?: unknown[],
): Promise<R[]> {
  admin ??= new pg.Pool({ connectionString: pgUrl(), max: 2 });
  return (await admin.query<R>(text, values)).rows;
}
