import { isStorageError } from '@streamkeep/storage';
import fc from 'fast-check';
import { payloadArb } from '../../arbitraries.js';
import { ensure, expectCode, hex } from '../../compare.js';
import type { StorageHarness } from '../../harness.js';
import type { ConformanceOptions } from '../../options.js';
import { assertOverSessions, headOf, readAll, show } from '../common.js';
import { CT, smallBatchArb, smallBatchesArb } from './fixtures.js';

// Laws of writes that must change nothing: a rejected commit, a create or fork rejected by a byte limit, an idempotent
// re-create and a producer duplicate.

type FailingCommit = 'limit' | 'seq' | 'closed' | 'contentType' | 'producerGap' | 'producerLimit';

/**
 * A rejected commit changes nothing: no messages, no `Stream-Seq`, no TTL renewal, no `updatedAt`, no producer
 * state; a `Stream-Seq` or producer sequence number it carried stays usable.
 */
export function checkFailedCommitHasNoEffect(
  harness: StorageHarness,
  options?: ConformanceOptions,
): Promise<void> {
  const arb = fc.record({
    batches: smallBatchesArb,
    kind: fc.constantFrom<FailingCommit>(
      'limit',
      'seq',
      'closed',
      'contentType',
      'producerGap',
      'producerLimit',
    ),
    ttl: fc.boolean(),
  });
  return assertOverSessions(
    harness,
    options,
    arb,
    async ({ storage, clock }, { batches, kind: wanted, ttl }, caps) => {
      let kind = wanted;
      if (!caps.byteLimits && (kind === 'limit' || kind === 'producerLimit')) kind = 'seq';
      if (!caps.producers && kind.startsWith('producer')) kind = 'seq';
      const useTtl = ttl && caps.expiry;
      await storage.createStream('law', { contentType: CT, ...(useTtl ? { ttlSeconds: 60 } : {}) });
      const content: Uint8Array[] = [];
      let bytes = 0;
      for (const [i, b] of batches.entries()) {
        // Keep well below the 40-byte stream limit, so that only the attempt below can exceed it.
        bytes += b.reduce((n, m) => n + m.byteLength, 0);
        if (bytes > 20) break;
        await storage.append('law', { messages: b, contentType: CT, seq: `s${i}` });
        content.push(...b);
      }
      if (caps.producers) {
        await storage.appendWithProducer('law', { producer: { id: 'p', epoch: 0, seq: 0 }, messages: [] });
      }
      if (kind === 'closed') await storage.closeStream('law');
      clock.advance(1_000);
      const before = await headOf(storage, 'law');
      const big = new Uint8Array(64);
      const attempt = async () => {
        switch (kind) {
          case 'limit':
            return storage.append('law', { messages: [big], contentType: CT, seq: 'zz' });
          case 'seq':
            return storage.append('law', { messages: [new Uint8Array([1])], contentType: CT, seq: 's0' });
          case 'closed':
            return storage.append('law', { messages: [new Uint8Array([1])], contentType: CT, seq: 'zz' });
          case 'contentType':
            return storage.append('law', {
              messages: [new Uint8Array([1])],
              contentType: 'text/x-other',
              seq: 'zz',
            });
          case 'producerGap':
            return storage.appendWithProducer('law', {
              producer: { id: 'p', epoch: 0, seq: 2 },
              messages: [new Uint8Array([1])],
              contentType: CT,
              seq: 'zz',
            });
          case 'producerLimit':
            return storage.appendWithProducer('law', {
              producer: { id: 'p', epoch: 0, seq: 1 },
              messages: [big],
              contentType: CT,
              seq: 'zz',
            });
        }
      };
      let rejected = false;
      try {
        await attempt();
      } catch (err) {
        if (!isStorageError(err)) throw err;
        rejected = true;
      }
      ensure(rejected, `the ${kind} commit was accepted`);
      const after = await headOf(storage, 'law');
      ensure(
        show(after) === show(before),
        () => `a rejected ${kind} commit changed head: ${show(before)} → ${show(after)}`,
      );
      const got = await readAll(storage, 'law');
      ensure(
        show(got) === show(content.map(hex)),
        () => `a rejected ${kind} commit changed the content: ${show(got)}`,
      );
      if (kind === 'limit') {
        await storage.append('law', { messages: [new Uint8Array([7])], contentType: CT, seq: 'zz' });
      }
      if (kind === 'producerLimit' || kind === 'producerGap') {
        const r = await storage.appendWithProducer('law', {
          producer: { id: 'p', epoch: 0, seq: 1 },
          messages: [new Uint8Array([7])],
          contentType: CT,
          seq: 'zz',
        });
        ensure(!r.duplicate, 'the producer seq of a rejected commit must stay usable');
      }
    },
    (_v, caps) => (caps.byteLimits ? { maxStreamBytes: 40 } : {}),
  );
}

