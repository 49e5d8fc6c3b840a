import { isStorageError } from '@streamkeep/storage';
import fc from 'fast-check';
import { payloadArb, streamSeqArb, ttlSecondsArb } from '../../arbitraries.js';
import { ensure, expectCode, hex } from '../../compare.js';
import type { StorageHarness } from '../../harness.js';
import type { ConformanceOptions } from '../../options.js';
import { advanceOffset, assertOverSessions, readAll, samePosition, show } from '../common.js';
import { CT, fill, offsetString } from './fixtures.js';

// Laws of a stream's state: closure, forks (prefix, own messages, soft delete of the source), expiry at the deadline
// with sliding TTLs, and the `Stream-Seq` order.

/** A closed stream rejects appends (with its final tail) but stays readable, reports closed, and closes again. */
export function checkClosedStream(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  const arb = fc.record({
    initial: fc.array(payloadArb, { maxLength: 3 }),
    last: fc.array(payloadArb, { maxLength: 2 }),
    how: fc.constantFrom('closeStream', 'append', 'create', 'producer'),
  });
  return assertOverSessions(harness, options, arb, async ({ storage }, v, caps) => {
    const how = v.how === 'producer' && !caps.producers ? 'append' : v.how;
    const content = [...v.initial];
    if (how === 'create') {
      await storage.createStream('law', { contentType: CT, messages: v.initial, closed: true });
    } else {
      await storage.createStream('law', { contentType: CT, messages: v.initial });
      if (how === 'closeStream') await storage.closeStream('law');
      else if (how === 'append') {
        await storage.append('law', { messages: v.last, contentType: CT, close: true });
        content.push(...v.last);
      } else {
        await storage.appendWithProducer('law', {
          producer: { id: 'p', epoch: 0, seq: 0 },
          messages: v.last,
          contentType: CT,
          close: true,
        });
        content.push(...v.last);
      }
    }
    const head = await storage.head('law');
    ensure(head.closed, 'head must report the stream closed');
    try {
      await storage.append('law', { messages: [new Uint8Array([1])], contentType: CT });
      ensure(false, 'an append to a closed stream was accepted');
    } catch (err) {
      ensure(isStorageError(err, 'STREAM_CLOSED'), () => `expected STREAM_CLOSED, got ${String(err)}`);
      ensure(
        err.details.nextOffset === head.nextOffset,
        () => `STREAM_CLOSED must carry the final tail ${head.nextOffset}, got ${err.details.nextOffset}`,
      );
    }
    if (caps.producers) {
      await expectCode('new producer on a closed stream', 'STREAM_CLOSED', () =>
        storage.appendWithProducer('law', {
          producer: { id: 'q', epoch: 0, seq: 0 },
          messages: [new Uint8Array([1])],
          contentType: CT,
        }),
      );
    }
    const r = await storage.read('law', '-1');
    ensure(
      r.closed &&
        r.upToDate &&
        r.nextOffset === head.nextOffset &&
        show(r.messages.map(hex)) === show(content.map(hex)),
      () => `a closed stream must stay readable: ${show(r)}`,
    );
    const again = await storage.closeStream('law');
    ensure(
      again.closed && again.nextOffset === head.nextOffset,
      'closing again must succeed without writing',
    );
  });
}

