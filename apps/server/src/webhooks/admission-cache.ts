import { type AdmittedWebhookUrl, admitWebhookUrl, type Resolver, type WebhookUrlPolicy } from './ssrf.js';

/** Options of {@link AdmissionCache}. */
export interface AdmissionCacheOptions {
  /** How long an admission that resolved a host name is reused, in ms (0: never). @default 10000 */
  readonly ttlMs?: number;
  /** URLs remembered at most; the oldest is forgotten first. @default 10000 */
  readonly maxEntries?: number;
  /** Milliseconds of a monotonic clock (injected by tests). @default performance.now */
  readonly now?: () => number;
}

interface Entry {
  readonly admitted: AdmittedWebhookUrl;
  /** When the admission must be made again; `Infinity` for URLs that needed no resolution. */
  readonly until: number;
}

/**
 * {@link admitWebhookUrl} once per URL rather than once per delivery. A URL whose host is an IP literal or a
 * localhost name needs no resolution, so its verdict never changes and is kept; one naming a host is kept for a short
 * TTL, so that a DNS change (a receiver that moved, or a rebinding attempt) is seen within it, and each delivery in
 * between connects to the addresses that admission pinned. Refusals are not kept: the caller fails the delivery, and
 * its retry asks again.
 */
export class AdmissionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(
    private readonly policy: WebhookUrlPolicy,
    private readonly resolve: Resolver,
    options: AdmissionCacheOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 10_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? (() => performance.now());
  }

  /** @throws WebhookUrlRejected as {@link admitWebhookUrl} does. */
  async admit(raw: string): Promise<AdmittedWebhookUrl> {
    const hit = this.entries.get(raw);
    if (hit !== undefined && hit.until > this.now()) return hit.admitted;
    let resolved = false;
    const admitted = await admitWebhookUrl(raw, this.policy, (host) => {
      resolved = true;
      return this.resolve(host);
    });
    this.entries.delete(raw);
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(raw, {
      admitted,
      until: resolved ? this.now() + this.ttlMs : Number.POSITIVE_INFINITY,
    });
    return admitted;
  }

  /** Forgets one URL (its subscription was deleted). */
  forget(raw: string): void {
    this.entries.delete(raw);
  }
}