/**
 * A create or fork rejected by a byte limit has no effect: no stream appears, no bytes stay reserved, the source of a
 * refused fork gains no reference, and an expired stream it would have replaced is still there (still `EXPIRED`,
 * still deletable).
 */
export function checkFailedCreateHasNoEffect(
  harness: StorageHarness,
  options?: ConformanceOptions,
): Promise<void> {
  const arb = fc.record({
    initial: fc.array(payloadArb, { maxLength: 3 }),
    over: fc.integer({ min: 1, max: 8 }),
    target: fc.constantFrom('fresh', 'expired', 'fork'),
  });
  return assertOverSessions(
    harness,
    options,
    arb,
    async ({ storage, clock }, v, caps) => {
      const target =
        (v.target === 'expired' && !caps.expiry) || (v.target === 'fork' && !caps.forks) ? 'fresh' : v.target;
      await storage.createStream('src', { contentType: CT, messages: v.initial });
      if (target === 'expired') {
        await storage.createStream('law', {
          contentType: CT,
          ttlSeconds: 1,
          messages: [new Uint8Array([1])],
        });
        clock.advance(1_000);
      }
      const tooBig = [new Uint8Array(16 + v.over)];
      await expectCode(`a ${target} create over the stream limit`, 'STREAM_LIMIT_EXCEEDED', () =>
        target === 'fork'
          ? storage.createFork('law', { source: 'src', messages: tooBig })
          : storage.createStream('law', { contentType: CT, messages: tooBig }),
      );
      if (target === 'expired') {
        await expectCode('the expired stream after a rejected re-create', 'EXPIRED', () =>
          storage.head('law'),
        );
        const del = await storage.delete('law');
        ensure(!del.softDeleted, 'the expired stream must still be there to delete');
      } else {
        ensure(!(await storage.exists('law')), `a rejected ${target} create left a stream behind`);
      }
      const del = await storage.delete('src');
      ensure(!del.softDeleted, 'a rejected fork must not leave a reference on its source');
      const fits = await storage.createStream('law', { contentType: CT, messages: [new Uint8Array(16)] });
      ensure(fits.created, 'the name and its bytes must be free after the rejected create');
    },
    (_v, caps) => (caps.byteLimits ? { maxStreamBytes: 16, maxTotalBytes: 40 } : {}),
  );
}

/** An idempotent re-create and a producer duplicate write nothing, renew nothing and return the stored state. */
export function checkIdempotentWritesNothing(
  harness: StorageHarness,
  options?: ConformanceOptions,
): Promise<void> {
  const arb = fc.record({
    initial: fc.array(payloadArb, { maxLength: 3 }),
    again: smallBatchArb,
    accepted: fc.integer({ min: 1, max: 4 }),
    retry: fc.nat(),
    ttl: fc.boolean(),
  });
  return assertOverSessions(harness, options, arb, async ({ storage, clock }, v, caps) => {
    const ttl = v.ttl && caps.expiry ? { ttlSeconds: 60 } : {};
    await storage.createStream('law', { contentType: CT, ...ttl, messages: v.initial });
    clock.advance(1_000);
    const before = await headOf(storage, 'law');
    const again = await storage.createStream('law', {
      contentType: CT,
      ...ttl,
      messages: v.again,
      closed: false,
    });
    ensure(
      !again.created && again.nextOffset === before.nextOffset,
      () => `re-create returned ${show(again)}`,
    );
    ensure(show(await headOf(storage, 'law')) === show(before), 're-create changed the stream');
    ensure(show(await readAll(storage, 'law')) === show(v.initial.map(hex)), 're-create wrote messages');
    if (!caps.producers) return;
    const content = [...v.initial];
    for (let seq = 0; seq < v.accepted; seq++) {
      const m = new Uint8Array([seq]);
      await storage.appendWithProducer('law', {
        producer: { id: 'p', epoch: 1, seq },
        messages: [m],
        contentType: CT,
      });
      content.push(m);
    }
    clock.advance(1_000);
    const stored = await headOf(storage, 'law');
    const retrySeq = v.retry % v.accepted;
    const dup = await storage.appendWithProducer('law', {
      producer: { id: 'p', epoch: 1, seq: retrySeq },
      messages: v.again,
      contentType: CT,
    });
    ensure(
      dup.duplicate && dup.epoch === 1 && dup.seq === v.accepted - 1 && dup.nextOffset === stored.nextOffset,
      () => `retry of seq ${retrySeq} returned ${show(dup)}`,
    );
    ensure(show(await headOf(storage, 'law')) === show(stored), 'a producer duplicate changed the stream');
    ensure(
      show(await readAll(storage, 'law')) === show(content.map(hex)),
      'a producer duplicate wrote messages',
    );
  });
}
