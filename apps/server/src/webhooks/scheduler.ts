import { reportRetry } from './events.js';

/**
 * Webhook wakes, off the append path: an append (or anything else that gives a subscription work) calls
 * {@link WakeScheduler.wake} and returns at once; deliveries run in the background, at most `concurrency` at a time.
 *
 * - **Coalesced.** A subscription is idle, queued, in flight, resting or waiting for a retry. Waking a queued one
 *   does nothing; waking one in flight marks it to run once more after the current delivery (the receiver then sees
 *   everything that arrived meanwhile in one wake), so a burst of 1,000 appends costs a handful of deliveries.
 * - **Spaced per subscription.** A delivery to a subscription starts at least `minIntervalMs` after its previous one
 *   started: for that long after a delivery the subscription rests, and wakes meanwhile become one delivery when the
 *   rest ends. The first wake after a quiet spell goes out at once, so an idle subscription is woken as fast as
 *   before; a busy one is woken at most `1000 / minIntervalMs` times a second, each wake carrying everything since.
 * - **Rate-capped per instance.** Deliveries start at most `ratePerSecond` a second (a token bucket holding up to
 *   `burst` starts), so that however many subscriptions have work, delivering their wakes takes a bounded share of
 *   the process from the appends that raise them. Subscriptions over the cap wait queued, in order of their wake, and
 *   keep coalescing meanwhile: under load each wake carries more, rather than wakes costing more.
 * - **Only under load.** Both apply while `paced()` says so (the server: while appends keep the process busy), so
 *   that an idle server wakes subscriptions, and fans one append out to many, as fast as it can.
 * - **Retried with backoff.** A failed delivery is tried again after `base · 2^(attempt-1)`, capped at `max`, with
 *   ±`jitter` (uniform), so that receivers that failed together do not come back together. A wake that arrives while
 *   a retry waits does not cut the wait short (the receiver is down; more work does not bring it back sooner).
 * - **Bounded.** The queue holds each subscription once; memory is proportional to the subscriptions, not the wakes.
 */
export interface WakeSchedulerOptions {
  /** Deliveries in flight at once. @default 16 */
  readonly concurrency?: number;
  /** First retry delay. @default 1000 */
  readonly retryBaseMs?: number;
  /** Longest retry delay. @default 60000 */
  readonly retryMaxMs?: number;
  /** Relative jitter of a retry delay, 0–1. @default 0.2 */
  readonly jitter?: number;
  /** Uniform random numbers in [0, 1). @default Math.random */
  readonly random?: () => number;
  /** Least time from the start of a delivery to a subscription to the start of its next one, in ms. @default 0 */
  readonly minIntervalMs?: number;
  /** Deliveries started per second by this scheduler, all subscriptions together. @default Infinity (no cap) */
  readonly ratePerSecond?: number;
  /** Deliveries that may start at once after a quiet spell, before the rate applies. @default ratePerSecond, ≥ 1 */
  readonly burst?: number;
  /** Milliseconds of a monotonic clock (injected by tests). @default performance.now */
  readonly now?: () => number;
  /**
   * Whether the spacing and the cap apply now (the server passes its {@link LoadGauge}: only while appends keep the
   * process busy). Asked when a delivery would start or rest. @default always
   */
  readonly paced?: () => boolean;
  /**
   * Delivers one wake of `id`. Resolves `'done'` when the subscription has nothing more to deliver, `'again'` when it
   * was delivered but work remains (delivered again at once), `'drop'` when the subscription is gone; throws to retry.
   */
  readonly deliver: (id: string, attempt: number) => Promise<'done' | 'again' | 'drop'>;
  /** Called with each failure that will be retried (for logs and metrics). */
  readonly onRetry?: ((id: string, attempt: number, delayMs: number, err: unknown) => void) | undefined;
}

