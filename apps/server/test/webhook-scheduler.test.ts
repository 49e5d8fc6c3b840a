import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WakeScheduler } from '../src/webhooks/scheduler.js';

type Outcome = 'done' | 'again' | 'drop' | 'fail';
interface Call {
  id: string;
  attempt: number;
  finish: (o: Outcome) => void;
}

/** A scheduler whose deliveries wait until the test finishes them. */
function harness(
  concurrency: number,
  random = () => 0.5,
  pacing: { minIntervalMs?: number; ratePerSecond?: number; burst?: number } = {},
) {
  const calls: Call[] = [];
  const open = new Set<Call>();
  const scheduler = new WakeScheduler({
    concurrency,
    random,
    ...pacing,
    // Fake timers move `Date.now` too: the pacing is tested on the same manual clock as the timers.
    now: () => Date.now(),
    deliver: (id, attempt) =>
      new Promise((resolve, reject) => {
        const call: Call = {
          id,
          attempt,
          finish: (o) => {
            open.delete(call);
            if (o === 'fail') reject(new Error('receiver down'));
            else resolve(o);
          },
        };
        calls.push(call);
        open.add(call);
      }),
  });
  return { scheduler, calls, open };
}
const turn = () => new Promise<void>((r) => setImmediate(r));

afterEach(() => {
  vi.useRealTimers();
});

