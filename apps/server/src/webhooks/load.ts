import { type EventLoopUtilization, performance } from 'node:perf_hooks';

/** How {@link LoadGauge} judges the instance busy. */
export interface LoadGaugeOptions {
  /** Length of one judgement window, in ms. @default 250 */
  readonly windowMs?: number;
  /** Event-loop utilisation (0–1) over a window from which the instance counts as saturated. @default 0.7 */
  readonly threshold?: number;
  /** The process's event-loop utilisation (injected by tests). @default performance.eventLoopUtilization */
  readonly utilization?: (since?: EventLoopUtilization) => EventLoopUtilization;
  /** Milliseconds of a monotonic clock (injected by tests). @default performance.now */
  readonly now?: () => number;
}

/**
 * Whether webhook deliveries should yield to appends: true while, over the last window, the event loop was
 * saturated (utilisation at or above the threshold) *and* more appends than deliveries started in it.
 *
 * @remarks
 * Deliveries and appends share one event loop. When the process has spare time, delivering at once costs the appends
 * nothing, so wakes go out unpaced (an idle subscription is woken within a round trip; a fan-out of one append to
 * 1,000 subscriptions runs at full speed, since then the deliveries *are* the work). Only when appends keep the loop
 * busy do deliveries take time from them; then the scheduler paces them. The verdict is computed lazily when asked,
 * at most once per window, so the gauge costs no timer and nothing while no subscription has work.
 */
export class LoadGauge {
  private readonly windowMs: number;
  private readonly threshold: number;
  private readonly utilization: (since?: EventLoopUtilization) => EventLoopUtilization;
  private readonly now: () => number;
  private windowStart: number;
  private mark: EventLoopUtilization;
  private appends = 0;
  private deliveries = 0;
  private verdict = false;

  constructor(options: LoadGaugeOptions = {}) {
    this.windowMs = options.windowMs ?? 250;
    this.threshold = options.threshold ?? 0.7;
    this.utilization = options.utilization ?? ((since) => performance.eventLoopUtilization(since));
    this.now = options.now ?? (() => performance.now());
    if (!(this.windowMs > 0)) throw new RangeError('windowMs must be above 0');
    if (!(this.threshold >= 0 && this.threshold <= 1)) throw new RangeError('threshold must be within 0–1');
    this.windowStart = this.now();
    this.mark = this.utilization();
  }

  /** An append (or a create with data) was served. */
  noteAppend(): void {
    this.roll();
    this.appends++;
  }

  /** A webhook delivery started. */
  noteDelivery(): void {
    this.roll();
    this.deliveries++;
  }

  /** True while deliveries should be paced (see the class remarks). */
  busy(): boolean {
    this.roll();
    return this.verdict;
  }

  private roll(): void {
    const now = this.now();
    if (now - this.windowStart < this.windowMs) return;
    const used = this.utilization(this.mark).utilization;
    this.verdict = used >= this.threshold && this.appends > this.deliveries;
    this.mark = this.utilization();
    this.windowStart = now;
    this.appends = 0;
    this.deliveries = 0;
  }
}
