import {
  formatOffset,
  planAck,
  planAddStreams,
  planClaim,
  planCreateSubscription,
  planRemoveStream,
  planWake,
  type SubscriptionInput,
  type SubscriptionRecord,
  type SubscriptionTail,
} from '@streamkeep/storage';
import { codeOf } from '@streamkeep/storage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresStorage, type PostgresStorageOptions, SCHEMA_VERSION } from '../src/index.js';
import { adminQuery, dropSchema, freshSchema, pgUrl } from './support.js';

// Subscriptions shared by instances: two `PostgresStorage` objects (two pools) over one schema stand for two server
// instances. No clock is injected, so leases run on the database's clock, as in production.

const T = 'text/plain';
const at = (n: number) => formatOffset(n, n * 3);
const PULL: SubscriptionInput = {
  type: 'pull-wake',
  streams: ['a', 'b'],
  wakeStream: 'wake',
  leaseTtlMs: 1000,
};

const opened: PostgresStorage[] = [];
const schemas: string[] = [];

async function open(schema: string, extra: Partial<PostgresStorageOptions> = {}): Promise<PostgresStorage> {
  const storage = await PostgresStorage.open({
    connectionString: pgUrl(),
    schema,
    pool: { max: 4 },
    ...extra,
  });
  opened.push(storage);
  return storage;
}

async function pair(): Promise<[PostgresStorage, PostgresStorage]> {
  const schema = freshSchema('subs');
  schemas.push(schema);
  const a = await open(schema);
  return [a, await open(schema)];
}

function tails(a: number, b: number): SubscriptionTail[] {
  return [
    { path: 'a', offset: at(a) },
    { path: 'b', offset: at(b) },
  ];
}

/** The member rows of the side table, by subscription id, as the record's paths should be. */
async function memberRows(schema: string): Promise<Record<string, string[]>> {
  const rows = await adminQuery<{ id: Buffer; path: Buffer }>(
    `SELECT id, path FROM "${schema}".subscription_members ORDER BY id, path`,
  );
  const out: Record<string, string[]> = {};
  for (const row of rows) (out[row.id.toString('utf8')] ??= []).push(row.path.toString('utf8'));
  return out;
}

const paths = (record: SubscriptionRecord | undefined) => record?.members.map((m) => m.path);

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  for (const schema of schemas.splice(0)) await dropSchema(schema);
});

