import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRETS_FILE } from '../src/subscriptions/keys.js';
import { compileCli } from './helpers.js';
import { json } from './subscriptions-helpers.js';
import {
  pendingPaths,
  type ReceivedWake,
  type StreamkeepProcess,
  spawnStreamkeep,
  startWebhookReceiver,
  streamOf,
  until,
  verifyWebhookSignature,
  type WebhookReceiver,
} from './subscriptions-restart-helpers.js';

// Issue #13, "what it must show": on the file backend a subscription, its acked offsets, its membership and the
// signing key survive kill -9, and deliveries resume after restart — at least once, fenced by generation.
//
// One `streamkeep` process at a time over one data directory (fsync on), killed with SIGKILL twice: once at rest
// (a webhook wake delivered but not acked, a pull-wake claim half acked), once with a webhook delivery in flight.
// No step waits for a duration: every wait polls for an outcome. Leases are short (2–3 s) only so that those
// outcomes come soon; what the test asserts never depends on when they come.

const pkgDir = resolve(import.meta.dirname, '..');
const buildDir = join(pkgDir, '.restart-test-build');
let bin: string;

beforeAll(() => {
  bin = compileCli(buildDir);
}, 120_000);

afterAll(async () => {
  await rm(buildDir, { recursive: true, force: true });
});

/** URLs of one server process. */
function at(server: StreamkeepProcess) {
  const base = `${server.url}/v1/stream`;
  return {
    stream: (name: string) => `${base}/${name}`,
    ds: (rest: string) => `${base}/__ds/${rest}`,
  };
}

async function waitReady(server: StreamkeepProcess): Promise<void> {
  await until(async () => (await fetch(`${server.url}/readyz`)).status === 200, 60_000);
}

async function append(server: StreamkeepProcess, name: string, body: string): Promise<string> {
  const res = await fetch(at(server).stream(name), {
    method: 'POST',
    headers: { 'content-type': 'text/plain' },
    body,
  });
  expect(res.status).toBe(204);
  return res.headers.get('stream-next-offset')!;
}

async function tailOf(server: StreamkeepProcess, name: string): Promise<string> {
  const res = await fetch(at(server).stream(name), { method: 'HEAD' });
  expect(res.status).toBe(200);
  return res.headers.get('stream-next-offset')!;
}

/** GET of a subscription, with the one field that names the answering origin (its port) taken out. */
async function subscription(server: StreamkeepProcess, id: string) {
  const res = await json('GET', at(server).ds(`subscriptions/${id}`));
  expect(res.status).toBe(200);
  const doc = res.body;
  if (doc.webhook !== null) {
    expect(doc.webhook.signing.jwks_url).toBe(`${server.url}/v1/stream/__ds/jwks.json`);
    doc.webhook.signing.jwks_url = '<origin>/v1/stream/__ds/jwks.json';
  }
  return doc;
}

async function ackedOffset(server: StreamkeepProcess, id: string, path: string): Promise<string | undefined> {
  const doc = await subscription(server, id);
  return (doc.streams as { path: string; acked_offset: string }[]).find((s) => s.path === path)?.acked_offset;
}

/** Waits for a webhook wake received after `from` that satisfies `test`. */
function nextWake(
  receiver: WebhookReceiver,
  from: number,
  test: (wake: ReceivedWake) => boolean,
): Promise<ReceivedWake> {
  return until(() => receiver.received.slice(from).find(test), 60_000);
}

/** POSTs a webhook callback with the token and wake of `wake`. */
function callback(server: StreamkeepProcess, wake: ReceivedWake, acks: { stream: string; offset: string }[]) {
  return json(
    'POST',
    at(server).ds(`subscriptions/${wake.body.subscription_id}/callback`),
    { wake_id: wake.body.wake_id, generation: wake.body.generation, acks, done: true },
    { authorization: `Bearer ${wake.body.callback_token}` },
  );
}

/**
 * Acks every pending stream of the newest wake (received after `from`, satisfying `test`) through the callback
 * with `done`. A wake whose lease ran out before the callback (a slow machine) is fenced and superseded by the
 * next delivery: then the newer one is acked.
 */
