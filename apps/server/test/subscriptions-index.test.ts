import {
  planAddStreams,
  planCreateSubscription,
  planRemoveStream,
  type SubscriptionInput,
  type SubscriptionRecord,
  ZERO_OFFSET,
} from '@streamkeep/storage';
import { MemoryStorage } from '@streamkeep/storage-memory';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadSubscriptionSecrets } from '../src/subscriptions/keys.js';
import { resolveSubscriptionSettings, type SubscriptionOptions } from '../src/subscriptions/options.js';
import { SubscriptionService } from '../src/subscriptions/service.js';
import { SubscriberIndex } from '../src/subscriptions/subscriber-index.js';
import { startReceiver, until } from './subscriptions-helpers.js';

// The in-process index stream → subscribers that routes an append to its subscriptions without a storage read: it
// must follow every change of membership, made through the service or through another instance of the store.

const T = 'application/octet-stream';
const logger = pino({ level: 'silent' });
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function service(storage: MemoryStorage, options: SubscriptionOptions = {}) {
  const secrets = await loadSubscriptionSecrets(storage, undefined, logger);
  const settings = resolveSubscriptionSettings({ sweepIntervalMs: 50, ...options });
  const s = new SubscriptionService(storage, secrets, settings, '/v1/stream', logger);
  await s.start();
  cleanups.push(() => s.close());
  return s;
}

function record(
  id: string,
  members: string[],
  type: 'webhook' | 'pull-wake' = 'webhook',
): SubscriptionRecord {
  const input: SubscriptionInput =
    type === 'webhook'
      ? { type, streams: members, webhookUrl: 'http://127.0.0.1:9/hook' }
      : { type, streams: members, wakeStream: 'wakes' };
  const tails = members.map((path) => ({ path, offset: ZERO_OFFSET }));
  const made = planCreateSubscription(id, input, tails)(undefined, 1000);
  return made.result.record;
}

/** Creates subscription `id` in the store and tells the service, as the `PUT` route does. */
async function create(s: SubscriptionService, id: string, input: SubscriptionInput): Promise<void> {
  const tails = [];
  for (const path of input.streams ?? []) tails.push((await s.tailOf(path)) ?? { path, offset: ZERO_OFFSET });
  await s.storage.mutateSubscription(id, planCreateSubscription(id, input, tails));
  s.changed(id, false);
}

const webhook = (over: Partial<SubscriptionInput>): SubscriptionInput => ({
  type: 'webhook',
  webhookUrl: 'http://127.0.0.1:9/hook',
  ...over,
});

const sameAs = (s: SubscriptionService, path: string, ids: string[]) => () =>
  JSON.stringify(s.subscribersOf(path)) === JSON.stringify(ids);

describe('SubscriberIndex', () => {
  it('maps member streams to subscription ids, and moves them when members change', () => {
    const index = new SubscriberIndex();
    index.settle('a', index.reloading('a'), record('a', ['s1', 's2']));
    index.settle('b', index.reloading('b'), record('b', ['s2'], 'pull-wake'));
    expect([...index.subscribers('s1')]).toEqual(['a']);
    expect([...index.subscribers('s2')].sort()).toEqual(['a', 'b']);
    expect(index.get('b')).toMatchObject({ webhook: false, failed: false, members: ['s2'] });
    index.settle('a', index.reloading('a'), record('a', ['s3']));
    expect([...index.subscribers('s1')]).toEqual([]);
    expect([...index.subscribers('s2')]).toEqual(['b']);
    expect([...index.subscribers('s3')]).toEqual(['a']);
    index.settle('b', index.reloading('b'), undefined);
    expect(index.get('b')).toBeUndefined();
    expect([...index.subscribers('s2')]).toEqual([]);
    expect(index.size).toBe(1);
  });

  it('applies only the latest reload of an id when reads resolve out of order', () => {
    const index = new SubscriberIndex();
    const older = index.reloading('a');
    const newer = index.reloading('a');
    index.settle('a', newer, record('a', ['new']));
    index.settle('a', older, record('a', ['old']));
    expect([...index.subscribers('new')]).toEqual(['a']);
    expect([...index.subscribers('old')]).toEqual([]);
  });

  it('a delete wins over a reload begun before it', () => {
    const index = new SubscriberIndex();
    index.settle('a', index.reloading('a'), record('a', ['s']));
    const before = index.reloading('a');
    index.remove('a');
    index.settle('a', before, record('a', ['s']));
    expect(index.get('a')).toBeUndefined();
    expect([...index.subscribers('s')]).toEqual([]);
  });

  it('a full listing replaces every entry but those changed while it ran', async () => {
    const index = new SubscriberIndex();
    index.settle('gone', index.reloading('gone'), record('gone', ['x']));
    index.settle('kept', index.reloading('kept'), record('kept', ['x']));
    const pages = [[record('a1', ['x']), record('kept', ['x'])], [record('new', ['x'])]];
    let calls = 0;
    const store = {
      listSubscriptions: async () => {
        // Between the pages, `kept` changes: its own reload is newer than whatever the listing read.
        if (calls === 1) index.settle('kept', index.reloading('kept'), record('kept', ['y']));
        return pages[calls++] ?? [];
      },
    };
    expect(await index.rebuild(store, 2)).toBe(3);
    expect([...index.subscribers('x')].sort()).toEqual(['a1', 'new']);
    expect([...index.subscribers('y')]).toEqual(['kept']);
    expect(index.get('gone')).toBeUndefined();
  });
});

