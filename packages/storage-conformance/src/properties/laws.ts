import { isStorageError, type Storage, type StorageCapabilities } from '@streamkeep/storage';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import {
  concreteOffsetArb,
  nonEmptyMessagesArb,
  payloadArb,
  streamSeqArb,
  ttlSecondsArb,
} from '../arbitraries.js';
import { ensure, expectCode, hex } from '../compare.js';
import { probeCapabilities, type StorageHarness } from '../harness.js';
import { type ConformanceOptions, resolveOptions } from '../options.js';
import { checkInvalidArguments } from './arguments.js';
import {
  advanceOffset,
  assertOverSessions,
  headOf,
  type PropertyCheck,
  position,
  readAll,
  samePosition,
  show,
} from './common.js';

const CT = 'application/octet-stream';
// Batches of any payload size (rarely up to 1 MiB), and of small payloads where a law sets byte limits of a few bytes.
const batchesArb = fc.array(nonEmptyMessagesArb, { minLength: 1, maxLength: 6 });
const smallBatchArb = fc.array(payloadArb, { minLength: 1, maxLength: 3 });
const smallBatchesArb = fc.array(smallBatchArb, { minLength: 1, maxLength: 6 });

/** Appends `batches` to a fresh stream `name` and returns every message's offset (plus the tail at the end). */
async function fill(storage: Storage, name: string, batches: readonly Uint8Array[][]) {
  await storage.createStream(name, { contentType: CT });
  const offsets: string[] = [];
  const messages: Uint8Array[] = [];
  let tail = '0000000000000000_0000000000000000';
  for (const batch of batches) {
    const r = await storage.append(name, { messages: batch, contentType: CT });
    let at = position(r.startOffset);
    for (const m of batch) {
      offsets.push(`${at.seq}:${at.bytes}`);
      at = { seq: at.seq + 1, bytes: at.bytes + m.byteLength };
      messages.push(m);
    }
    tail = r.nextOffset;
  }
  return { offsets, messages, tail };
}

function offsetString(key: string): string {
  const [s, b] = key.split(':').map(Number) as [number, number];
  return `${s.toString(16).padStart(16, '0')}_${b.toString(16).padStart(16, '0')}`;
}

/** Offsets are unique, strictly increasing, and advance by exactly one message and its bytes per message. */
export function checkOffsetsMonotonic(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  return assertOverSessions(harness, options, batchesArb, async ({ storage }, batches) => {
    await storage.createStream('law', { contentType: CT });
    let tail = '0000000000000000_0000000000000000';
    const seen = new Set<string>();
    for (const batch of batches) {
      const r = await storage.append('law', { messages: batch, contentType: CT });
      ensure(
        r.startOffset === tail,
        `append started at ${r.startOffset}, expected the previous tail ${tail}`,
      );
      ensure(
        r.nextOffset > r.startOffset,
        `nextOffset ${r.nextOffset} does not advance past ${r.startOffset}`,
      );
      ensure(
        samePosition(r.nextOffset, advanceOffset(r.startOffset, batch)),
        () => `nextOffset ${r.nextOffset} is not startOffset ${r.startOffset} plus ${show(batch)}`,
      );
      let at = position(r.startOffset);
      for (const m of batch) {
        const key = `${at.seq}:${at.bytes}`;
        ensure(!seen.has(key), `offset ${key} was assigned twice`);
        seen.add(key);
        at = { seq: at.seq + 1, bytes: at.bytes + m.byteLength };
      }
      tail = r.nextOffset;
    }
    const head = await storage.head('law');
    ensure(
      head.nextOffset === tail,
      `head.nextOffset ${head.nextOffset} differs from the last append's ${tail}`,
    );
  });
}

/** Reading from any returned offset yields exactly the suffix from that message; other offsets round up. */
export function checkSuffixReads(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  return assertOverSessions(
    harness,
    options,
    fc.tuple(batchesArb, fc.array(concreteOffsetArb, { maxLength: 4 })),
    async ({ storage }, [batches, extra]) => {
      const { offsets, messages, tail } = await fill(storage, 'law', batches);
      const all = messages.map(hex);
      for (let i = 0; i <= offsets.length; i++) {
        const from = i < offsets.length ? offsetString(offsets[i]!) : tail;
        const r = await storage.read('law', from);
        const got = r.messages.map(hex);
        ensure(
          show(got) === show(all.slice(i)) && r.upToDate && r.nextOffset === tail,
          () =>
            `read("law", ${from}) returned ${show(got)} / ${r.nextOffset}, expected ${show(all.slice(i))} / ${tail}`,
        );
      }
      for (const from of extra) {
        const i = offsets.findIndex((o) => offsetString(o) >= from);
        const want = i === -1 ? [] : all.slice(i);
        const got = (await storage.read('law', from)).messages.map(hex);
        ensure(
          show(got) === show(want),
          () => `read("law", ${from}) returned ${show(got)}, expected ${show(want)}`,
        );
      }
      const now = await storage.read('law', 'now');
      ensure(
        now.messages.length === 0 && now.upToDate && now.nextOffset === tail,
        'read from "now" must be empty',
      );
    },
  );
}

/**
 * Reads racing with appends see whole commits only: every snapshot is a prefix of the final content that ends on a
 * batch boundary, its `nextOffset` is exactly the position after its messages, and a closed snapshot holds everything.
 */
