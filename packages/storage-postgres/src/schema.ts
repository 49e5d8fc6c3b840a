import { createHash } from 'node:crypto';
import type pg from 'pg';

/** The schema version this release writes; older schemas are migrated forward on open, newer ones refused. */
export const SCHEMA_VERSION = 2;

/** Rows of the byte-usage counter; commits on different streams update different rows. */
export const USAGE_SHARDS = 16;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * Checks a schema name and returns it quoted for SQL.
 *
 * @throws RangeError for anything but a plain identifier of at most 63 characters.
 */
export function quoteSchema(schema: string): string {
  if (typeof schema !== 'string' || !IDENTIFIER.test(schema) || schema.toLowerCase().startsWith('pg_')) {
    throw new RangeError(
      `schema must be an identifier of letters, digits and underscores (at most 63, not starting with a digit or pg_), got ${JSON.stringify(schema)}`,
    );
  }
  return `"${schema}"`;
}

/** The LISTEN/NOTIFY channel of a schema: a short hash, so every schema name fits PostgreSQL's 63-byte limit. */
export function channelOf(schema: string): string {
  return `streamkeep_${createHash('sha256').update(schema).digest('hex').slice(0, 24)}`;
}

/** The channel of subscription changes (created, reconfigured, deleted) in `schema`, beside the streams' one. */
export function subscriptionChannelOf(schema: string): string {
  return `${channelOf(schema)}_subs`;
}

/** A 64-bit advisory-lock key for schema migrations, as a decimal string. */
function migrationLockKey(schema: string): string {
  return createHash('sha256').update(`streamkeep-migrate:${schema}`).digest().readBigInt64BE(0).toString();
}

/**
 * Migrations by target version. Each runs in the migration transaction; `s` is the quoted schema.
 *
 * Names, `Stream-Seq` values and producer ids are stored without loss whatever the database's encoding and
 * collation: names as their UTF-8 bytes (`bytea` compares bytewise, which is the contract's listing order), the
 * other two as JSON string literals (exact for every JavaScript string, NUL and lone surrogates included; they are
 * only compared for equality in SQL). Times are `float8` epoch milliseconds because the injected clock decides them.
 */
const MIGRATIONS: Record<number, (s: string) => string> = {
  1: (s) => `
    CREATE TABLE ${s}.streams (
      id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      name            bytea NOT NULL UNIQUE,
      content_type    text NOT NULL,
      ttl_seconds     bigint,
      expires_at      float8,
      created_closed  boolean NOT NULL,
      closed          boolean NOT NULL,
      tombstone       boolean NOT NULL DEFAULT false,
      ref_count       integer NOT NULL DEFAULT 0,
      parent_id       bigint,
      fork_source     bytea,
      fork_offset     text,
      fork_sub_offset bigint,
      base_seq        bigint NOT NULL,
      base_bytes      bigint NOT NULL,
      message_count   bigint NOT NULL DEFAULT 0,
      total_bytes     bigint NOT NULL DEFAULT 0,
      created_at      float8 NOT NULL,
      updated_at      float8,
      last_seq        text
    );
    CREATE INDEX streams_expiry ON ${s}.streams (expires_at) WHERE NOT tombstone AND expires_at IS NOT NULL;
    CREATE TABLE ${s}.messages (
      stream_id   bigint NOT NULL,
      seq         bigint NOT NULL,
      byte_offset bigint NOT NULL,
      data        bytea NOT NULL,
      PRIMARY KEY (stream_id, seq)
    );
    CREATE TABLE ${s}.producers (
      stream_id   bigint NOT NULL,
      producer_id text NOT NULL,
      epoch       bigint NOT NULL,
      last_seq    bigint NOT NULL,
      updated_at  float8 NOT NULL,
      PRIMARY KEY (stream_id, producer_id)
    );
    CREATE TABLE ${s}.usage (
      shard integer PRIMARY KEY,
      bytes bigint NOT NULL
    );
    INSERT INTO ${s}.usage (shard, bytes) SELECT g, 0 FROM generate_series(0, ${USAGE_SHARDS - 1}) AS g;
  `,
  // Subscriptions (`subscriptions.ts`) and the secrets of `loadOrCreateSecret` (`secrets.ts`). A record is stored
  // whole, as the JSON the contract's codec reads back; the columns beside it only serve the listing's filters and
  // are rewritten with it. Ids and member paths are UTF-8 `bytea`, like stream names: bytewise order is the
  // contract's order, and NUL survives.
  2: (s) => `
    CREATE TABLE ${s}.subscriptions (
      id               bytea PRIMARY KEY,
      version          bigint NOT NULL,
      record           text NOT NULL,
      has_pattern      boolean NOT NULL,
      lease_expires_at float8
    );
    CREATE INDEX subscriptions_lease ON ${s}.subscriptions (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
    CREATE TABLE ${s}.subscription_members (
      path bytea NOT NULL,
      id   bytea NOT NULL,
      PRIMARY KEY (path, id)
    );
    CREATE INDEX subscription_members_id ON ${s}.subscription_members (id);
    CREATE TABLE ${s}.secrets (
      name  text PRIMARY KEY,
      value text NOT NULL
    );
  `,
};

/**
 * Creates the schema or migrates it to {@link SCHEMA_VERSION}, under an advisory lock so that instances starting
 * together migrate once.
 *
 * @throws Error when the schema was written by a newer release.
 */
export async function migrate(client: pg.ClientBase, schema: string): Promise<void> {
  const s = quoteSchema(schema);
  // Fast path for every start but the first: the schema is there and current, so no DDL and no lock are needed.
  const found = await client.query(`SELECT value FROM ${s}.meta WHERE key = 'schema_version'`).then(
    (result) => (result.rows[0] as { value: string } | undefined)?.value,
    (err: { code?: string }) => {
      if (err.code === '42P01' || err.code === '3F000') return undefined; // no table / no schema yet
      throw err;
    },
  );
  if (found !== undefined && Number(found) === SCHEMA_VERSION) return;
  try {
    const results = (await client.query(
      `BEGIN;
     SELECT pg_advisory_xact_lock(${migrationLockKey(schema)});
     CREATE SCHEMA IF NOT EXISTS ${s};
     CREATE TABLE IF NOT EXISTS ${s}.meta (key text PRIMARY KEY, value text NOT NULL);
     SELECT value FROM ${s}.meta WHERE key = 'schema_version';`,
    )) as unknown as pg.QueryResult[];
    const row = results[results.length - 1]?.rows[0] as { value: string } | undefined;
    const current = row === undefined ? 0 : Number(row.value);
    if (current > SCHEMA_VERSION) {
      throw new Error(
        `schema ${schema} has version ${current}, newer than this release of @streamkeep/storage-postgres supports (${SCHEMA_VERSION})`,
      );
    }
    if (current < SCHEMA_VERSION) {
      let sql = '';
      for (let v = current + 1; v <= SCHEMA_VERSION; v++) sql += MIGRATIONS[v]!(s);
      sql += `INSERT INTO ${s}.meta (key, value) VALUES ('schema_version', '${SCHEMA_VERSION}')
              ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;`;
      await client.query(sql);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