describe('subscriptions across two PostgresStorage instances', () => {
  it('a claim through A is ALREADY_CLAIMED through B', async () => {
    const [a, b] = await pair();
    await a.mutateSubscription(
      's',
      planCreateSubscription('s', { ...PULL, leaseTtlMs: 60_000 }, tails(1, 1)),
    );
    const claimed = await a.mutateSubscription(
      's',
      planClaim('s', { worker: 'w1', wakeId: 'k1', tails: tails(2, 1) }),
    );
    expect(claimed.wake).toMatchObject({ generation: 1, holder: 'w1', wakeId: 'k1' });

    const refused = await b
      .mutateSubscription('s', planClaim('s', { worker: 'w2', wakeId: 'k2', tails: tails(2, 1) }))
      .then(
        () => undefined,
        (err: unknown) => err as { code?: string; details?: unknown },
      );
    expect(refused?.code).toBe('ALREADY_CLAIMED');
    expect(refused?.details).toEqual({ currentHolder: 'w1', generation: 1 });
    expect(await b.getSubscription('s')).toEqual(claimed);

    // Claims racing through both instances: one worker wins, every other is told who holds the wake.
    await b.mutateSubscription(
      'r',
      planCreateSubscription('r', { ...PULL, leaseTtlMs: 60_000 }, tails(1, 1)),
    );
    const outcomes = await Promise.all(
      [a, b, a, b].map((storage, i) =>
        storage
          .mutateSubscription('r', planClaim('r', { worker: `w${i}`, wakeId: `c${i}`, tails: tails(2, 2) }))
          .then(
            (record) => ({ won: record.wake.holder }),
            (err: { code?: string; details?: { currentHolder?: string } }) => ({
              lost: `${err.code} ${err.details?.currentHolder}`,
            }),
          ),
      ),
    );
    const winners = outcomes.flatMap((o) => ('won' in o ? [o.won] : []));
    expect(winners.length).toBe(1);
    expect(outcomes.filter((o) => 'lost' in o)).toEqual(
      Array.from({ length: 3 }, () => ({ lost: `ALREADY_CLAIMED ${winners[0]}` })),
    );
  });

  it('an ack through B with a newer generation fences the stale worker on A', async () => {
    const [a, b] = await pair();
    await a.mutateSubscription('s', planCreateSubscription('s', PULL, tails(1, 1)));
    const first = await a.mutateSubscription(
      's',
      planClaim('s', { worker: 'w1', wakeId: 'k1', tails: tails(3, 1) }),
    );
    expect(first.wake.generation).toBe(1);
    // w1 stalls; its lease (1 s on the database's clock) runs out. Wait for that as a lease sweep would see it.
    const expired = async () => (await b.listSubscriptions({ withExpiredLease: true })).map((r) => r.id);
    for (let polls = 0; !(await expired()).includes('s'); polls++) {
      expect(polls).toBeLessThan(3_000);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const second = await b.mutateSubscription(
      's',
      planClaim('s', { worker: 'w2', wakeId: 'k2', tails: tails(3, 1) }),
    );
    expect(second.wake).toMatchObject({ generation: 2, holder: 'w2' });
    const acked = await b.mutateSubscription(
      's',
      planAck('s', { generation: 2, acks: [{ path: 'a', offset: at(3) }], done: true }),
    );

    // The stale worker on A: neither its heartbeat nor its (older) ack nor its done goes through.
    for (const request of [
      { generation: 1 },
      { generation: 1, acks: [{ path: 'a', offset: at(2) }] },
      { generation: 1, acks: [{ path: 'b', offset: at(1) }], done: true },
    ]) {
      const stale = await a.mutateSubscription('s', planAck('s', request)).then(
        () => undefined,
        (err: unknown) => err as { code?: string; details?: unknown },
      );
      expect(stale?.code).toBe('FENCED');
      expect(stale?.details).toEqual({ generation: 2 });
    }
    expect(await a.getSubscription('s')).toEqual(acked);
    expect(acked.members.find((m) => m.path === 'a')?.ackedOffset).toBe(at(3));
  });

  it('concurrent wakes through A and B on the same pending work raise exactly one wake', async () => {
    const [a, b] = await pair();
    await a.mutateSubscription(
      's',
      planCreateSubscription('s', { ...PULL, leaseTtlMs: 60_000 }, tails(1, 1)),
    );
    for (let round = 1; round <= 8; round++) {
      const work = tails(1 + round, 1);
      const outcomes = await Promise.all(
        [a, b, a, b].map((storage, i) =>
          storage.mutateSubscription('s', planWake({ wakeId: `r${round}-${i}`, tails: work })),
        ),
      );
      const woken = outcomes.filter((o) => o.woken);
      expect(woken.length).toBe(1);
      expect(outcomes.filter((o) => !o.woken).map((o) => (o.woken ? '' : o.reason))).toEqual([
        'live',
        'live',
        'live',
      ]);
      const record = (await b.getSubscription('s'))!;
      expect(record.wake.generation).toBe(round);
      expect(record).toEqual(woken[0]!.record);
      // The receiver finishes the wake through the other instance, so the next round has pending work again.
      const finisher = round % 2 === 0 ? a : b;
      await finisher.mutateSubscription(
        's',
        planAck('s', { generation: round, ackWakeTails: true, done: true }),
      );
    }
  });

  it('racing creates of one id on both instances: one creates, the others re-confirm', async () => {
    const [a, b] = await pair();
    for (let i = 0; i < 6; i++) {
      const id = `race-${i}`;
      const results = await Promise.all(
        [a, b, a, b].map((storage) =>
          storage.mutateSubscription(id, planCreateSubscription(id, PULL, tails(1, 1))),
        ),
      );
      expect(results.filter((r) => r.created).length).toBe(1);
      expect(new Set(results.map((r) => JSON.stringify(r.record))).size).toBe(1);
      expect((await a.getSubscription(id))?.version).toBe(1);
    }
  });

  it('loadOrCreateSecret: both instances get the first stored value', async () => {
    const [a, b] = await pair();
    let calls = 0;
    const make = (value: string) => () => {
      calls++;
      return value;
    };
    const [fromA, fromB] = await Promise.all([
      a.loadOrCreateSecret('signing-key', make('key-from-a')),
      b.loadOrCreateSecret('signing-key', make('key-from-b')),
    ]);
    expect(fromA).toBe(fromB);
    expect(['key-from-a', 'key-from-b']).toContain(fromA);
    calls = 0;
    expect(await b.loadOrCreateSecret('signing-key', make('other'))).toBe(fromA);
    expect(calls).toBe(0);
    // Names are independent, and any JavaScript string survives the round trip.
    const odd = 'nul\u0000 and lone \ud800 surrogate';
    expect(await a.loadOrCreateSecret(odd, make(odd))).toBe(odd);
    expect(await b.loadOrCreateSecret(odd, make('x'))).toBe(odd);
  });

  it('membership changes through either instance keep the member table equal to the records', async () => {
    const [a, b] = await pair();
    const schema = schemas[0]!;
    await a.mutateSubscription('s', planCreateSubscription('s', PULL, tails(1, 1)));
    await b.mutateSubscription('t', planCreateSubscription('t', { ...PULL, streams: ['b'] }, tails(1, 1)));
    await b.mutateSubscription('s', planAddStreams('s', [{ path: 'c', offset: at(0) }]));
    await a.mutateSubscription('s', planRemoveStream('s', 'a'));
    expect(await memberRows(schema)).toEqual({ s: ['b', 'c'], t: ['b'] });
    expect((await a.listSubscriptions({ member: 'b' })).map((r) => r.id)).toEqual(['s', 't']);
    expect((await b.listSubscriptions({ member: 'a' })).map((r) => r.id)).toEqual([]);
    expect((await b.listSubscriptions({ member: 'c', after: 'r', limit: 1 })).map(paths)).toEqual([
      ['b', 'c'],
    ]);
    expect(await b.deleteSubscription('s')).toBe(true);
    expect(await a.deleteSubscription('s')).toBe(false);
    expect(await memberRows(schema)).toEqual({ t: ['b'] });
    expect(await a.getSubscription('s')).toBeUndefined();
  });
});

describe('PostgresStorage subscriptions (one instance)', () => {
  it('a plan that throws rejects with exactly what it threw and writes nothing', async () => {
    const schema = freshSchema('subs');
    schemas.push(schema);
    const s = await open(schema);
    await s.mutateSubscription('s', planCreateSubscription('s', PULL, tails(1, 1)));
    const before = await s.getSubscription('s');
    const boom = new Error('boom');
    await expect(
      s.mutateSubscription('s', () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await s.getSubscription('s')).toEqual(before);
  });

  it('a damaged stored record is refused as CORRUPTED, never served', async () => {
    const schema = freshSchema('subs');
    schemas.push(schema);
    const s = await open(schema);
    await s.mutateSubscription('s', planCreateSubscription('s', PULL, tails(1, 1)));
    await adminQuery(`UPDATE "${schema}".subscriptions SET record = '{"id":"s","version":0}'`);
    expect(await codeOf(s.getSubscription('s'))).toBe('CORRUPTED');
    await adminQuery(`UPDATE "${schema}".subscriptions SET record = 'not json'`);
    expect(await codeOf(s.listSubscriptions())).toBe('CORRUPTED');
    expect(await codeOf(s.mutateSubscription('s', planWake({ wakeId: 'w', tails: tails(2, 2) })))).toBe(
      'CORRUPTED',
    );
  });

  it('loadOrCreateSecret refuses bad arguments with a TypeError and STORAGE_CLOSED after close', async () => {
    const schema = freshSchema('subs');
    schemas.push(schema);
    const s = await open(schema);
    await expect(s.loadOrCreateSecret('', () => 'v')).rejects.toBeInstanceOf(TypeError);
    await expect(s.loadOrCreateSecret(7 as never, () => 'v')).rejects.toBeInstanceOf(TypeError);
    await expect(s.loadOrCreateSecret('k', 'v' as never)).rejects.toBeInstanceOf(TypeError);
    await expect(s.loadOrCreateSecret('k', (() => 42) as never)).rejects.toBeInstanceOf(TypeError);
    expect(await adminQuery(`SELECT name FROM "${schema}".secrets`)).toEqual([]);
    await s.close();
    expect(await codeOf(s.loadOrCreateSecret('k', () => 'v'))).toBe('STORAGE_CLOSED');
  });

  it('a schema of version 1 is upgraded on open, keeping its streams', async () => {
    const schema = freshSchema('subs');
    schemas.push(schema);
    const first = await open(schema);
    await first.createStream('kept', { contentType: T, messages: [new TextEncoder().encode('hello')] });
    await first.close();
    // Version 2 only added tables, so taking them away leaves exactly what version 1 created.
    await adminQuery(
      `DROP TABLE "${schema}".subscriptions, "${schema}".subscription_members, "${schema}".secrets;
       UPDATE "${schema}".meta SET value = '1' WHERE key = 'schema_version'`,
    );
    const [a, b] = await Promise.all([open(schema), open(schema)]);
    expect(await adminQuery(`SELECT value FROM "${schema}".meta WHERE key = 'schema_version'`)).toEqual([
      { value: String(SCHEMA_VERSION) },
    ]);
    expect(SCHEMA_VERSION).toBe(2);
    expect(new TextDecoder().decode((await b.read('kept', '-1')).messages[0])).toBe('hello');
    await a.mutateSubscription('s', planCreateSubscription('s', PULL, tails(1, 1)));
    expect((await b.listSubscriptions({ member: 'a' })).map((r) => r.id)).toEqual(['s']);
  });
});
