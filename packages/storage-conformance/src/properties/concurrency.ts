import fc from 'fast-check';
import { describe, it } from 'vitest';
import { payloadArb } from '../arbitraries.js';
import { ensure, hex } from '../compare.js';
import type { StorageHarness } from '../harness.js';
import { type ConformanceOptions, resolveOptions } from '../options.js';
import {
  advanceOffset,
  assertOverSessions,
  type PropertyCheck,
  readAll,
  samePosition,
  show,
} from './common.js';

const CT = 'application/octet-stream';

/** A message that names its writer and its position in that writer's sequence, padded by a random payload. */
function tagged(writer: number, index: number, pad: Uint8Array): Uint8Array {
  const m = new Uint8Array(2 + pad.byteLength);
  m[0] = writer;
  m[1] = index;
  m.set(pad, 2);
  return m;
}

/**
 * Parallel appenders and readers on one stream: offsets stay unique and monotonic, each writer's messages keep their
 * order, nothing is lost, and no read is torn (each snapshot is a prefix of the final content with a matching tail).
 */
export function checkParallelAppendersAndReaders(
  harness: StorageHarness,
  options?: ConformanceOptions,
): Promise<void> {
  const arb = fc.record({
    writers: fc.array(
      fc.array(fc.array(payloadArb, { minLength: 1, maxLength: 2 }), { minLength: 1, maxLength: 8 }),
      {
        minLength: 2,
        maxLength: 4,
      },
    ),
    readers: fc.integer({ min: 1, max: 3 }),
  });
  return assertOverSessions(harness, options, arb, async ({ storage }, v) => {
    await storage.createStream('race', { contentType: CT });
    const results: { writer: number; start: string; next: string; batch: Uint8Array[] }[] = [];
    const snapshots: { messages: Uint8Array[]; nextOffset: string }[] = [];
    let writing = v.writers.length;
    const writers = v.writers.map(async (batches, w) => {
      for (const [i, pads] of batches.entries()) {
        const batch = pads.map((pad, j) => tagged(w, i * 2 + j, pad));
        const r = await storage.append('race', { messages: batch, contentType: CT });
        results.push({ writer: w, start: r.startOffset, next: r.nextOffset, batch });
      }
      writing -= 1;
    });
    const commits = v.writers.reduce((n, bs) => n + bs.length, 0);
    const readers = Array.from({ length: v.readers }, async () => {
      // Bounded, and yielding a macrotask turn between reads: a backend that serves reads from memory through
      // microtasks alone would otherwise starve the writers' I/O callbacks forever.
      for (let i = 0; i <= commits && writing > 0; i++) {
        const r = await storage.read('race', '-1');
        snapshots.push({ messages: [...r.messages], nextOffset: r.nextOffset });
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    });
    await Promise.all([...writers, ...readers]);

    const final = await storage.read('race', '-1');
    const all = final.messages.map(hex);
    const total = v.writers.reduce((n, bs) => n + bs.reduce((k, b) => k + b.length, 0), 0);
    ensure(all.length === total, `${all.length} messages stored, ${total} appended`);
    const starts = new Set(results.map((r) => r.start));
    ensure(starts.size === results.length, 'two commits got the same start offset');
    for (const r of results) {
      const i = final.messages.findIndex((m) => hex(m) === hex(r.batch[0]!));
      ensure(i >= 0, 'an acknowledged batch is missing');
      ensure(
        show(all.slice(i, i + r.batch.length)) === show(r.batch.map(hex)),
        'a batch was split by another commit',
      );
      ensure(
        samePosition(r.start, advanceOffset('0000000000000000_0000000000000000', final.messages.slice(0, i))),
        () => `batch of writer ${r.writer} acknowledged at ${r.start} but stored at message ${i}`,
      );
      ensure(samePosition(r.next, advanceOffset(r.start, r.batch)), 'nextOffset does not follow the batch');
    }
    for (let w = 0; w < v.writers.length; w++) {
      const mine = final.messages.filter((m) => m[0] === w).map((m) => m[1]!);
      ensure(
        mine.every((x, k) => k === 0 || x > mine[k - 1]!),
        () => `writer ${w}'s messages are out of order: ${mine}`,
      );
    }
    for (const s of snapshots) {
      const got = s.messages.map(hex);
      ensure(show(got) === show(all.slice(0, got.length)), 'a read is not a prefix of the final content');
      ensure(
        samePosition(s.nextOffset, advanceOffset('0000000000000000_0000000000000000', s.messages)),
        'a read returned a tail that does not match its messages',
      );
    }
  });
}

/**
 * A subscriber that subscribes, reads, and then reads again on every hint observes every commit: after the writers
 * finish and the hint-driven reads settle, it has seen the whole stream (and its close).
 */
export function checkSubscriberNeverMisses(
  harness: StorageHarness,
  options?: ConformanceOptions,
): Promise<void> {
  const arb = fc.record({
    initial: fc.array(payloadArb, { maxLength: 3 }),
    commits: fc.array(
      fc.oneof(
        fc
          .array(payloadArb, { minLength: 1, maxLength: 3 })
          .map((messages) => ({ kind: 'append' as const, messages })),
        fc.constant({ kind: 'yield' as const }),
      ),
      { maxLength: 10 },
    ),
    close: fc.boolean(),
  });
  return assertOverSessions(harness, options, arb, async ({ storage }, v) => {
    await storage.createStream('sub', { contentType: CT, messages: v.initial });
    let cursor = '-1';
    const seen: string[] = [];
    let closedSeen = false;
    let dirty = false;
    let draining: Promise<void> | undefined;
    const drain = async () => {
      do {
        dirty = false;
        const r = await storage.read('sub', cursor);
        seen.push(...r.messages.map(hex));
        cursor = r.nextOffset;
        closedSeen = r.closed && r.upToDate;
      } while (dirty);
      draining = undefined;
    };
    const wake = () => {
      dirty = true;
      draining ??= drain();
    };
    const subscription = await storage.subscribe('sub', wake);
    try {
      draining = drain();
      await draining;
      for (const c of v.commits) {
        if (c.kind === 'append') await storage.append('sub', { messages: c.messages, contentType: CT });
        else await Promise.resolve();
      }
      if (v.close) await storage.closeStream('sub');
      while (draining !== undefined) await draining;
    } finally {
      subscription.unsubscribe();
    }
    const all = await readAll(storage, 'sub');
    ensure(show(seen) === show(all), () => `the subscriber saw ${show(seen)}, the stream holds ${show(all)}`);
    ensure(
      closedSeen === v.close,
      `the subscriber saw closed=${closedSeen}, the stream was closed=${v.close}`,
    );
  });
}

export const CONCURRENCY: readonly PropertyCheck[] = [
  {
    title: 'parallel appenders and readers: unique monotonic offsets, writer order kept, no torn reads',
    run: checkParallelAppendersAndReaders,
  },
  { title: 'a subscriber never misses a commit', run: checkSubscriberNeverMisses },
];

/** Runs both concurrency properties. */
export async function checkConcurrency(harness: StorageHarness, options?: ConformanceOptions): Promise<void> {
  for (const c of CONCURRENCY) await c.run(harness, options);
}

/** Registers the concurrency properties. */
export function describeConcurrency(
  name: string,
  harness: StorageHarness,
  options: ConformanceOptions = {},
): void {
  const { timeout } = resolveOptions(options);
  describe(`${name}: concurrency`, () => {
    for (const c of CONCURRENCY) it(c.title, () => c.run(harness, options), timeout);
  });
}
