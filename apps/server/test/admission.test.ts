import { describe, expect, it } from 'vitest';
import { type AdmissionClock, AdmissionQueue, type Release, type Ticket } from '../src/http/admission.js';
import { sizeLimits } from '../src/http/sizing.js';

/**
 * Manual timers for the admission queue: time moves only in `advance`, which runs due timers in order. (Not the shared
 * `ManualClock` of `@streamkeep/storage/testing`, which has no timers.)
 */
class ManualTimers implements AdmissionClock {
  private t = 0;
  private seq = 0;
  private timers: { at: number; id: number; fn: () => void }[] = [];

  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.push({ at: this.t + ms, id, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== handle);
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = due.at;
      due.fn();
    }
    this.t = end;
  }
}

type Outcome = 'waiting' | 'admitted' | 'OVERLOADED' | 'REQUEST_ABORTED';

/** A ticket's fate, readable synchronously after `settle()`. */
function track(ticket: Ticket): { state: Outcome; release: Release; retryAfter?: string } {
  const t: { state: Outcome; release: Release; retryAfter?: string } = {
    state: 'waiting',
    release: () => {},
  };
  ticket.promise.then(
    (release) => {
      t.state = 'admitted';
      t.release = release;
    },
    (err: { code: Outcome; headers: Record<string, string> }) => {
      t.state = err.code;
      t.retryAfter = err.headers['Retry-After'];
    },
  );
  return t;
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

function queue(concurrency: number, maxQueued = 100) {
  const clock = new ManualTimers();
  const q = new AdmissionQueue({ concurrency, maxQueued, targetMs: 100, intervalMs: 1_000, clock });
  return { clock, q };
}

describe('AdmissionQueue', () => {
  it('admits up to the concurrency at once, queues the rest in order, and each release admits the next', async () => {
    const { q } = queue(2);
    const a = q.tryAcquire()!;
    const b = q.tryAcquire()!;
    expect(q.tryAcquire()).toBeUndefined();
    const waiters = [1, 2, 3].map(() => track(q.enqueue()));
    expect(q.queued).toBe(3);
    a();
    a(); // idempotent: frees one slot only
    await settle();
    expect(waiters.map((w) => w.state)).toEqual(['admitted', 'waiting', 'waiting']);
    b();
    await settle();
    expect(waiters.map((w) => w.state)).toEqual(['admitted', 'admitted', 'waiting']);
    waiters[1]!.release();
    await settle();
    expect(waiters.map((w) => w.state)).toEqual(['admitted', 'admitted', 'admitted']);
    expect(q.inFlight).toBe(2);
    expect(q.queued).toBe(0);
  });

  it('sheds nothing while every wait stays within the target, however long the queue stands', async () => {
    const { clock, q } = queue(1);
    let held = q.tryAcquire()!;
    for (let i = 0; i < 50; i++) {
      const next = track(q.enqueue());
      clock.advance(100); // exactly the target: not more
      held();
      await settle();
      expect(next.state).toBe('admitted');
      held = next.release;
    }
    expect(q.shed).toBe(0);
    expect(q.overloaded).toBe(false);
  });

  it('admits late waiters until the delay has stayed above the target for the interval, then sheds them', async () => {
    const { clock, q } = queue(1);
    let held = q.tryAcquire()!;
    // Each waiter gets the slot after 150 ms (> 100): the delay first crossed the target at t = 100, so the queue
    // stands from t = 1,100 on.
    const fates: ReturnType<typeof track>[] = [];
    for (let i = 0; i < 12; i++) {
      const w = track(q.enqueue());
      fates.push(w);
      clock.advance(150);
      await settle();
      if (w.state !== 'waiting') continue;
      held();
      await settle();
      held = w.release;
    }
    const admitted = fates.filter((f) => f.state === 'admitted').length;
    expect(clock.now()).toBe(1_800);
    // Waiters released at t = 150 … 1,050 were admitted; those at 1,200 and later were shed.
    expect(admitted).toBe(7);
    expect(fates.slice(7).every((f) => f.state === 'OVERLOADED' && f.retryAfter === '1')).toBe(true);
    expect(q.overloaded).toBe(true);
    // A waiter admitted within the target ends the episode.
    const quick = track(q.enqueue());
    clock.advance(50);
    held();
    await settle();
    expect(quick.state).toBe('admitted');
    expect(q.overloaded).toBe(false);
  });

  it('when a slot frees while the queue stands, sheds the waiters older than the target and admits the next', async () => {
    const { clock, q } = queue(1);
    const held = q.tryAcquire()!;
    const old = [track(q.enqueue()), track(q.enqueue())];
    clock.advance(1_050);
    const young = track(q.enqueue());
    clock.advance(50); // t = 1,100, just before the timer: the release decides
    held();
    await settle();
    expect(old.map((w) => w.state)).toEqual(['OVERLOADED', 'OVERLOADED']);
    expect(young.state).toBe('admitted');
    expect(q.overloaded).toBe(false);
  });

  it('sheds on a timer when storage stalls, within target + interval, keeping waiters younger than the target', async () => {
    const { clock, q } = queue(1);
    q.tryAcquire(); // never released: storage hangs
    const first = track(q.enqueue());
    clock.advance(1_000);
    const young = track(q.enqueue());
    clock.advance(100); // t = 1,100: the queue has stood above target since t = 100, for exactly the interval
    await settle();
    expect(first.state).toBe('waiting');
    clock.advance(1); // t = 1,101: first waited 1,101 ms, young 101 ms; both over the target
    await settle();
    expect(first.state).toBe('OVERLOADED');
    expect(young.state).toBe('OVERLOADED');
    // While overloaded, a newcomer is shed as soon as it has waited more than the target, not before.
    const late = track(q.enqueue());
    clock.advance(100);
    await settle();
    expect(late.state).toBe('waiting');
    clock.advance(1);
    await settle();
    expect(late.state).toBe('OVERLOADED');
    expect(q.shed).toBe(3);
    expect(q.queued).toBe(0);
  });

  it('refuses at once past maxQueued, and with maxQueued 0 whenever every slot is taken', async () => {
    const { q } = queue(1, 2);
    const held = q.tryAcquire()!;
    q.enqueue();
    q.enqueue();
    expect(() => q.enqueue()).toThrow(expect.objectContaining({ code: 'OVERLOADED', status: 503 }));
    expect(q.shed).toBe(1);
    held();
    await settle();
    expect(q.queued).toBe(1);
    q.enqueue(); // room again

    const none = queue(1, 0).q;
    const only = none.tryAcquire()!;
    expect(() => none.enqueue()).toThrow(expect.objectContaining({ code: 'OVERLOADED' }));
    only();
    expect(none.tryAcquire()).toBeTypeOf('function');
  });

  it('drops a waiter whose client went away; a release skips it', async () => {
    const { q } = queue(1);
    const held = q.tryAcquire()!;
    const goneTicket = q.enqueue();
    const gone = track(goneTicket);
    const next = track(q.enqueue());
    goneTicket.cancel();
    await settle();
    expect(gone.state).toBe('REQUEST_ABORTED');
    expect(q.queued).toBe(1);
    held();
    await settle();
    expect(next.state).toBe('admitted');
    expect(q.inFlight).toBe(1);
  });
});

describe('sizeLimits', () => {
  const GiB = 1024 ** 3;
  it('sizes live reads, slots and the queue from memory, and keeps live reads under the descriptor limit', () => {
    // A 4 GiB heap with ulimit -n 20000: 10,000 long-polls are allowed.
    expect(sizeLimits({ memoryBytes: 4 * GiB, fileDescriptors: 20_000 }, 1024 * 1024)).toEqual({
      maxLiveReads: 18_000,
      maxInFlight: 1_024,
      maxQueued: 32_768,
    });
    // A small container: fewer of each, never below the floors.
    expect(sizeLimits({ memoryBytes: 256 * 1024 ** 2, fileDescriptors: undefined }, 1024 * 1024)).toEqual({
      maxLiveReads: 2_048,
      maxInFlight: 64,
      maxQueued: 2_048,
    });
    // ulimit -n 1024: live reads stop where connections would be refused by the kernel.
    expect(sizeLimits({ memoryBytes: 4 * GiB, fileDescriptors: 1_024 }, 1024 * 1024).maxLiveReads).toBe(512);
    expect(sizeLimits({ memoryBytes: 64 * GiB, fileDescriptors: 1_000_000 }, 1024 * 1024).maxInFlight).toBe(
      4_096,
    );
  });
});
