import type { ServerResponse } from 'node:http';
import { HttpError } from '../error-status.js';

/** Gives back an admitted request's slot; idempotent. */
export type Release = () => void;

/** Time and timers of an {@link AdmissionQueue}, injectable so tests run on a manual clock. */
export interface AdmissionClock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const systemClock: AdmissionClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // Queued requests keep their sockets, and with them the process, alive; the shedding timer need not.
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface AdmissionOptions {
  /** Requests inside their storage calls at once. */
  readonly concurrency: number;
  /** Requests waiting for a slot; one more is shed at once. */
  readonly maxQueued: number;
  /** The queueing delay the server aims to keep under, in ms. */
  readonly targetMs: number;
  /** How long the delay must stay above `targetMs` before requests are shed, in ms. */
  readonly intervalMs: number;
  readonly clock?: AdmissionClock | undefined;
}

/** A place in the queue: `promise` resolves with the slot's release, or rejects with 503 `OVERLOADED`. */
export interface Ticket {
  readonly promise: Promise<Release>;
  /** Leaves the queue (the client went away); the promise rejects with `REQUEST_ABORTED`. */
  cancel(): void;
}

interface Waiter {
  readonly at: number;
  readonly resolve: (release: Release) => void;
  readonly reject: (err: HttpError) => void;
  done: boolean;
}

/**
 * Admission to storage work: at most `concurrency` requests are inside their storage calls; the rest wait in a FIFO
 * queue and are admitted one per released slot. Requests are refused by their queueing delay, not by a count, the
 * way CoDel treats a packet queue: a burst that drains in time is served whole, however large, while a queue that
 * stands (its delay stays above `targetMs` for `intervalMs`) is overload, and from then on every request that has
 * waited longer than `targetMs` is shed with 503 `OVERLOADED` and `Retry-After`, before it touches storage. The
 * first request admitted within the target ends the episode. `maxQueued` is a hard bound on the queue's memory.
 *
 * Shedding happens when a slot frees and, should storage stall with no slot freeing, on a timer, so that a waiting
 * request is answered within about `targetMs + intervalMs` whatever storage does.
 */
export class AdmissionQueue {
  private active = 0;
  private readonly queue: (Waiter | undefined)[] = [];
  private head = 0;
  private waiting = 0;
  /** When the queueing delay last rose above the target and has stayed there since; `undefined` while below. */
  private aboveSince: number | undefined;
  private timer: unknown;
  private timerDue = Number.POSITIVE_INFINITY;
  private shedTotal = 0;
  private readonly clock: AdmissionClock;

