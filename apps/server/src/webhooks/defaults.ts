// The webhook settings' types and defaults, apart from the code they configure (`ssrf.ts`, `deliver.ts`), so that the
// server's settings can name them without loading that code (and with it `https`, `tls`, `net`) while it has no
// subscription.

/** Where a webhook may be delivered (the rules: `ssrf.ts`). */
export interface WebhookUrlPolicy {
  /** Admit loopback addresses (and `http:` to them). @default true */
  readonly allowLoopback: boolean;
  /** Admit private (RFC 1918), shared (RFC 6598) and unique-local (fc00::/7) addresses. @default false */
  readonly allowPrivate: boolean;
}

/** Bounds of one webhook delivery. */
export interface DeliveryLimits {
  /** The whole exchange, connection to last byte of the answer. @default 5000 */
  readonly timeoutMs: number;
  /** Bytes of the answer read; a longer answer fails the delivery. @default 65536 */
  readonly maxAnswerBytes: number;
}

export const DEFAULT_WEBHOOK_URL_POLICY: WebhookUrlPolicy = Object.freeze({
  allowLoopback: true,
  allowPrivate: false,
});

export const DEFAULT_DELIVERY_LIMITS: DeliveryLimits = Object.freeze({
  timeoutMs: 5000,
  maxAnswerBytes: 64 * 1024,
});