type State =
  | { kind: 'queued'; attempt: number }
  | { kind: 'flight'; attempt: number; again: boolean; startedAt: number }
  | {
      kind: 'waiting';
      attempt: number;
      timer: ReturnType<typeof setTimeout>;
    }
  /** Within `minIntervalMs` of its last delivery's start; `woken`: a delivery is due when the rest ends. */
  | { kind: 'resting'; woken: boolean; timer: ReturnType<typeof setTimeout> };

export class WakeScheduler {
  private readonly states = new Map<string, State>();
  /** Subscriptions ready to deliver, in order of their wake. */
  private readonly ready: string[] = [];
  private inFlight = 0;
  private closed = false;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly concurrency: number;
  private readonly base: number;
  private readonly max: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private readonly minInterval: number;
  private readonly rate: number;
  private readonly burst: number;
  private readonly now: () => number;
  private readonly paced: () => boolean;
  /** Delivery starts the bucket holds, as of `refilledAt`. */
  private tokens: number;
  private refilledAt: number;
  /** Set while the pump waits for the bucket to refill. */
  private refill: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly options: WakeSchedulerOptions) {
    this.concurrency = options.concurrency ?? 16;
    this.base = options.retryBaseMs ?? 1000;
    this.max = options.retryMaxMs ?? 60_000;
    this.jitter = options.jitter ?? 0.2;
    this.random = options.random ?? Math.random;
    this.minInterval = options.minIntervalMs ?? 0;
    this.rate = options.ratePerSecond ?? Number.POSITIVE_INFINITY;
    this.burst = options.burst ?? Math.max(1, Math.min(this.rate, 1e9));
    this.now = options.now ?? (() => performance.now());
    this.paced = options.paced ?? (() => true);
    if (!(this.concurrency >= 1)) throw new RangeError('concurrency must be at least 1');
    if (!(this.minInterval >= 0)) throw new RangeError('minIntervalMs must be at least 0');
    if (!(this.rate > 0)) throw new RangeError('ratePerSecond must be above 0');
    if (!(this.burst >= 1)) throw new RangeError('burst must be at least 1');
    this.tokens = this.burst;
    this.refilledAt = this.now();
  }

  /** Gives `id` work: it is delivered soon (once, however many wakes arrive before the delivery starts). */
  wake(id: string): void {
    if (this.closed) return;
    const s = this.states.get(id);
    if (s === undefined) {
      this.states.set(id, { kind: 'queued', attempt: 1 });
      this.ready.push(id);
      this.pump();
    } else if (s.kind === 'flight') {
      s.again = true;
    } else if (s.kind === 'resting') {
      s.woken = true;
    }
  }

  /** True when a delivery of `id` is already due: queued, retrying, or woken while in flight or resting. */
  pending(id: string): boolean {
    const s = this.states.get(id);
    if (s === undefined) return false;
    if (s.kind === 'flight') return s.again;
    if (s.kind === 'resting') return s.woken;
    return true;
  }

  /** Forgets `id` (deleted subscription): a queued or retrying wake is dropped; one in flight finishes, alone. */
  cancel(id: string): void {
    const s = this.states.get(id);
    if (s === undefined) return;
    if (s.kind === 'waiting' || s.kind === 'resting') clearTimeout(s.timer);
    this.states.delete(id);
  }

  /** Retry delay before attempt `attempt + 1`, jitter included. */
  retryDelay(attempt: number): number {
    const raw = Math.min(this.max, this.base * 2 ** Math.min(attempt - 1, 30));
    return Math.max(0, Math.round(raw * (1 + this.jitter * (2 * this.random() - 1))));
  }

  stats(): { subscriptions: number; queued: number; inFlight: number; retrying: number; resting: number } {
    let retrying = 0;
    let resting = 0;
    for (const s of this.states.values()) {
      if (s.kind === 'waiting') retrying++;
      else if (s.kind === 'resting') resting++;
    }
    return {
      subscriptions: this.states.size,
      queued: this.ready.length,
      inFlight: this.inFlight,
      retrying,
      resting,
    };
  }

  /**
   * Resolves once nothing is queued, in flight or due after a rest (retries waiting on their timer, and rests no wake
   * came during, do not count).
   */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    if (this.inFlight > 0 || this.ready.length > 0) return false;
    for (const s of this.states.values()) if (s.kind === 'resting' && s.woken) return false;
    return true;
  }

  /** Stops: no new deliveries start, retries are cancelled; resolves when the deliveries in flight have ended. */
  async close(): Promise<void> {
    this.closed = true;
    for (const [id, s] of this.states) {
      if (s.kind === 'waiting' || s.kind === 'resting') clearTimeout(s.timer);
      if (s.kind !== 'flight') this.states.delete(id);
    }
    this.ready.length = 0;
    if (this.refill !== undefined) clearTimeout(this.refill);
    this.refill = undefined;
    await this.idle();
  }

  /** Takes one delivery start from the bucket; when it is empty, arms the refill timer and answers false. */
  private takeToken(): boolean {
    if (this.rate === Number.POSITIVE_INFINITY) return true;
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) * this.rate) / 1000);
    this.refilledAt = now;
    if (!this.paced()) return true;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    if (this.refill === undefined) {
      const wait = Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.rate));
      this.refill = setTimeout(() => {
        this.refill = undefined;
        this.pump();
      }, wait);
      this.refill.unref?.();
    }
    return false;
  }

  /** Queues `id` (attempt 1) now, or when its rest since the delivery that started at `startedAt` ends. */
  private requeue(id: string, startedAt: number, woken: boolean): void {
    const rest = startedAt + this.minInterval - this.now();
    if (rest <= 0 || this.closed || !this.paced()) {
      if (woken && !this.closed) this.enqueue(id, 1);
      else this.states.delete(id);
      return;
    }
    const state: Extract<State, { kind: 'resting' }> = {
      kind: 'resting',
      woken,
      timer: setTimeout(() => {
        if (this.states.get(id) !== state) return;
        if (state.woken) this.enqueue(id, 1);
        else this.states.delete(id);
        this.pump();
      }, rest),
    };
    state.timer.unref?.();
    this.states.set(id, state);
  }

  private enqueue(id: string, attempt: number): void {
    this.states.set(id, { kind: 'queued', attempt });
    this.ready.push(id);
  }

  private pump(): void {
    while (this.inFlight < this.concurrency && this.ready.length > 0) {
      const id = this.ready[0]!;
      const s = this.states.get(id);
      if (s === undefined || s.kind !== 'queued') {
        this.ready.shift();
        continue;
      }
      if (!this.takeToken()) break;
      this.ready.shift();
      this.inFlight++;
      const flight: State = { kind: 'flight', attempt: s.attempt, again: false, startedAt: this.now() };
      this.states.set(id, flight);
      void this.run(id, flight);
    }
    if (this.idleWaiters.length > 0 && this.isIdle()) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async run(id: string, flight: Extract<State, { kind: 'flight' }>): Promise<void> {
    let outcome: 'done' | 'again' | 'drop' | 'failed';
    let error: unknown;
    try {
      outcome = await this.options.deliver(id, flight.attempt);
    } catch (err) {
      outcome = 'failed';
      error = err;
    }
    this.inFlight--;
    const current = this.states.get(id);
    if (current !== flight || this.closed || outcome === 'drop') {
      if (current === flight) this.states.delete(id);
    } else if (outcome === 'failed') {
      const delay = this.retryDelay(flight.attempt);
      reportRetry({ attempt: flight.attempt, delayMs: delay });
      this.options.onRetry?.(id, flight.attempt, delay, error);
      const attempt = flight.attempt + 1;
      const timer = setTimeout(() => {
        if (this.states.get(id)?.kind !== 'waiting') return;
        this.enqueue(id, attempt);
        this.pump();
      }, delay);
      timer.unref?.();
      this.states.set(id, { kind: 'waiting', attempt, timer });
    } else {
      this.requeue(id, flight.startedAt, outcome === 'again' || flight.again);
    }
    this.pump();
  }
}
