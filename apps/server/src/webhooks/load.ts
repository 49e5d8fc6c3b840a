/** How {@link LoadGauge} judges the instance busy. */
export interface LoadGaugeOptions {
  /** Length of one judgement window, in ms. @default 250 */
  readonly windowMs?: number;
  /** Appends per second (over a window) from which the instance counts as busy. @default 400 */
  readonly busyAppendsPerSecond?: number;
  /** Milliseconds of a monotonic clock (injected by tests). @default performance.now */
  readonly now?: () => number;
}

/**
 * Whether webhook deliveries should yield to appends: true from a window in which appends arrived at
 * `busyAppendsPerSecond` or more *and* outnumbered the deliveries started, until a window in which they fell below
 * half that rate (or no longer outnumbered the deliveries).
 *
 * @remarks
 * Deliveries and appends share one process, and a delivery costs the CPU of tens of appends (a signed, JSON-encoded
 * HTTP exchange and a few store mutations). A trickle of appends leaves room for a delivery per wake, so wakes go out
 * unpaced and an idle subscription is woken within a round trip; a fan-out of one append to 1,000 subscriptions runs
 * at full speed too, since then the deliveries *are* the work. Under a stream of appends, undelivered work is
 * coalesced instead, so the appends keep their rate. The event loop's utilisation would be the obvious signal, but on
 * a shared machine a process starved of CPU looks idle to it; the append rate is what the deliveries compete with.
 * The verdict is computed lazily when asked, once per window (or as soon as a window's appends reach the bar), so
 * the gauge costs no timer.
 *
 * The half-rate way out is hysteresis: on a shared machine a loaded server has windows in which it is starved of CPU
 * and serves fewer appends; judged on the full bar, such a window would end the pacing and let the whole backlog of
 * coalesced wakes out at once — a flood of deliveries exactly when the process has the least CPU to spare.
 */
export class LoadGauge {
  private readonly windowMs: number;
  private readonly busyAppends: number;
  private readonly now: () => number;
  private windowStart: number;
  private appends = 0;
  private deliveries = 0;
  private verdict = false;

  constructor(options: LoadGaugeOptions = {}) {
    this.windowMs = options.windowMs ?? 250;
    const rate = options.busyAppendsPerSecond ?? 400;
    this.now = options.now ?? (() => performance.now());
    if (!(this.windowMs > 0)) throw new RangeError('windowMs must be above 0');
    if (!(rate >= 0)) throw new RangeError('busyAppendsPerSecond must be at least 0');
    this.busyAppends = (rate * this.windowMs) / 1000;
    this.windowStart = this.now();
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
    // A burst that already fills the window's bar counts at once: pacing starts within milliseconds of a load,
    // not a window later (by then an unpaced flood of deliveries would have taken its share).
    if (!this.verdict && this.appends >= this.busyAppends && this.appends > this.deliveries)
      this.verdict = true;
    return this.verdict;
  }

  private roll(): void {
    const now = this.now();
    const elapsed = now - this.windowStart;
    if (elapsed < this.windowMs) return;
    // A window that ended long ago (nothing asked meanwhile) was quiet after its first part: scale the bar to it.
    const bar = (this.busyAppends * elapsed) / this.windowMs;
    const needed = this.verdict ? bar / 2 : bar;
    this.verdict = this.appends > 0 && this.appends >= needed && this.appends > this.deliveries;
    this.windowStart = now;
    this.appends = 0;
    this.deliveries = 0;
  }
}