describe('the subscription service keeps its index in step with the store', { timeout: 60_000 }, () => {
  it('follows create, added and removed streams, and delete', async () => {
    const storage = new MemoryStorage();
    const s = await service(storage);
    await create(s, 'sub', webhook({ streams: ['a', 'b'] }));
    await until(sameAs(s, 'a', ['sub']));
    expect(s.subscribersOf('b')).toEqual(['sub']);
    await storage.mutateSubscription('sub', planAddStreams('sub', [{ path: 'c', offset: ZERO_OFFSET }]));
    s.changed('sub', false);
    await until(sameAs(s, 'c', ['sub']));
    await storage.mutateSubscription('sub', planRemoveStream('sub', 'a'));
    s.changed('sub', false);
    await until(sameAs(s, 'a', []));
    expect(s.subscribersOf('b')).toEqual(['sub']);
    await storage.deleteSubscription('sub');
    s.changed('sub', true);
    expect(s.subscribersOf('b')).toEqual([]);
    expect(s.subscribersOf('c')).toEqual([]);
  });

  it('links streams created after a glob subscription (forks included), and unlinks deleted streams', async () => {
    const storage = new MemoryStorage();
    const s = await service(storage);
    await create(s, 'glob', webhook({ pattern: 'logs/*' }));
    await storage.createStream('logs/new', { contentType: T });
    s.created('logs/new');
    await storage.createStream('other', { contentType: T });
    s.created('other');
    await until(sameAs(s, 'logs/new', ['glob']));
    await storage.createFork('logs/fork', { source: 'logs/new' });
    s.created('logs/fork');
    await until(sameAs(s, 'logs/fork', ['glob']));
    expect(s.subscribersOf('other')).toEqual([]);
    await storage.delete('logs/new');
    s.deleted('logs/new');
    await until(sameAs(s, 'logs/new', []));
    expect(s.subscribersOf('logs/fork')).toEqual(['glob']);
  });

  it('learns of changes made through another instance at its next refresh', async () => {
    const storage = new MemoryStorage();
    const a = await service(storage);
    const b = await service(storage, { refreshIntervalMs: 20 });
    await create(a, 'via-a', webhook({ streams: ['x'] }));
    await until(sameAs(b, 'x', ['via-a']));
    await storage.deleteSubscription('via-a');
    a.changed('via-a', true);
    await until(sameAs(b, 'x', []));
  });

  it('wakes a subscription whose membership was changed after an append it missed (catch-up after the change)', async () => {
    const storage = new MemoryStorage();
    const receiver = await startReceiver(() => ({ status: 200, body: { done: true } }));
    cleanups.push(() => receiver.close());
    const s = await service(storage);
    await storage.createStream('late', { contentType: T });
    await create(s, 'sub', { type: 'webhook', streams: ['late'], webhookUrl: receiver.url });
    await until(sameAs(s, 'late', ['sub']));
    // An append the service is not told about (as if it raced the change): the next change finds the work.
    await storage.append('late', { messages: [Buffer.from('x')], contentType: T });
    s.changed('sub', false);
    const delivery = await until(() => receiver.received[0]);
    expect(delivery.body.streams).toMatchObject([{ path: 'late', has_pending: true }]);
  });

  it('wakes webhook subscribers of an appended stream and nobody for a stream without subscribers', async () => {
    const storage = new MemoryStorage();
    const receiver = await startReceiver(() => ({ status: 200, body: { done: true } }));
    cleanups.push(() => receiver.close());
    const s = await service(storage);
    for (const name of ['watched', 'quiet']) await storage.createStream(name, { contentType: T });
    await create(s, 'w', { type: 'webhook', streams: ['watched'], webhookUrl: receiver.url });
    await until(sameAs(s, 'watched', ['w']));
    await storage.append('quiet', { messages: [Buffer.from('q')], contentType: T });
    s.appended('quiet');
    await storage.append('watched', { messages: [Buffer.from('w')], contentType: T });
    s.appended('watched');
    const delivery = await until(() => receiver.received[0]);
    expect(delivery.body.subscription_id).toBe('w');
    await s.idle();
    expect(receiver.received.map((d) => d.body.subscription_id)).toEqual(['w']);
  });

  it('wakes every subscriber of a crowded stream (more than are woken inline) and pull-wake subscribers', async () => {
    const storage = new MemoryStorage();
    const receiver = await startReceiver(() => ({ status: 200, body: { done: true } }));
    cleanups.push(() => receiver.close());
    const s = await service(storage);
    for (const name of ['crowd', 'wakes']) await storage.createStream(name, { contentType: T });
    const ids = Array.from({ length: 12 }, (_, i) => `w${String(i).padStart(2, '0')}`);
    for (const id of ids)
      await create(s, id, { type: 'webhook', streams: ['crowd'], webhookUrl: receiver.url });
    await create(s, 'pull', { type: 'pull-wake', streams: ['crowd'], wakeStream: 'wakes' });
    await until(sameAs(s, 'crowd', ['pull', ...ids]));
    await storage.append('crowd', { messages: [Buffer.from('c')], contentType: T });
    s.appended('crowd');
    await until(() => receiver.received.length >= ids.length);
    expect(receiver.received.map((d) => d.body.subscription_id).sort()).toEqual(ids);
    const events = await until(async () => {
      const read = await storage.read('wakes', ZERO_OFFSET);
      return read.messages.length > 0 ? read.messages : undefined;
    });
    expect(JSON.parse(Buffer.from(events[0]!).toString('utf8'))).toMatchObject({
      type: 'wake',
      subscription_id: 'pull',
      stream: 'crowd',
    });
  });
});
