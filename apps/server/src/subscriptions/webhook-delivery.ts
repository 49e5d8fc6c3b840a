import { randomUUID } from 'node:crypto';
import {
  isStorageError,
  planSetStatus,
  planWake,
  type Storage,
  type SubscriptionRecord,
  type SubscriptionStore,
  type SubscriptionTail,
} from '@streamkeep/storage';
import type { Logger } from 'pino';
import { AdmissionCache } from '../webhooks/admission-cache.js';
import { WebhookAgents } from '../webhooks/agents.js';
import { deliverWebhook } from '../webhooks/deliver.js';
import { signatureHeader } from '../webhooks/signing.js';
import { ackPlanFor, answeredDone } from './acks.js';
import type { SubscriptionSecrets } from './keys.js';
import type { SubscriptionSettings } from './options.js';
import { type ViewContext, wakePayload } from './view.js';

/** What a delivery needs from the subscription service. */
export interface DeliveryHost extends ViewContext {
  readonly storage: Storage & SubscriptionStore;
  readonly secrets: SubscriptionSecrets;
  readonly settings: SubscriptionSettings;
  memberTails(record: SubscriptionRecord): Promise<SubscriptionTail[]>;
  followUp(record: SubscriptionRecord): Promise<boolean>;
  /** A delivery of `id` is already due (an append through this instance asked for it). */
  pending(id: string): boolean;
  /** The status of `id` was changed here (marked `failed`): refresh what the instance knows of it. */
  statusChanged(id: string): Promise<void>;
}

/**
 * One webhook delivery of a subscription: the scheduler's `deliver`. Raises the wake atomically (once cluster-wide),
 * POSTs it signed to the admitted URL over a kept-alive connection, and records the answer: a synchronous
 * `{ done: true }` acks the wake's tails, any other 2xx restarts the lease from the delivery. Failures are thrown for
 * the scheduler to retry; after `maxAttempts` the subscription is marked `failed`.
 */
export class WebhookDelivery {
  /** SSRF admissions, reused per URL (IP literals for good, host names for `dnsTtlMs`). */
  private readonly admissions: AdmissionCache;
  /** Kept-alive connections per pinned origin; `undefined` when keep-alive is off. */
  private readonly agents: WebhookAgents | undefined;
  /** Wakes this instance raised and has not delivered yet (a failed attempt is retried with the same wake). */
  private readonly undelivered = new Map<string, string>();

  constructor(
    private readonly host: DeliveryHost,
    private readonly logger: Logger,
  ) {
    const { settings } = host;
    this.admissions = new AdmissionCache(settings.urlPolicy, settings.resolver, { ttlMs: settings.dnsTtlMs });
    this.agents =
      settings.keepAliveMs > 0
        ? new WebhookAgents({ maxSockets: settings.concurrency, idleMs: settings.keepAliveMs })
        : undefined;
  }

  /** Drops what is kept for a deleted subscription: its undelivered wake, its connections. */
  forget(id: string): void {
    this.undelivered.delete(id);
    this.agents?.release(id);
  }

  close(): void {
    this.agents?.close();
  }

  async deliver(id: string, attempt: number): Promise<'done' | 'again' | 'drop'> {
    const { storage } = this.host;
    const current = await storage.getSubscription(id);
    if (current === undefined || current.config.type !== 'webhook' || current.status === 'failed') {
      this.undelivered.delete(id);
      return 'drop';
    }
    // Raise the wake atomically (once cluster-wide): `live` means a wake is already out — raised by another instance,
    // which delivers it, or by this one, delivered (coalesced: the receiver learns of new work through `next_wake`)
    // or still to deliver after a failed attempt.
    const outcome = await storage.mutateSubscription(
      id,
      planWake({ wakeId: randomUUID(), tails: await this.host.memberTails(current) }),
    );
    if (outcome.record === undefined) return 'drop';
    const record = outcome.record;
    if (outcome.woken) this.undelivered.set(id, record.wake.wakeId!);
    else if (outcome.reason !== 'live' || this.undelivered.get(id) !== record.wake.wakeId) return 'done';
    try {
      return await this.post(record);
    } catch (err) {
      if (attempt >= this.host.settings.maxAttempts) {
        this.logger.error({ err, subscription: id, attempt }, 'webhook given up: subscription marked failed');
        this.undelivered.delete(id);
        await storage.mutateSubscription(id, planSetStatus(id, 'failed'));
        await this.host.statusChanged(id);
        return 'drop';
      }
      throw err;
    }
  }

  private async post(record: SubscriptionRecord): Promise<'done' | 'again'> {
    const { storage, settings, secrets } = this.host;
    const id = record.id;
    const target = await this.admissions.admit(record.config.webhookUrl!);
    const body = Buffer.from(JSON.stringify(wakePayload(this.host, record)));
    const answer = await deliverWebhook(
      target,
      body,
      {
        'content-type': 'application/json',
        'webhook-signature': signatureHeader(secrets.signingKey, body, Date.now() / 1000),
      },
      settings.delivery,
      this.agents?.acquire(id, target),
    );
    if (answer.status < 200 || answer.status > 299) {
      throw new Error(`the receiver answered ${answer.status}`);
    }
    this.undelivered.delete(id);
    if (!answeredDone(answer.body)) {
      // The receiver has the wake from now on: its lease runs from the delivery, not from when the wake was raised
      // (a slow or retried delivery must not leave the receiver a lease already spent).
      await storage
        .mutateSubscription(id, ackPlanFor(record, { generation: record.wake.generation }))
        .catch((err: unknown) => {
          if (!isStorageError(err)) throw err;
        });
      return 'done';
    }
    // A synchronous `{ done: true }` acks the tails the wake was raised for.
    try {
      const acked = await storage.mutateSubscription(
        id,
        ackPlanFor(record, { generation: record.wake.generation, ackWakeTails: true, done: true }),
      );
      // An append through this instance during the delivery has already asked for the next one, which reads the
      // tails itself: reading them here too would be spent. Otherwise look, for work that came through another
      // instance (its own wake found this one outstanding and left it to us).
      if (this.host.pending(id)) return 'done';
      return (await this.host.followUp(acked)) ? 'again' : 'done';
    } catch (err) {
      // Fenced: the lease ran out before the answer came; the sweep raises the next wake.
      if (isStorageError(err)) return 'done';
      throw err;
    }
  }
}
