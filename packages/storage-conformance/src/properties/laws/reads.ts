import fc from 'fast-check';
import { concreteOffsetArb } from '../../arbitraries.js';
import { ensure, hex } from '../../compare.js';
import type { StorageHarness } from '../../harness.js';
import type { ConformanceOptions } from '../../options.js';
import { advanceOffset, assertOverSessions, position, samePosition, show } from '../common.js';
import { batchesArb, CT, fill, offsetString, smallBatchesArb } from './fixtures.js';

// Laws of offsets and reads: offsets advance by exactly each message, reads from any offset return the suffix, reads
// racing appends see whole commits, and byte budgets page without losing or repeating a message.

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