  constructor(private readonly options: AdmissionOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /** Requests holding a slot. */
  get inFlight(): number {
    return this.active;
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.waiting;
  }

  /** Requests shed since the queue was made (queue full or waited too long). */
  get shed(): number {
    return this.shedTotal;
  }

  /** True while the queue stands above the target: waiting requests older than the target are being shed. */
  get overloaded(): boolean {
    return this.isOverloaded(this.clock.now());
  }

  /** Takes a slot if one is free and nobody is waiting for one (waiting requests go first). */
  tryAcquire(): Release | undefined {
    if (this.active >= this.options.concurrency || this.waiting > 0) return undefined;
    // Admitted without queueing: a delay of zero, so the queue does not stand.
    this.aboveSince = undefined;
    this.active++;
    return this.releaser();
  }

  /**
   * Joins the queue.
   *
   * @throws HttpError `OVERLOADED` (503) when `maxQueued` requests are already waiting.
   */
  enqueue(): Ticket {
    if (this.waiting >= this.options.maxQueued) {
      this.shedTotal++;
      throw overloaded(`${this.options.maxQueued} requests are already waiting for storage`);
    }
    let waiter!: Waiter;
    const promise = new Promise<Release>((resolve, reject) => {
      waiter = { at: this.clock.now(), resolve, reject, done: false };
    });
    this.queue.push(waiter);
    this.waiting++;
    // A free slot with a queue behind it happens only between a release and its hand-over; serve in order.
    this.pump();
    if (!waiter.done) this.arm(this.clock.now());
    return {
      promise,
      cancel: () => {
        if (waiter.done) return;
        waiter.done = true;
        this.waiting--;
        waiter.reject(new HttpError('REQUEST_ABORTED', 'the client went away while waiting for storage'));
      },
    };
  }

  private releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.pump();
    };
  }

  /** Hands free slots to waiters in order, shedding those that waited too long while the queue stands. */
  private pump(): void {
    if (this.waiting === 0) return;
    const now = this.clock.now();
    while (this.active < this.options.concurrency) {
      const w = this.shift();
      if (w === undefined) break;
      if (now - w.at > this.options.targetMs) {
        this.aboveSince ??= w.at + this.options.targetMs;
        if (this.isOverloaded(now)) {
          this.shedWaiter(w, now);
          continue;
        }
      } else {
        this.aboveSince = undefined;
      }
      this.active++;
      w.resolve(this.releaser());
    }
  }

  /** The timer: sheds what a stalled storage would otherwise leave waiting. */
  private check(): void {
    this.timer = undefined;
    this.timerDue = Number.POSITIVE_INFINITY;
    const now = this.clock.now();
    let w = this.peek();
    if (w !== undefined && now - w.at > this.options.targetMs) {
      this.aboveSince ??= w.at + this.options.targetMs;
      while (w !== undefined && now - w.at > this.options.targetMs && this.isOverloaded(now)) {
        this.shift();
        this.shedWaiter(w, now);
        w = this.peek();
      }
    }
    this.arm(now);
  }

  /** Sets the timer for the earliest moment the oldest waiter could be shed (never later than one already set). */
  private arm(now: number): void {
    const w = this.peek();
    if (w === undefined) return;
    const { targetMs, intervalMs } = this.options;
    const above = this.aboveSince ?? w.at + targetMs;
    // Shedding needs a delay strictly over the target; a millisecond past the edge satisfies both conditions.
    const due = Math.max(w.at + targetMs, above + intervalMs) + 1;
    if (due >= this.timerDue) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timerDue = due;
    this.timer = this.clock.setTimeout(() => this.check(), Math.max(0, due - now));
  }

  private isOverloaded(now: number): boolean {
    return this.aboveSince !== undefined && now - this.aboveSince >= this.options.intervalMs;
  }

  private shedWaiter(w: Waiter, now: number): void {
    w.done = true;
    this.shedTotal++;
    w.reject(overloaded(`waited ${Math.round(now - w.at)} ms for storage while the server is overloaded`));
  }

  /** The oldest live waiter, leaving it queued (cancelled ones are dropped on the way). */
  private peek(): Waiter | undefined {
    while (this.head < this.queue.length) {
      const w = this.queue[this.head]!;
      if (!w.done) return w;
      this.queue[this.head++] = undefined;
    }
    this.compact();
    return undefined;
  }

  private shift(): Waiter | undefined {
    const w = this.peek();
    if (w === undefined) return undefined;
    this.queue[this.head++] = undefined;
    this.waiting--;
    w.done = true;
    this.compact();
    return w;
  }

  /** Drops the consumed front of the array once it is most of it (amortised O(1) per waiter). */
  private compact(): void {
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}

/**
 * Takes a slot for the request answered by `res`: at once when one is free, else through the queue, which the request
 * leaves if its client goes away while waiting.
 *
 * @throws HttpError `OVERLOADED` (503) when shed; `REQUEST_ABORTED` when the client went away.
 */
export function admitRequest(queue: AdmissionQueue, res: ServerResponse): Release | Promise<Release> {
  const release = queue.tryAcquire();
  if (release !== undefined) return release;
  const ticket = queue.enqueue();
  const gone = (): void => ticket.cancel();
  res.once('close', gone);
  return ticket.promise.finally(() => res.off('close', gone));
}

function overloaded(detail: string): HttpError {
  return new HttpError('OVERLOADED', `${detail}; retry shortly`, { 'Retry-After': '1' });
}
