import { checkFound } from '@streamkeep/storage';
import type { Database } from './database.js';
import { accessViewOf, STREAM_COLUMNS, type StreamRow } from './rows.js';
import type { Tx } from './transaction.js';

// Finding stream rows: by name (outside a transaction, or locked inside one) and a stream's fork lineage.

/** The row named `name`, visible or not, read outside any transaction. */
export async function rowByName(db: Database, name: string): Promise<StreamRow | undefined> {
  const key = nameKey(name);
  const rows = await db.queryOnce<StreamRow>(
    `SELECT ${STREAM_COLUMNS} FROM ${db.s}.streams WHERE name = decode('${key}', 'hex')`,
  );
  return rows[0];
}

/** The row named `name` if the contract lets callers see it; otherwise throws its access error. */
export async function visibleRow(db: Database, name: string): Promise<StreamRow> {
  const row = await rowByName(db, name);
  return checkFound(name, row && accessViewOf(row), db.clock.now()).row;
}

/** The row named `name`, locked (`FOR UPDATE`) for the rest of the transaction. */
export async function lockByName(tx: Tx, name: string): Promise<StreamRow | undefined> {
  const key = nameKey(name);
  const rows = await tx.query<StreamRow>(
    `SELECT ${STREAM_COLUMNS} FROM ${tx.s}.streams WHERE name = decode('${key}', 'hex') FOR UPDATE`,
  );
  return rows[0];
}

/** The stream named `name` followed by its fork ancestors, nearest first. */
export async function chainByName(tx: Tx, name: string): Promise<StreamRow[]> {
  const key = nameKey(name);
  return chain(tx, `name = decode('${key}', 'hex')`);
}

/** The stream that `anchor` (an SQL condition on `streams`) selects, followed by its fork ancestors, nearest first. */
export async function chain(tx: Tx, anchor: string): Promise<StreamRow[]> {
  return tx.query<StreamRow>(
    `WITH RECURSIVE chain AS (
       SELECT ${STREAM_COLUMNS}, 0 AS depth FROM ${tx.s}.streams WHERE ${anchor}
       UNION ALL
       SELECT ${STREAM_COLUMNS.split(', ')
         .map((c) => `p.${c}`)
         .join(', ')}, chain.depth + 1
         FROM ${tx.s}.streams p JOIN chain ON p.id = chain.parent_id
     ) SELECT * FROM chain ORDER BY depth`,
  );
}

/** The hex of a (validated) name's UTF-8 bytes for an inline literal. */
function nameKey(name: string): string {
  return Buffer.from(name, 'utf8').toString('hex');
}
