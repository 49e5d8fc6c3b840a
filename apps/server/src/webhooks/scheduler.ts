import { reportRetry } from './events.js';

/**
 * Webhook wakes, off the append path: an append (or anything else that gives a subscription work) calls
 * {@link WakeScheduler.wake} and returns at once; deliveries run in the background, at most `concurrency` at a time.
 *
 * - **Coalesced.** A subscription is in one of three states: idle, queued, or in flight. Waking a queued one does
 *   nothing; waking one in flight marks it to run once more after the current delivery (the receiver then sees
 *   everything that arrived meanwhile in one wake), so a burst of 1,000 appends costs a handful of deliveries.
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
  | { kind: 'flight'; attempt: number; again: boolean }
  | {
      kind: 'waiting';
      attempt: number;
      timer: ReturnType<typeof setTimeout>;
    };

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

  constructor(private readonly options: WakeSchedulerOptions) {
    this.concurrency = options.concurrency ?? 16;
    this.base = options.retryBaseMs ?? 1000;
    this.max = options.retryMaxMs ?? 60_000;
    this.jitter = options.jitter ?? 0.2;
    this.random = options.random ?? Math.random;
    if (!(this.concurrency >= 1)) throw new RangeError('concurrency must be at least 1');
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
    }
  }

  /** Forgets `id` (deleted subscription): a queued or retrying wake is dropped; one in flight finishes, alone. */
  cancel(id: string): void {
    const s = this.states.get(id);
    if (s === undefined) return;
    if (s.kind === 'waiting') clearTimeout(s.timer);
    this.states.delete(id);
  }

  /** Retry delay before attempt `attempt + 1`, jitter included. */
  retryDelay(attempt: number): number {
    const raw = Math.min(this.max, this.base * 2 ** Math.min(attempt - 1, 30));
    return Math.max(0, Math.round(raw * (1 + this.jitter * (2 * this.random() - 1))));
  }

  stats(): { subscriptions: number; queued: number; inFlight: number; retrying: number } {
    let retrying = 0;
    for (const s of this.states.values()) if (s.kind === 'waiting') retrying++;
    return { subscriptions: this.states.size, queued: this.ready.length, inFlight: this.inFlight, retrying };
  }

  /** Resolves once nothing is queued or in flight (retries waiting on their timer do not count). */
  idle(): Promise<void> {
    if (this.inFlight === 0 && this.ready.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops: no new deliveries start, retries are cancelled; resolves when the deliveries in flight have ended. */
  async close(): Promise<void> {
    this.closed = true;
    for (const [id, s] of this.states) {
      if (s.kind === 'waiting') clearTimeout(s.timer);
      if (s.kind !== 'flight') this.states.delete(id);
    }
    this.ready.length = 0;
    await this.idle();
  }

  private pump(): void {
    while (this.inFlight < this.concurrency && this.ready.length > 0) {
      const id = this.ready.shift()!;
      const s = this.states.get(id);
      if (s === undefined || s.kind !== 'queued') continue;
      this.inFlight++;
      const flight: State = { kind: 'flight', attempt: s.attempt, again: false };
      this.states.set(id, flight);
      void this.run(id, flight);
    }
    if (this.inFlight === 0 && this.ready.length === 0) {
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
        this.states.set(id, { kind: 'queued', attempt });
        this.ready.push(id);
        this.pump();
      }, delay);
      timer.unref?.();
      this.states.set(id, { kind: 'waiting', attempt, timer });
    } else if (outcome === 'again' || flight.again) {
      this.states.set(id, { kind: 'queued', attempt: 1 });
      this.ready.push(id);
    } else {
      this.states.delete(id);
    }
    this.pump();
  }
}