async function ackNewest(
  server: StreamkeepProcess,
  receiver: WebhookReceiver,
  from: number,
  test: (wake: ReceivedWake) => boolean,
): Promise<ReceivedWake> {
  let tried = -1;
  return until(async () => {
    const i = receiver.received.findLastIndex((w, j) => j >= from && j > tried && test(w));
    if (i < 0) return undefined;
    tried = i;
    const wake = receiver.received[i]!;
    const acks = (wake.body.streams as { path: string; tail_offset: string; has_pending: boolean }[])
      .filter((s) => s.has_pending)
      .map((s) => ({ stream: s.path, offset: s.tail_offset }));
    const res = await callback(server, wake, acks);
    if (res.status === 200) return wake;
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('FENCED');
    return undefined;
  }, 60_000);
}

/** The pull-wake claim answer. */
// biome-ignore lint/suspicious/noExplicitAny: checked field by field
type Claim = any;

/** Claims `puller` as `worker` and acks `path` (a heartbeat, no `done`); again if the lease ran out in between. */
async function claimAndAck(server: StreamkeepProcess, worker: string, path: string): Promise<Claim> {
  return until(async () => {
    const claim = await json('POST', at(server).ds('subscriptions/puller/claim'), { worker });
    if (claim.status !== 200) {
      expect([claim.status, claim.body.error.code]).toEqual([409, 'ALREADY_CLAIMED']);
      return undefined;
    }
    const ack = await json(
      'POST',
      at(server).ds('subscriptions/puller/ack'),
      {
        wake_id: claim.body.wake_id,
        generation: claim.body.generation,
        acks: [{ stream: path, offset: streamOf(claim.body.streams, path)!.tail_offset }],
      },
      { authorization: `Bearer ${claim.body.token}` },
    );
    if (ack.status === 200) return claim.body;
    expect(ack.body.error.code).toBe('FENCED');
    return undefined;
  }, 60_000);
}

/** The wake events in the pull-wake subscription's wake stream. */
async function wakeEvents(
  server: StreamkeepProcess,
): Promise<{ type: string; subscription_id: string; stream: string; generation: number }[]> {
  const res = await json('GET', `${at(server).stream('wakes')}?offset=-1`);
  expect(res.status).toBe(200);
  return res.body;
}