/** A fork reads its inherited prefix, then its own messages; the source is unaffected and its deletion is soft. */
export function checkForkReads(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  const arb = fc.record({
    source: fc.array(payloadArb, { maxLength: 6 }),
    cut: fc.nat(),
    own: fc.array(payloadArb, { maxLength: 3 }),
    later: fc.array(payloadArb, { maxLength: 3 }),
    sourceClosed: fc.boolean(),
  });
  return assertOverSessions(harness, options, arb, async ({ storage }, v) => {
    const { offsets, tail } = await fill(storage, 'src', v.source.length === 0 ? [] : [v.source]);
    const cut = v.cut % (v.source.length + 1);
    const forkAt = cut < offsets.length ? offsetString(offsets[cut]!) : tail;
    if (v.sourceClosed) await storage.closeStream('src');
    const created = await storage.createFork('fork', { source: 'src', offset: forkAt, messages: v.own });
    const forkTail = advanceOffset(forkAt, v.own);
    ensure(
      created.created && samePosition(created.nextOffset, forkTail) && !created.closed,
      () => `fork returned ${show(created)}`,
    );
    if (!v.sourceClosed && v.later.length > 0) {
      await storage.append('src', { messages: v.later, contentType: CT });
    }
    const expected = [...v.source.slice(0, cut), ...v.own].map(hex);
    ensure(
      show(await readAll(storage, 'fork')) === show(expected),
      'the fork must read its prefix, then its own',
    );
    const head = await storage.head('fork');
    ensure(
      head.fork?.source === 'src' && head.fork.offset === forkAt && head.messageCount === v.own.length,
      () => `fork head ${show(head)}`,
    );
    const src = [...v.source, ...(v.sourceClosed ? [] : v.later)].map(hex);
    ensure(show(await readAll(storage, 'src')) === show(src), 'forking must not change the source');
    const del = await storage.delete('src');
    ensure(del.softDeleted, 'deleting a forked source must be a soft delete');
    await expectCode('head of a tombstone', 'GONE', () => storage.head('src'));
    await expectCode('re-create over a tombstone', 'PATH_BLOCKED', () =>
      storage.createStream('src', { contentType: CT }),
    );
    ensure(show(await readAll(storage, 'fork')) === show(expected), 'a fork must outlive its deleted source');
    const gone = await storage.delete('fork');
    ensure(!gone.softDeleted, 'deleting the last fork is a hard delete');
    const fresh = await storage.createStream('src', { contentType: CT });
    ensure(fresh.created, 'the tombstoned source must be collected with its last fork');
  });
}

/** Streams expire exactly at their deadline, then behave as missing (except delete); reads renew a sliding TTL. */
export function checkExpiry(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  const arb = fc.record({
    ttl: ttlSecondsArb.filter((t) => t > 0),
    sliding: fc.boolean(),
    readFirst: fc.boolean(),
  });
  return assertOverSessions(harness, options, arb, async ({ storage, clock }, v) => {
    const ms = v.ttl * 1000;
    const expiry = v.sliding ? { ttlSeconds: v.ttl } : { expiresAt: clock.now() + ms };
    await storage.createStream('law', { contentType: CT, ...expiry, messages: [new Uint8Array([1])] });
    clock.advance(ms - 1);
    ensure(await storage.exists('law'), 'a stream must be visible one millisecond before its deadline');
    if (v.readFirst) {
      await storage.read('law', '-1');
      if (v.sliding) {
        clock.advance(ms - 1);
        ensure(await storage.exists('law'), 'a read must renew a sliding TTL');
      }
    }
    clock.advance(1);
    ensure(!(await storage.exists('law')), 'a stream must expire at its deadline');
    await expectCode('read of an expired stream', 'EXPIRED', () => storage.read('law', '-1'));
    await expectCode('head of an expired stream', 'EXPIRED', () => storage.head('law'));
    await expectCode('append to an expired stream', 'EXPIRED', () =>
      storage.append('law', { messages: [new Uint8Array([2])], contentType: CT }),
    );
    const del = await storage.delete('law');
    ensure(!del.softDeleted, 'an expired stream is deleted normally');
  });
}

/** `Stream-Seq` values are accepted exactly when they sort after the last accepted one by UTF-8 bytes. */
export function checkStreamSeqOrder(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  const arb = fc.array(streamSeqArb, { minLength: 1, maxLength: 8 });
  return assertOverSessions(harness, options, arb, async ({ storage }, seqs) => {
    await storage.createStream('law', { contentType: CT });
    let last: string | null = null;
    for (const seq of seqs) {
      const ok = last === null || Buffer.compare(Buffer.from(seq), Buffer.from(last)) > 0;
      let accepted = true;
      try {
        await storage.append('law', { messages: [new Uint8Array([1])], contentType: CT, seq });
      } catch (err) {
        if (!isStorageError(err, 'SEQ_CONFLICT')) throw err;
        accepted = false;
      }
      ensure(
        accepted === ok,
        () => `Stream-Seq ${JSON.stringify(seq)} after ${JSON.stringify(last)}: accepted=${accepted}`,
      );
      if (ok) last = seq;
    }
    const head = await storage.head('law');
    ensure(head.lastSeq === last, `head.lastSeq ${head.lastSeq} differs from ${last}`);
  });
}
