import type { ServerConfig } from '../settings/table.js';
import {
  DEFAULT_DELIVERY_LIMITS,
  DEFAULT_WEBHOOK_URL_POLICY,
  type DeliveryLimits,
  type WebhookUrlPolicy,
} from '../webhooks/defaults.js';
import type { Resolver } from '../webhooks/ssrf.js';

/** Options of the subscription API (`createApp({ subscriptions })`). Every field has a default. */
export interface SubscriptionOptions {
  /** Which webhook URLs are admitted (SSRF rules). @default loopback allowed, private ranges refused */
  readonly urlPolicy?: WebhookUrlPolicy | undefined;
  /** Bounds of one webhook delivery. @default 5 s, 64 KiB answer */
  readonly delivery?: DeliveryLimits | undefined;
  /** Webhook deliveries in flight at once. @default 16 */
  readonly concurrency?: number | undefined;
  /**
   * Least time between the starts of two deliveries to one subscription while appends keep the server busy, in ms;
   * wakes meanwhile are coalesced into the next delivery. An idle subscription's first wake goes out at once.
   * @default 250
   */
  readonly minIntervalMs?: number | undefined;
  /** Webhook deliveries started per second by this instance while appends keep it busy. @default 50 */
  readonly ratePerSecond?: number | undefined;
  /** Appends per second from which the instance counts as busy (and deliveries are paced). @default 400 */
  readonly busyAppendsPerSecond?: number | undefined;
  /** How long an idle kept-alive connection to a receiver is kept, in ms; 0 opens one per delivery. @default 4000 */
  readonly keepAliveMs?: number | undefined;
  /** How long the SSRF admission of a webhook host name is reused, in ms (IP literals: always). @default 10000 */
  readonly dnsTtlMs?: number | undefined;
  /** Failed attempts after which a webhook subscription is marked `failed`. @default 10 */
  readonly maxAttempts?: number | undefined;
  /** First retry delay of a failed delivery, doubling up to `retryMaxMs`, ±20 %. @default 1000 */
  readonly retryBaseMs?: number | undefined;
  /** @default 60000 */
  readonly retryMaxMs?: number | undefined;
  /** How often expired leases are swept (and re-woken when work remains). @default 1000 */
  readonly sweepIntervalMs?: number | undefined;
  /**
   * How often the in-process view of "which subscriptions have patterns / do any exist" is refreshed from storage
   * (changes made through this instance refresh it at once; other instances' changes are seen within this).
   * @default 5000
   */
  readonly refreshIntervalMs?: number | undefined;
  /** The file backend's data directory: the signing key is kept there (mode 0600). */
  readonly dataDir?: string | undefined;
  /** DNS resolution of webhook hosts (injected in tests: they never touch real DNS). @default dns.lookup, all */
  readonly resolver?: Resolver | undefined;
  /** Origin used in `callback_url` and `jwks_url` (e.g. `https://streams.example.com`); default: the request's. */
  readonly publicOrigin?: string | undefined;
}

/** {@link SubscriptionOptions} with every default applied. */
export interface SubscriptionSettings {
  readonly urlPolicy: WebhookUrlPolicy;
  readonly delivery: DeliveryLimits;
  readonly concurrency: number;
  readonly minIntervalMs: number;
  readonly ratePerSecond: number;
  readonly busyAppendsPerSecond: number;
  readonly keepAliveMs: number;
  readonly dnsTtlMs: number;
  readonly maxAttempts: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  readonly sweepIntervalMs: number;
  readonly refreshIntervalMs: number;
  readonly dataDir: string | undefined;
  readonly resolver: Resolver;
  readonly publicOrigin: string | undefined;
}

/** Resolves a host name through the operating system's resolver, every address. */
export const systemResolver: Resolver = async (host) => {
  const { lookup } = await import('node:dns/promises');
  const found = await lookup(host, { all: true, verbatim: true });
  return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

export function resolveSubscriptionSettings(options: SubscriptionOptions = {}): SubscriptionSettings {
  return {
    urlPolicy: options.urlPolicy ?? DEFAULT_WEBHOOK_URL_POLICY,
    delivery: options.delivery ?? DEFAULT_DELIVERY_LIMITS,
    concurrency: options.concurrency ?? 16,
    minIntervalMs: options.minIntervalMs ?? 250,
    ratePerSecond: options.ratePerSecond ?? 50,
    busyAppendsPerSecond: options.busyAppendsPerSecond ?? 400,
    keepAliveMs: options.keepAliveMs ?? 4000,
    dnsTtlMs: options.dnsTtlMs ?? 10_000,
    maxAttempts: options.maxAttempts ?? 10,
    retryBaseMs: options.retryBaseMs ?? 1000,
    retryMaxMs: options.retryMaxMs ?? 60_000,
    sweepIntervalMs: options.sweepIntervalMs ?? 1000,
    refreshIntervalMs: options.refreshIntervalMs ?? 5000,
    dataDir: options.dataDir,
    resolver: options.resolver ?? systemResolver,
    publicOrigin: options.publicOrigin?.replace(/\/+$/, ''),
  };
}

/** The subscription options of the `streamkeep` binary's settings (the file backend keeps its key in `dataDir`). */
export function subscriptionOptionsFrom(config: ServerConfig): SubscriptionOptions {
  return {
    urlPolicy: { allowLoopback: config.webhookAllowLoopback, allowPrivate: config.webhookAllowPrivate },
    delivery: { timeoutMs: config.webhookTimeoutMs, maxAnswerBytes: config.webhookMaxAnswerBytes },
    concurrency: config.webhookConcurrency,
    minIntervalMs: config.webhookMinIntervalMs,
    ratePerSecond: config.webhookRate,
    keepAliveMs: config.webhookKeepAliveMs,
    maxAttempts: config.webhookMaxAttempts,
    dataDir: config.storage === 'file' ? config.dataDir : undefined,
  };
}