/** `streamkeep_webhook_delivery_attempts_total{outcome}` as the process serves it at `/metrics` (0 before any). */
async function webhookAttempts(server: StreamkeepProcess, outcome: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`streamkeep_webhook_delivery_attempts_total{outcome="${outcome}"} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

describe('subscriptions on the file backend survive kill -9 (a real streamkeep process)', () => {
  let dir: string;
  let receiver: WebhookReceiver;
  let server: StreamkeepProcess | undefined;
  const start = async () => {
    // fsync on (the default, stated here): an acknowledged write is on disk before its answer.
    // A long webhook timeout keeps a held delivery in flight until the kill.
    server = await spawnStreamkeep(bin, ['--data-dir', dir, '--webhook-timeout', '120000'], {
      STREAMKEEP_SYNC_ON_APPEND: 'true',
    });
    await waitReady(server);
    return server;
  };

  // State carried from one phase to the next, as a client would keep it.
  let jwksBefore: { keys: Record<string, string>[] };
  let before: { hook: unknown; puller: unknown };
  let inboxAcked: string;
  let ordersAOrigin: string;
  let firstClaim: Claim;
  let staleWake: ReceivedWake;
  let receivedAtKill: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'streamkeep-restart-'));
    receiver = await startWebhookReceiver('ok');
  });

  afterAll(async () => {
    await server?.kill();
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('before the first kill: subscriptions made, wakes acked and left unacked, a claim half acked', {
    timeout: 120_000,
  }, async () => {
    const s = await start();
    for (const name of ['inbox/x', 'orders/a', 'orders/b', 'jobs/1', 'jobs/2', 'extra/y', 'extra/z']) {
      const res = await fetch(at(s).stream(name), {
        method: 'PUT',
        headers: { 'content-type': 'text/plain' },
      });
      expect(res.status).toBe(201);
    }
    const wakes = await fetch(at(s).stream('wakes'), {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
    });
    expect(wakes.status).toBe(201);

    const hook = await json('PUT', at(s).ds('subscriptions/hook'), {
      type: 'webhook',
      pattern: 'orders/*',
      streams: ['inbox/x'],
      webhook: { url: receiver.url },
      lease_ttl_ms: 2000,
      description: 'restart test',
    });
    expect(hook.status).toBe(201);
    const puller = await json('PUT', at(s).ds('subscriptions/puller'), {
      type: 'pull-wake',
      streams: ['jobs/1', 'jobs/2'],
      wake_stream: 'wakes',
      lease_ttl_ms: 3000,
    });
    expect(puller.status).toBe(201);
    // Membership changed after creation: one explicit stream added for good, one added and removed again.
    expect(
      (await json('POST', at(s).ds('subscriptions/hook/streams'), { streams: ['extra/y', 'extra/z'] }))
        .status,
    ).toBe(204);
    expect(
      (await json('DELETE', at(s).ds(`subscriptions/hook/streams/${encodeURIComponent('extra/z')}`))).status,
    ).toBe(204);
    jwksBefore = (await json('GET', at(s).ds('jwks.json'))).body;
    expect(jwksBefore.keys).toHaveLength(1);
    expect(jwksBefore.keys[0]!.kid).toMatch(/^ds_/);

    // A wake of inbox/x, acked through the callback.
    const inboxTail = await append(s, 'inbox/x', 'one');
    const first = await nextWake(receiver, 0, (w) => pendingPaths(w).includes('inbox/x'));
    expect(verifyWebhookSignature(jwksBefore, first.signature, first.rawBody)).toBe(true);
    expect(streamOf(first.body.streams, 'inbox/x')!.tail_offset).toBe(inboxTail);
    await ackNewest(s, receiver, 0, (w) => pendingPaths(w).includes('inbox/x'));
    expect(await ackedOffset(s, 'hook', 'inbox/x')).toBe(inboxTail);
    inboxAcked = inboxTail;

    // A wake of orders/a (a glob member), received and never acked: the receiver answers 200 without `done`.
    ordersAOrigin = (await ackedOffset(s, 'hook', 'orders/a'))!;
    const from = receiver.received.length;
    await append(s, 'orders/a', 'two');
    await nextWake(receiver, from, (w) => pendingPaths(w).includes('orders/a'));

    // Pull-wake: both members get data; a worker claims and acks jobs/1 only (a heartbeat: the wake stays its).
    await append(s, 'jobs/1', 'j1');
    await append(s, 'jobs/2', 'j2');
    await until(async () => (await wakeEvents(s)).length > 0);
    firstClaim = await claimAndAck(s, 'w1', 'jobs/1');
    expect(streamOf(firstClaim.streams, 'jobs/2')!.has_pending).toBe(true);
    expect(await ackedOffset(s, 'puller', 'jobs/1')).toBe(
      streamOf(firstClaim.streams, 'jobs/1')!.tail_offset,
    );

    before = { hook: await subscription(s, 'hook'), puller: await subscription(s, 'puller') };
    expect(before.hook).toMatchObject({
      type: 'webhook',
      pattern: 'orders/*',
      status: 'active',
      streams: [
        { path: 'extra/y', link_type: 'explicit' },
        { path: 'inbox/x', link_type: 'explicit', acked_offset: inboxAcked },
        { path: 'orders/a', link_type: 'glob', acked_offset: ordersAOrigin },
        { path: 'orders/b', link_type: 'glob' },
      ],
    });

    await s.kill();
    receivedAtKill = receiver.received.length;
    // The newest wake the receiver holds a token for: current when the process died.
    staleWake = receiver.received[receivedAtKill - 1]!;
    expect(pendingPaths(staleWake)).toContain('orders/a');
    // The signing key sits in the data directory, readable by its owner only.
    expect((await stat(join(dir, SECRETS_FILE))).mode & 0o777).toBe(0o600);
  });

  it('after restart: state exactly as acknowledged, same key, the unacked wake delivered again, stale tokens fenced', {
    timeout: 120_000,
  }, async () => {
    const s = await start();
    // Wakes received from here on come from this process: a POST the killed one sent just before dying reaches the
    // receiver within moments of the kill, long before this one is ready.
    const sinceReady = receiver.received.length;
    // Subscriptions, membership (explicit and glob-linked) and acked offsets: exactly as before the kill.
    expect(await subscription(s, 'hook')).toEqual(before.hook);
    expect(await subscription(s, 'puller')).toEqual(before.puller);
    // The same key, served under the same kid.
    expect((await json('GET', at(s).ds('jwks.json'))).body).toEqual(jwksBefore);

    // The wake left unacked is delivered again (at least once), as a later generation, signed with the same key.
    // (The receiver answers without `done`, so the wake is delivered again each time its lease runs out: one delivered
    // before `sinceReady` is followed by another.)
    const again = await nextWake(
      receiver,
      sinceReady,
      (w) => pendingPaths(w).includes('orders/a') && w.body.generation > staleWake.body.generation,
    );
    expect(verifyWebhookSignature(jwksBefore, again.signature, again.rawBody)).toBe(true);
    expect(streamOf(again.body.streams, 'orders/a')!.acked_offset).toBe(ordersAOrigin);
    // What was acked is not offered again: inbox/x has nothing pending in any wake since the restart.
    for (const w of receiver.received.slice(receivedAtKill)) expect(pendingPaths(w)).not.toContain('inbox/x');

    // The callback token of the wake current at the kill names a superseded generation: fenced, and it moves nothing.
    const stale = await callback(s, staleWake, [
      { stream: 'orders/a', offset: streamOf(staleWake.body.streams, 'orders/a')!.tail_offset },
    ]);
    expect(stale.status).toBe(409);
    expect(stale.body.error.code).toBe('FENCED');
    expect(stale.headers.get('content-type')).toBe('application/problem+json');
    expect(await ackedOffset(s, 'hook', 'orders/a')).toBe(ordersAOrigin);
    // The new wake's token works.
    await ackNewest(s, receiver, sinceReady, (w) => pendingPaths(w).includes('orders/a'));
    expect(await ackedOffset(s, 'hook', 'orders/a')).toBe(await tailOf(s, 'orders/a'));

    // Pull-wake: the lease taken before the kill runs out by the storage's clock, and the work is offered again —
    // a wake event of a later generation in the wake stream.
    const reoffered = await until(async () =>
      (await wakeEvents(s)).find(
        (e) => e.subscription_id === 'puller' && e.generation > firstClaim.generation,
      ),
    );
    expect(reoffered).toMatchObject({ type: 'wake', stream: 'jobs/2' });
    const claim = await claimAndAck(s, 'w2', 'jobs/2');
    expect(claim.generation).toBeGreaterThanOrEqual(reoffered.generation);
    // Only jobs/2 is pending: jobs/1 was acked before the kill.
    expect(streamOf(claim.streams, 'jobs/1')).toMatchObject({
      acked_offset: streamOf(firstClaim.streams, 'jobs/1')!.tail_offset,
      has_pending: false,
    });
    expect(streamOf(claim.streams, 'jobs/2')).toMatchObject({
      acked_offset: streamOf(firstClaim.streams, 'jobs/2')!.acked_offset,
      has_pending: true,
    });
    // The first worker's token from before the kill is fenced.
    const staleAck = await json(
      'POST',
      at(s).ds('subscriptions/puller/ack'),
      {
        wake_id: firstClaim.wake_id,
        generation: firstClaim.generation,
        acks: [{ stream: 'jobs/2', offset: streamOf(firstClaim.streams, 'jobs/2')!.tail_offset }],
        done: true,
      },
      { authorization: `Bearer ${firstClaim.token}` },
    );
    expect([staleAck.status, staleAck.body.error.code]).toEqual([409, 'FENCED']);
    const done = await json(
      'POST',
      at(s).ds('subscriptions/puller/ack'),
      { wake_id: claim.wake_id, generation: claim.generation, done: true },
      { authorization: `Bearer ${claim.token}` },
    );
    // The lease may have run out on a slow machine; the ack of jobs/2 was made either way (claimAndAck).
    expect([200, 409]).toContain(done.status);
    expect(await ackedOffset(s, 'puller', 'jobs/2')).toBe(await tailOf(s, 'jobs/2'));

    // New work after the restart wakes as usual: an append to an explicit member, and a stream created now that the
    // pattern links.
    const from = receiver.received.length;
    const create = await fetch(at(s).stream('orders/c'), {
      method: 'PUT',
      headers: { 'content-type': 'text/plain' },
      body: 'c1',
    });
    expect(create.status).toBe(201);
    await append(s, 'inbox/x', 'after restart');
    const seen = new Set<string>();
    await until(() => {
      for (const w of receiver.received.slice(from)) for (const p of pendingPaths(w)) seen.add(p);
      return seen.has('orders/c') && seen.has('inbox/x');
    });
    const inboxWake = receiver.received.slice(from).find((w) => pendingPaths(w).includes('inbox/x'))!;
    expect(streamOf(inboxWake.body.streams, 'inbox/x')!.acked_offset).toBe(inboxAcked);
    expect((await subscription(s, 'hook')).streams).toContainEqual(
      expect.objectContaining({ path: 'orders/c', link_type: 'glob' }),
    );
    // The process counts the POSTs it made at /metrics, by the receiver's answer (all 200 so far). At most what the
    // receiver got since the kill: a POST of the killed process may have reached it too.
    const posted = await until(async () => (await webhookAttempts(s, '2xx')) || undefined);
    expect(posted).toBeLessThanOrEqual(receiver.received.length - receivedAtKill);
    expect(await webhookAttempts(s, '5xx')).toBe(0);

    await until(async () => {
      await ackNewest(s, receiver, from, (w) => pendingPaths(w).length > 0);
      return (
        (await ackedOffset(s, 'hook', 'orders/c')) === (await tailOf(s, 'orders/c')) &&
        (await ackedOffset(s, 'hook', 'inbox/x')) === (await tailOf(s, 'inbox/x'))
      );
    }, 60_000);
  });

  it('killed with a webhook delivery in flight: the wake is delivered again after restart and the old one fenced', {
    timeout: 120_000,
  }, async () => {
    const s = server!;
    receiver.mode = 'hold';
    const from = receiver.received.length;
    const ordersBOrigin = (await ackedOffset(s, 'hook', 'orders/b'))!;
    const ordersBTail = await append(s, 'orders/b', 'b1');
    const inFlight = await until(
      () => receiver.held.find((w) => pendingPaths(w).includes('orders/b')),
      60_000,
    );
    expect(receiver.received.length).toBeGreaterThan(from);
    await s.kill();

    // This time the receiver answers `{ done: true }`: the wake is acked by the answer itself.
    receiver.mode = 'done';
    const heldAtKill = receiver.received.length;
    const t = await start();
    const again = await nextWake(
      receiver,
      heldAtKill,
      (w) => pendingPaths(w).includes('orders/b') && w.body.generation > inFlight.body.generation,
    );
    expect(verifyWebhookSignature(jwksBefore, again.signature, again.rawBody)).toBe(true);
    expect(streamOf(again.body.streams, 'orders/b')).toMatchObject({
      acked_offset: ordersBOrigin,
      tail_offset: ordersBTail,
    });
    await until(async () => (await ackedOffset(t, 'hook', 'orders/b')) === ordersBTail);
    // The token of the delivery cut off by the kill is fenced.
    const stale = await callback(t, inFlight, [{ stream: 'orders/b', offset: ordersBTail }]);
    expect([stale.status, stale.body.error.code]).toEqual([409, 'FENCED']);

    // Everything is acked at its tail: nothing is left to offer.
    const doc = await subscription(t, 'hook');
    for (const member of doc.streams as { path: string; acked_offset: string }[]) {
      expect(member.acked_offset).toBe(await tailOf(t, member.path));
    }
    expect(doc.status).toBe('active');
  });
});
