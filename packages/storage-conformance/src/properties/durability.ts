import type { Storage, StorageCapabilities } from '@streamkeep/storage';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { payloadArb } from '../arbitraries.js';
import { capture, ensure, expectCode, project } from '../compare.js';
import { openSession, probeCapabilities, type StorageHarness } from '../harness.js';
import { type ConformanceOptions, resolveOptions } from '../options.js';
import { assertOverSessions, type PropertyCheck, show } from './common.js';
import { checkModel } from './model.js';

const CT = 'text/plain';
const NAMES = ['a', 'b', 'f'];

/** Everything observable about the kit's streams, read in an order that makes it repeatable (reads renew TTLs first). */
async function snapshot(storage: Storage, caps: StorageCapabilities) {
  const reads = [];
  for (const n of NAMES) reads.push(await capture(() => storage.read(n, '-1'), project.read));
  const heads = [];
  for (const n of NAMES) heads.push(await capture(() => storage.head(n), project.metadata));
  const exists = [];
  for (const n of NAMES) exists.push(await storage.exists(n));
  const list = caps.listStreams ? project.list(await storage.listStreams()) : null;
  return { reads, heads, exists, list };
}

/**
 * Everything acknowledged survives a reopen: data, `Stream-Seq`, producer state (a retry is still a duplicate),
 * closure, forks, tombstones and deadlines.
 */
export function checkReopenPreservesState(
  harness: StorageHarness,
  options?: ConformanceOptions,
): Promise<void> {
  const arb = fc.record({
    initial: fc.array(payloadArb, { maxLength: 3 }),
    appended: fc.array(payloadArb, { minLength: 1, maxLength: 3 }),
    produced: fc.integer({ min: 1, max: 3 }),
    close: fc.boolean(),
    ttl: fc.boolean(),
    forkOwn: fc.array(payloadArb, { maxLength: 2 }),
    deleteSource: fc.boolean(),
  });
  return assertOverSessions(harness, options, arb, async (session, v, caps) => {
    ensure(session.canReopen, 'a durable backend must give the kit a reopen()');
    const t0 = session.clock.now();
    let storage = session.storage;
    await storage.createStream('a', {
      contentType: CT,
      messages: v.initial,
      ...(v.ttl && caps.expiry ? { ttlSeconds: 60 } : {}),
    });
    await storage.append('a', { messages: v.appended, contentType: CT, seq: 's1' });
    if (caps.producers) {
      for (let seq = 0; seq < v.produced; seq++) {
        await storage.appendWithProducer('a', {
          producer: { id: 'p', epoch: 3, seq },
          messages: [new Uint8Array([seq])],
          contentType: CT,
        });
      }
    }
    if (v.close) await storage.closeStream('a');
    await storage.createStream('b', {
      contentType: CT,
      messages: [new Uint8Array([9])],
      ...(caps.expiry ? { expiresAt: t0 + 10_000 } : {}),
    });
    if (caps.forks) {
      await storage.createFork('f', { source: 'b', messages: v.forkOwn });
      if (v.deleteSource) await storage.delete('b');
    }
    session.clock.advance(1_000);
    const before = await snapshot(storage, caps);
    storage = await session.reopen();
    const after = await snapshot(storage, caps);
    ensure(
      show(after) === show(before),
      () => `state changed across reopen:\n${show(before)}\n${show(after)}`,
    );

    if (caps.producers) {
      const retry = await storage.appendWithProducer('a', {
        producer: { id: 'p', epoch: 3, seq: v.produced - 1 },
        messages: [new Uint8Array([42])],
        contentType: CT,
      });
      ensure(
        retry.duplicate && retry.seq === v.produced - 1,
        'a retried producer request must stay a duplicate',
      );
    }
    await expectCode('append after reopen', v.close ? 'STREAM_CLOSED' : 'SEQ_CONFLICT', () =>
      storage.append('a', { messages: [new Uint8Array([1])], contentType: CT, seq: 's1' }),
    );
    if (caps.expiry) {
      session.clock.set(t0 + 10_000);
      await expectCode('b after its deadline', caps.forks && v.deleteSource ? 'GONE' : 'EXPIRED', () =>
        storage.head('b'),
      );
    }
  });
}

/** The durability checks: a model run with restarts, and the reopen snapshot property. */
export const DURABILITY: readonly PropertyCheck[] = [
  {
    title: 'agrees with the reference model across reopen()',
    run: (harness, options) => checkModel(harness, { ...options, reopen: true }),
  },
  { title: 'everything acknowledged is identical after reopen()', run: checkReopenPreservesState },
];

async function durabilitySkipReason(harness: StorageHarness): Promise<string | undefined> {
  const caps = await probeCapabilities(harness);
  if (!caps.durable) return 'not durable';
  const session = await openSession(harness);
  const canReopen = session.canReopen;
  if (session.instance.teardown !== undefined) await session.instance.teardown();
  else await session.storage.close();
  return canReopen ? undefined : 'the harness provides no reopen()';
}

/** Runs the durability checks, or resolves at once when the backend is not durable or gives no `reopen`. */
export async function checkDurability(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  if ((await durabilitySkipReason(harness)) !== undefined) return;
  for (const d of DURABILITY) await d.run(harness, options);
}

/** Registers the durability checks; skipped unless `capabilities.durable` and the harness provides `reopen`. */
export function describeDurability(
  name: string,
  harness: StorageHarness,
  options: ConformanceOptions = {},
): void {
  const { timeout } = resolveOptions(options);
  describe(`${name}: durability`, async () => {
    const reason = await durabilitySkipReason(harness);
    for (const d of DURABILITY) {
      it.skipIf(reason !== undefined)(
        reason === undefined ? d.title : `${d.title} (${reason})`,
        () => d.run(harness, options),
        timeout,
      );
    }
  });
}
