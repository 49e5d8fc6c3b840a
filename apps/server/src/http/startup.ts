import type { ServerResponse } from 'node:http';
import { HttpError } from '../error-status.js';

/**
 * Holds stream requests that arrive while storage is still opening (a restart, a long recovery), so that clients see
 * a slow answer instead of an error. A request waits at most `waitMs`, and at most `maxWaiting` wait at once; past
 * either it is answered 503 with `Retry-After`. `/readyz` does not wait: it reports 503 until storage is open.
 */
export class StartupWait {
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly waitMs: number,
    private readonly maxWaiting: number,
  ) {}

  /** Requests waiting now. */
  get waiting(): number {
    return this.waiters.size;
  }

  /**
   * Resolves when {@link StartupWait.settle} is called; the caller then looks at what happened.
   *
   * @throws HttpError `SERVICE_UNAVAILABLE` (503) after `waitMs`, or at once when `maxWaiting` requests wait;
   *   `REQUEST_ABORTED` when the client goes away first.
   */
  wait(res: ServerResponse): Promise<void> {
    if (this.waiters.size >= this.maxWaiting || this.waitMs <= 0) {
      return Promise.reject(unavailable());
    }
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: HttpError): void => {
        this.waiters.delete(wake);
        clearTimeout(timer);
        res.off('close', gone);
        if (err === undefined) resolve();
        else reject(err);
      };
      const wake = (): void => finish();
      const gone = (): void =>
        finish(new HttpError('REQUEST_ABORTED', 'the client went away while storage was opening'));
      const timer = setTimeout(() => finish(unavailable()), this.waitMs);
      this.waiters.add(wake);
      res.once('close', gone);
    });
  }

  /** Storage opened or failed, or the server is shutting down: every waiting request proceeds to look. */
  settle(): void {
    for (const wake of [...this.waiters]) wake();
  }
}

function unavailable(): HttpError {
  return new HttpError('SERVICE_UNAVAILABLE', 'storage is not open yet');
}