export function checkCoherentSnapshots(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  return assertOverSessions(
    harness,
    options,
    fc.tuple(smallBatchesArb, fc.integer({ min: 1, max: 8 })),
    async ({ storage }, [batches, readers]) => {
      await storage.createStream('law', { contentType: CT });
      const boundaries = new Set<number>([0]);
      let count = 0;
      for (const b of batches) boundaries.add((count += b.length));
      const snapshots: { messages: string[]; nextOffset: string; closed: boolean; upToDate: boolean }[] = [];
      const writer = (async () => {
        for (let i = 0; i < batches.length; i++) {
          await storage.append('law', {
            messages: batches[i]!,
            contentType: CT,
            close: i === batches.length - 1,
          });
        }
      })();
      const reads = Array.from({ length: readers }, async () => {
        for (let i = 0; i <= batches.length; i++) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          const r = await storage.read('law', '-1');
          snapshots.push({
            messages: r.messages.map(hex),
            nextOffset: r.nextOffset,
            closed: r.closed,
            upToDate: r.upToDate,
          });
        }
      });
      await Promise.all([writer, ...reads]);
      const final = batches.flat();
      const all = final.map(hex);
      for (const s of snapshots) {
        ensure(s.upToDate, 'an unbudgeted read must be up to date');
        ensure(
          boundaries.has(s.messages.length),
          () => `torn read: ${s.messages.length} messages is inside a batch`,
        );
        ensure(
          show(s.messages) === show(all.slice(0, s.messages.length)),
          () => `snapshot ${show(s.messages)} is not a prefix`,
        );
        ensure(
          samePosition(
            s.nextOffset,
            advanceOffset('0000000000000000_0000000000000000', final.slice(0, s.messages.length)),
          ),
          () => `snapshot of ${s.messages.length} messages has nextOffset ${s.nextOffset}`,
        );
        ensure(!s.closed || s.messages.length === all.length, 'a closed snapshot must hold every message');
      }
    },
  );
}

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

/** Byte budgets split reads into pages that lose and repeat nothing, each as full as the budget allows. */
export function checkBudgetedReads(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  return assertOverSessions(
    harness,
    options,
    fc.tuple(batchesArb, fc.integer({ min: 0, max: 12 })),
    async ({ storage }, [batches, maxBytes]) => {
      const { messages, tail, offsets } = await fill(storage, 'law', batches);
      const pages: string[] = [];
      let from = '-1';
      let index = 0;
      for (let guard = 0; guard <= messages.length + 1; guard++) {
        const r = await storage.read('law', from, { maxBytes });
        const size = r.messages.reduce((n, m) => n + m.byteLength, 0);
        ensure(
          r.messages.length > 0 || index === messages.length,
          `an empty page before the tail (from ${from})`,
        );
        ensure(
          size <= maxBytes || r.messages.length === 1,
          `a page of ${size} bytes exceeds maxBytes ${maxBytes}`,
        );
        pages.push(...r.messages.map(hex));
        index += r.messages.length;
        if (r.upToDate) {
          ensure(index === messages.length && r.nextOffset === tail, 'upToDate before the tail');
          break;
        }
        const next = messages[index];
        ensure(next !== undefined, 'not upToDate although every message was returned');
        ensure(
          size + next.byteLength > maxBytes,
          `the page stopped early: ${size} + ${next.byteLength} <= ${maxBytes}`,
        );
        ensure(
          r.nextOffset === offsetString(offsets[index]!),
          `page nextOffset ${r.nextOffset} skips or repeats`,
        );
        from = r.nextOffset;
      }
      ensure(show(pages) === show(messages.map(hex)), () => `pages ${show(pages)} differ from the content`);
    },
  );
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

const needs =
  (flag: keyof StorageCapabilities) =>
  (caps: StorageCapabilities): string | undefined =>
    caps[flag] ? undefined : `needs the ${flag} capability`;

/** The laws, in registration order. */
export const LAWS: readonly PropertyCheck[] = [
  { title: 'offsets are unique and strictly increasing', run: checkOffsetsMonotonic },
  { title: 'reading from any returned offset yields exactly the suffix', run: checkSuffixReads },
  { title: 'reads are coherent snapshots of whole commits', run: checkCoherentSnapshots },
  { title: 'a failed commit has no effect', run: checkFailedCommitHasNoEffect },
  {
    title: 'a create or fork rejected by a byte limit has no effect',
    run: checkFailedCreateHasNoEffect,
    skip: needs('byteLimits'),
  },
  { title: 'an idempotent create or a producer duplicate writes nothing', run: checkIdempotentWritesNothing },
  { title: 'a closed stream rejects appends but stays readable', run: checkClosedStream },
  {
    title: 'a fork reads its inherited prefix, then its own messages',
    run: checkForkReads,
    skip: needs('forks'),
  },
  { title: 'byte budgets split reads without losing or repeating a message', run: checkBudgetedReads },
  { title: 'streams expire exactly at their deadline', run: checkExpiry, skip: needs('expiry') },
  { title: 'Stream-Seq values must increase in UTF-8 byte order', run: checkStreamSeqOrder },
  {
    title: 'every invalid argument gets the stated answer, whatever the stream, and changes nothing',
    run: checkInvalidArguments,
  },
];

/** Runs every applicable law; rejects with the first counterexample. */
export async function checkLaws(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  const caps = await probeCapabilities(harness);
  for (const law of LAWS) {
    if (law.skip?.(caps, { canReopen: false }) === undefined) await law.run(harness, options);
  }
}

/** Registers each law as a vitest test; laws whose capability is off are reported as skipped. */
export function describeLaws(name: string, harness: StorageHarness, options: ConformanceOptions = {}): void {
  const { timeout } = resolveOptions(options);
  describe(`${name}: laws`, async () => {
    const caps = await probeCapabilities(harness);
    for (const law of LAWS) {
      const reason = law.skip?.(caps, { canReopen: false });
      it.skipIf(reason !== undefined)(
        reason === undefined ? law.title : `${law.title} (${reason})`,
        () => law.run(harness, options),
        timeout,
      );
    }
  });
}