describe('webhook wake scheduler', () => {
  it('coalesces wakes: many while queued are one delivery, many while in flight are one more', async () => {
    const { scheduler, calls, open } = harness(1);
    scheduler.wake('a');
    scheduler.wake('b');
    for (let i = 0; i < 100; i++) scheduler.wake('b');
    expect(calls.map((c) => c.id)).toEqual(['a']);
    for (let i = 0; i < 100; i++) scheduler.wake('a');
    [...open][0]!.finish('done');
    await turn();
    expect(calls.map((c) => c.id)).toEqual(['a', 'b']);
    [...open][0]!.finish('done');
    await turn();
    expect(calls.map((c) => c.id)).toEqual(['a', 'b', 'a']);
    [...open][0]!.finish('done');
    await scheduler.idle();
    expect(calls).toHaveLength(3);
    expect(scheduler.stats()).toEqual({ subscriptions: 0, queued: 0, inFlight: 0, retrying: 0, resting: 0 });
  });

  it('keeps at most `concurrency` deliveries in flight, and never two of one subscription', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant('wake' as const),
              id: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'),
            }),
            fc.record({
              op: fc.constant('finish' as const),
              pick: fc.nat(),
              outcome: fc.constantFrom<Outcome>('done', 'done', 'again'),
            }),
          ),
          { maxLength: 80 },
        ),
        async (concurrency, ops) => {
          const { scheduler, calls, open } = harness(concurrency);
          /** Index in `calls` of each id's last wake; a delivery started after it serves it. */
          const lastWake = new Map<string, number>();
          for (const o of ops) {
            if (o.op === 'wake') {
              lastWake.set(o.id, calls.length);
              scheduler.wake(o.id);
            } else if (open.size > 0) {
              [...open][o.pick % open.size]!.finish(o.outcome);
            }
            await turn();
            expect(open.size).toBeLessThanOrEqual(concurrency);
            const ids = [...open].map((c) => c.id);
            expect(new Set(ids).size).toBe(ids.length);
          }
          // Drain: every wake is served by a delivery that started after it (none is lost). A delivery that was
          // already in flight at the wake is not enough: it may have read the state before the new work.
          while (open.size > 0) {
            [...open][0]!.finish('done');
            await turn();
          }
          await scheduler.idle();
          for (const [id, at] of lastWake) {
            expect(calls.slice(at).some((c) => c.id === id)).toBe(true);
          }
        },
      ),
      { seed: 20261206, numRuns: 200 },
    );
  });

  it('retries a failed delivery with exponential backoff from 1 s to 60 s and ±20 % jitter', async () => {
    vi.useFakeTimers();
    const low = harness(1, () => 0);
    expect([1, 2, 3, 6, 7, 8].map((a) => low.scheduler.retryDelay(a))).toEqual([
      800, 1600, 3200, 25600, 48000, 48000,
    ]);
    const high = harness(1, () => 0.999999);
    expect([1, 7, 20].map((a) => high.scheduler.retryDelay(a))).toEqual([1200, 72000, 72000]);

    const { scheduler, calls, open } = harness(1);
    scheduler.wake('a');
    for (const wait of [1000, 2000, 4000]) {
      [...open][0]!.finish('fail');
      await vi.advanceTimersByTimeAsync(0);
      expect(scheduler.stats().retrying).toBe(1);
      // A wake while the retry waits does not cut the wait short.
      scheduler.wake('a');
      await vi.advanceTimersByTimeAsync(wait - 1);
      expect(open.size).toBe(0);
      await vi.advanceTimersByTimeAsync(1);
      expect(open.size).toBe(1);
    }
    expect(calls.map((c) => c.attempt)).toEqual([1, 2, 3, 4]);
    [...open][0]!.finish('done');
    await scheduler.idle();
    expect(scheduler.stats().subscriptions).toBe(0);
  });

  it("a delivery that finds its subscription gone ('drop') ends it, wakes during it included", async () => {
    const { scheduler, calls, open } = harness(2);
    scheduler.wake('a');
    scheduler.wake('a');
    [...open][0]!.finish('drop');
    await scheduler.idle();
    expect(calls).toHaveLength(1);
    expect(scheduler.stats().subscriptions).toBe(0);
  });

  it('cancel drops a queued or retrying wake; close waits for deliveries in flight and starts no more', async () => {
    vi.useFakeTimers();
    const { scheduler, calls, open } = harness(1);
    scheduler.wake('a');
    scheduler.wake('b');
    scheduler.cancel('b');
    [...open][0]!.finish('fail');
    await vi.advanceTimersByTimeAsync(0);
    scheduler.cancel('a');
    await vi.advanceTimersByTimeAsync(120_000);
    expect(calls.map((c) => c.id)).toEqual(['a']);

    scheduler.wake('c');
    scheduler.wake('d');
    let closed = false;
    const closing = scheduler.close().then(() => {
      closed = true;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(closed).toBe(false);
    [...open][0]!.finish('again');
    await closing;
    scheduler.wake('e');
    expect(calls.map((c) => c.id)).toEqual(['a', 'c']);
  });

  it('spaces deliveries to one subscription by minIntervalMs; the first wake after quiet goes out at once', async () => {
    vi.useFakeTimers();
    const { scheduler, calls, open } = harness(4, () => 0.5, { minIntervalMs: 100 });
    const starts: number[] = [];
    const t0 = Date.now();
    const finishAll = async () => {
      for (const c of [...open]) c.finish('done');
      await vi.advanceTimersByTimeAsync(0);
    };
    scheduler.wake('a');
    expect(calls).toHaveLength(1); // at once: nothing was delivered to `a` before
    starts.push(Date.now() - t0);
    await vi.advanceTimersByTimeAsync(10);
    await finishAll();
    // 50 wakes during the rest are one delivery when the rest ends, 100 ms after the first one started.
    for (let i = 0; i < 50; i++) {
      scheduler.wake('a');
      await vi.advanceTimersByTimeAsync(1);
    }
    expect(calls).toHaveLength(1);
    expect(scheduler.stats().resting).toBe(1);
    // Another subscription is not held back by `a`'s rest.
    scheduler.wake('b');
    expect(calls.map((c) => c.id)).toEqual(['a', 'b']);
    await vi.advanceTimersByTimeAsync(100 - (Date.now() - t0) - 1);
    expect(calls.filter((c) => c.id === 'a')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls.filter((c) => c.id === 'a')).toHaveLength(2);
    starts.push(Date.now() - t0);
    // A delivery answering 'again' (work remains) also waits out the rest.
    [...open].find((c) => c.id === 'a')!.finish('again');
    await vi.advanceTimersByTimeAsync(99);
    expect(calls.filter((c) => c.id === 'a')).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls.filter((c) => c.id === 'a')).toHaveLength(3);
    starts.push(Date.now() - t0);
    expect(starts).toEqual([0, 100, 200]);
    // A rest that no wake came during ends quietly, and the next wake goes out at once.
    await finishAll();
    await vi.advanceTimersByTimeAsync(500);
    expect(scheduler.stats()).toEqual({ subscriptions: 0, queued: 0, inFlight: 0, retrying: 0, resting: 0 });
    scheduler.wake('a');
    expect(calls).toHaveLength(5);
    // `idle()` waits for a delivery due after a rest.
    await finishAll();
    scheduler.wake('a');
    let idle = false;
    void scheduler.idle().then(() => {
      idle = true;
    });
    await vi.advanceTimersByTimeAsync(99);
    expect(idle).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await finishAll();
    expect(idle).toBe(true);
  });

  it('caps delivery starts per second across subscriptions, queued ones coalescing meanwhile', async () => {
    vi.useFakeTimers();
    const { scheduler, calls, open } = harness(64, () => 0.5, { ratePerSecond: 10, burst: 3 });
    const ids = Array.from({ length: 20 }, (_, i) => `s${i}`);
    for (const id of ids) scheduler.wake(id);
    expect(calls).toHaveLength(3); // the burst
    for (const c of [...open]) c.finish('done');
    // Queued subscriptions are woken again and again: still one delivery each.
    for (let round = 0; round < 5; round++) for (const id of ids) scheduler.wake(id);
    await vi.advanceTimersByTimeAsync(99);
    expect(calls).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(4); // one token per 100 ms
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toHaveLength(14);
    await vi.advanceTimersByTimeAsync(600);
    expect(calls).toHaveLength(20);
    // In order of their wake, each once; the three delivered first were woken again after their delivery, so they
    // come once more, last.
    expect(calls.map((c) => c.id)).toEqual(ids);
    await vi.advanceTimersByTimeAsync(300);
    expect(calls.map((c) => c.id)).toEqual([...ids, 's0', 's1', 's2']);
    for (const c of [...open]) c.finish('done');
    await vi.advanceTimersByTimeAsync(0);
    await scheduler.idle();
    // After a quiet spell the bucket is full again.
    await vi.advanceTimersByTimeAsync(10_000);
    for (const id of ids.slice(0, 4)) scheduler.wake(id);
    expect(calls).toHaveLength(26);
  });

  it('refuses nonsensical pacing', () => {
    const deliver = async () => 'done' as const;
    expect(() => new WakeScheduler({ deliver, minIntervalMs: -1 })).toThrow(RangeError);
    expect(() => new WakeScheduler({ deliver, ratePerSecond: 0 })).toThrow(RangeError);
    expect(() => new WakeScheduler({ deliver, ratePerSecond: 5, burst: 0 })).toThrow(RangeError);
  });

  it('loses no wake when paced: each is served by a delivery that starts after it, never two at once', async () => {
    vi.useFakeTimers();
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('wake' as const), id: fc.constantFrom('a', 'b', 'c', 'd') }),
            fc.record({
              op: fc.constant('finish' as const),
              pick: fc.nat(),
              outcome: fc.constantFrom<Outcome>('done', 'done', 'again', 'drop'),
            }),
            fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 80 }) }),
          ),
          { maxLength: 60 },
        ),
        async (ops) => {
          const { scheduler, calls, open } = harness(2, () => 0.5, {
            minIntervalMs: 30,
            ratePerSecond: 40,
            burst: 2,
          });
          const lastWake = new Map<string, number>();
          for (const o of ops) {
            if (o.op === 'wake') {
              lastWake.set(o.id, calls.length);
              scheduler.wake(o.id);
            } else if (o.op === 'finish') {
              if (open.size > 0) {
                const call = [...open][o.pick % open.size]!;
                // A dropped subscription is gone: wakes before the drop need no delivery.
                if (o.outcome === 'drop') lastWake.delete(call.id);
                call.finish(o.outcome);
              }
            } else {
              await vi.advanceTimersByTimeAsync(o.ms);
            }
            await vi.advanceTimersByTimeAsync(0);
            const ids = [...open].map((c) => c.id);
            expect(new Set(ids).size).toBe(ids.length);
          }
          for (let i = 0; i < 1000 && (open.size > 0 || scheduler.stats().subscriptions > 0); i++) {
            for (const c of [...open]) c.finish('done');
            await vi.advanceTimersByTimeAsync(50);
          }
          expect(scheduler.stats().subscriptions).toBe(0);
          for (const [id, at] of lastWake) {
            expect(calls.slice(at).some((c) => c.id === id)).toBe(true);
          }
        },
      ),
      { seed: 20261206, numRuns: 150 },
    );
  });
});
