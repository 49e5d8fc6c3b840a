import { channel } from 'node:diagnostics_channel';

// What webhook delivery reports, on Node's `diagnostics_channel`s (the mechanism undici and Node's own `http` use):
// publishing costs one property read while nobody listens, the webhook code does not depend on prom-client (loaded
// only when metrics are on), and `/metrics` (`metrics.ts`) listens without any wiring through the app. The channels
// are process-wide: a process running several apps reports every app's deliveries to each listener.

/** How one delivery attempt ended: the answer's status class, or why no complete answer came. */
export type DeliveryOutcome =
  | '2xx'
  | '3xx'
  | '4xx'
  | '5xx'
  | 'timeout'
  | 'answer_too_large'
  | 'connection_error';

/** Published on {@link WEBHOOK_DELIVERY_CHANNEL} once per attempt, when it ends. */
export interface DeliveryReport {
  readonly outcome: DeliveryOutcome;
  /** From the request's start to its answer's last byte, or to the failure. */
  readonly seconds: number;
}

/** Published on {@link WEBHOOK_RETRY_CHANNEL} for each failed delivery that is scheduled again. */
export interface RetryReport {
  /** The attempt that failed (1 for the first). */
  readonly attempt: number;
  readonly delayMs: number;
}

export const WEBHOOK_DELIVERY_CHANNEL = 'streamkeep:webhook:delivery';
export const WEBHOOK_RETRY_CHANNEL = 'streamkeep:webhook:retry';

const deliveries = channel(WEBHOOK_DELIVERY_CHANNEL);
const retries = channel(WEBHOOK_RETRY_CHANNEL);

export function reportDelivery(report: DeliveryReport): void {
  if (deliveries.hasSubscribers) deliveries.publish(report);
}

export function reportRetry(report: RetryReport): void {
  if (retries.hasSubscribers) retries.publish(report);
}

/** The outcome of an attempt answered with `status` (redirects are answers: never followed). */
export function outcomeOfStatus(status: number): DeliveryOutcome {
  if (status >= 200 && status < 300) return '2xx';
  if (status >= 300 && status < 400) return '3xx';
  if (status >= 400 && status < 500) return '4xx';
  // 5xx, and anything outside the classes a final answer can have.
  return '5xx';
}
