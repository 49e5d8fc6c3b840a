import { tick } from './shared-read.js';

/** Why a live wait ended. */
export type WakeReason = 'hint' | 'timeout' | 'shutdown' | 'disconnect';

/**
 * The wait state of one live request (long-poll or SSE). Storage hints arrive through {@link LiveWaiter.hint}, which
 * is registered as the request's own `subscribe` listener, so waking one stream touches only that stream's waiters.
 * A hint that arrives while the request is busy (reading, writing) is remembered and ends the next wait at once, so
 * nothing committed after `subscribe` can be missed.
 */
export class LiveWaiter {
  private pending: WakeReason | undefined;
  private resolve: ((reason: WakeReason) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private terminal: WakeReason | undefined;
  private woken = tick();

  /**
   * The clock tick (see {@link tick}) of the latest wake-up: a read that serves it must have started after this.
   * Before any wake-up, the moment the waiter was created.
   */
  get wokenAt(): number {
    return this.woken;
  }

  /** The storage listener: synchronous and never throws. */
  readonly hint = (): void => {
    this.fire('hint');
  };

  /** Ends every current and future wait with `reason` (server shutdown or client gone). */
  end(reason: 'shutdown' | 'disconnect'): void {
    if (this.terminal === undefined) this.terminal = reason;
    this.fire(reason);
  }

  /** The terminal reason, once the request must stop. */
  get ended(): WakeReason | undefined {
    return this.terminal;
  }

  /** Waits for a hint, the end of the request, or `timeoutMs`. */
  wait(timeoutMs: number): Promise<WakeReason> {
    if (this.terminal !== undefined) return Promise.resolve(this.terminal);
    if (this.pending !== undefined) {
      const reason = this.pending;
      this.pending = undefined;
      return Promise.resolve(reason);
    }
    return new Promise<WakeReason>((resolve) => {
      this.resolve = resolve;
      this.timer = setTimeout(() => this.fire('timeout'), Math.max(0, timeoutMs));
    });
  }

  private fire(reason: WakeReason): void {
    this.woken = tick();
    const resolve = this.resolve;
    if (resolve === undefined) {
      if (reason !== 'timeout') this.pending = reason;
      return;
    }
    this.resolve = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    resolve(this.terminal ?? reason);
  }
}
