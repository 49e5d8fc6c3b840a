import { randomUUID } from 'node:crypto';
import {
  hasPendingWork,
  isStorageError,
  matchesPattern,
  type Offset,
  planLinkStream,
  planSetStatus,
  planUnlinkStream,
  planWake,
  type Storage,
  type SubscriptionRecord,
  type SubscriptionStore,
  type SubscriptionTail,
  ZERO_OFFSET,
} from '@streamkeep/storage';
import type { Logger } from 'pino';
import { AdmissionCache } from '../webhooks/admission-cache.js';
import { WebhookAgents } from '../webhooks/agents.js';
import { deliverWebhook } from '../webhooks/deliver.js';
import { LoadGauge } from '../webhooks/load.js';
import { WakeScheduler } from '../webhooks/scheduler.js';
import { issueWakeToken, signatureHeader } from '../webhooks/signing.js';
import { ackPlanFor, answeredDone } from './acks.js';
import { StreamBatch } from './batch.js';
import type { SubscriptionSecrets } from './keys.js';
import type { SubscriptionSettings } from './options.js';
import { wakePayload } from './view.js';

/** How long a wake token stays valid; fencing by generation and wake id ends it earlier. */
const TOKEN_TTL_MS = 60 * 60 * 1000;

export { ackPlanFor } from './acks.js';

type Store = Storage & SubscriptionStore;

/**
 * The server side of subscriptions for one storage: wakes after appends, links after creates, unlinks after deletes,
 * webhook delivery through the {@link WakeScheduler}, pull-wake events, and the periodic lease sweep.
 *
 * @remarks
 * Every decision is a contract planner run through `mutateSubscription`, so instances sharing a store agree; what this
 * class keeps in process is only a cache (which subscriptions have patterns, whether any exist) and the delivery
 * queue. Nothing here runs on a request's path: the hooks queue work and return.
 *
 * The cache is refreshed at once for changes made through this instance ({@link changed}), when the store announces
 * a change made through another one (`onSubscriptionsChanged`, PostgreSQL: a NOTIFY from the change's transaction),
 * and every `refreshIntervalMs` as a safety net. An announced subscription is also checked for work that arrived
 * before the announcement did (an append through this instance while it did not know of the subscription wakes
 * nobody): when a member has data past its acked offset, the wake is raised then.
 */
export class SubscriptionService {
  /** True while any subscription may exist: the app calls the hooks only then. */
  watching = false;
  private patterns: Promise<readonly { id: string; pattern: string }[]> | undefined;
  private refreshedAt = 0;
  private readonly scheduler: WakeScheduler;
  /** Whether appends keep the process busy: then deliveries are paced (minimum interval, rate cap). */
  private readonly load: LoadGauge;
  /** SSRF admissions, reused per URL (IP literals for good, host names for `dnsTtlMs`). */
  private readonly admissions: AdmissionCache;
  /** Kept-alive connections per pinned origin; `undefined` when keep-alive is off. */
  private readonly agents: WebhookAgents | undefined;
  /** Wakes this instance raised and has not delivered yet (a failed attempt is retried with the same wake). */
  private readonly undelivered = new Map<string, string>();
  /**
   * Streams appended to while the instance is busy, waiting to have their subscribers looked up together: under load
   * one lookup per stream per `minIntervalMs` instead of one per append (the deliveries they lead to are paced anyway).
   */
  private readonly deferred: StreamBatch;
  /** Streams whose members are being woken, and whether another append came meanwhile. */
  private readonly streamWakes = new Map<string, { again: boolean }>();
  private readonly timer: ReturnType<typeof setInterval>;
  private sweeping = false;
  private closed = false;
  /** Bumped by every change of the cache, so that a refresh begun before it does not overwrite it with older news. */
  private epoch = 0;
  /** Stops listening to the store's announcements. */
  private unlisten: (() => void) | undefined;
  /** The origin each subscription was created through (this process), for its `callback_url`. */
  private readonly origins = new Map<string, string>();
  /** The origin of the last `__ds` request, for subscriptions created through another instance or process. */
  lastOrigin = 'http://localhost';

  constructor(
    readonly storage: Store,
    readonly secrets: SubscriptionSecrets,
    readonly settings: SubscriptionSettings,
    readonly basePath: string,
    private readonly logger: Logger,
  ) {
    this.load = new LoadGauge({ busyAppendsPerSecond: settings.busyAppendsPerSecond });
    this.admissions = new AdmissionCache(settings.urlPolicy, settings.resolver, { ttlMs: settings.dnsTtlMs });
    this.agents =
      settings.keepAliveMs > 0
        ? new WebhookAgents({ maxSockets: settings.concurrency, idleMs: settings.keepAliveMs })
        : undefined;
    this.scheduler = new WakeScheduler({
      concurrency: settings.concurrency,
      retryBaseMs: settings.retryBaseMs,
      retryMaxMs: settings.retryMaxMs,
      minIntervalMs: settings.minIntervalMs,
      ratePerSecond: settings.ratePerSecond,
      paced: () => this.load.busy(),
      deliver: (id, attempt) => {
        this.load.noteDelivery();
        return this.deliver(id, attempt);
      },
      onRetry: (id, attempt, delayMs, err) =>
        logger.warn(
          { subscription: id, attempt, delayMs, err: (err as Error)?.message },
          'webhook delivery failed',
        ),
    });
    this.deferred = new StreamBatch(settings.minIntervalMs, (name) => this.queueStream(name, false));
    this.timer = setInterval(() => void this.tick(), settings.sweepIntervalMs);
    this.timer.unref();
  }

  /** Listens to the store's announcements of other instances' changes, then loads the first view of the store. */
  async start(): Promise<void> {
    this.unlisten = this.storage.onSubscriptionsChanged?.((id) => this.heard(id));
    await this.refresh();
    // Wakes queued in the previous process (the scheduler's queue, lookups batched under load) died with it: raise
    // the ones whose work is still pending. In the background: a large store must not hold up the start.
    if (this.watching) {
      void this.catchUpAll().catch((err: unknown) => this.failed(err, '*', 'catching up after start'));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unlisten?.();
    clearInterval(this.timer);
    this.deferred.close();
    await this.scheduler.close();
    this.agents?.close();
  }

  /** Resolves once no delivery is queued or in flight (tests). */
  async idle(): Promise<void> {
    await this.deferred.settled();
    await this.scheduler.idle();
  }

  /** Logs a failure of background work (it has no request to answer). */
  failed(err: unknown, subscription: string, what: string): void {
    this.logger.error({ err, subscription }, `${what} failed`);
  }

  /**
   * The origin of URLs sent with a wake of `id` (`callback_url`): the configured public origin, else the origin the
   * subscription was created through — never one a later request chose, so that no client can redirect another
   * subscription's callbacks (and tokens) with a forged `Host`.
   */
  deliveryOrigin(id: string): string {
    return this.settings.publicOrigin ?? this.origins.get(id) ?? this.lastOrigin;
  }

  /** Remembers the origin a subscription was created through. */
  createdThrough(id: string, origin: string): void {
    this.origins.set(id, origin);
  }

  /** A subscription was created, changed or deleted through this instance: refresh the caches now. */
  changed(id: string, deleted: boolean): void {
    this.epoch++;
    this.watching = true;
    this.patterns = undefined;
    if (deleted) this.forget(id);
  }

  /** Drops what this instance keeps for a deleted subscription: its queued wake, its origin, its connections. */
  private forget(id: string): void {
    this.origins.delete(id);
    this.scheduler.cancel(id);
    this.undelivered.delete(id);
    this.agents?.release(id);
  }

  /**
   * The store announced that subscription `id` was created, reconfigured or deleted through another instance (or,
   * with `undefined`, that anything may have changed). Until the refresh it starts has answered, this instance
   * watches (a spurious hook costs a listing; a missed one, a wake).
   */
  private heard(id: string | undefined): void {
    if (this.closed) return;
    this.epoch++;
    this.watching = true;
    this.patterns = undefined;
    void (async () => {
      await this.refresh();
      if (id === undefined) await this.catchUpAll();
      else await this.catchUp(id);
    })().catch((err: unknown) => this.failed(err, id ?? '*', 'catching up with a change'));
  }

  /**
   * Raises the wake an announced subscription may have missed: an append made through this instance between the
   * change's commit and its announcement found no subscriber here. The wake itself is atomic (`planWake`), so several
   * instances catching up at once raise it once.
   */
  private async catchUp(id: string): Promise<void> {
    const record = await this.storage.getSubscription(id);
    if (record === undefined) {
      // Deleted through another instance: forget what this one queued for it.
      this.forget(id);
      return;
    }
    if (record.status === 'failed' || this.closed) return;
    const tails = await this.memberTails(record);
    if (!hasPendingWork(record, tails)) return;
    if (record.config.type === 'webhook') this.scheduler.wake(record.id);
    else await this.raiseWake(record, tails);
  }

  /** {@link catchUp} for every subscription, a page at a time (after announcements may have been lost). */
  private async catchUpAll(): Promise<void> {
    let after: string | undefined;
    for (;;) {
      const page = await this.storage.listSubscriptions({ after, limit: 100 });
      for (const record of page) {
        if (this.closed) return;
        await this.catchUp(record.id);
      }
      if (page.length < 100) return;
      after = page[page.length - 1]!.id;
    }
  }

  // --- hooks after a successful stream request (called only while `watching`) -------------------------------------

  /** After `PUT` created a stream: link pattern subscriptions, then wake members if it was created with data. */
  created(name: string): void {
    this.load.noteAppend();
    this.queueStream(name, true);
  }

  /**
   * After an append (or a close): wake the subscriptions that have the stream as a member — at once, or while appends
   * keep the instance busy, with the other streams appended to within `minIntervalMs` (one lookup per stream).
   */
  appended(name: string): void {
    this.load.noteAppend();
    if (this.settings.minIntervalMs > 0 && this.load.busy()) this.deferred.add(name);
    else this.queueStream(name, false);
  }

  /** After a delete: unlink the stream from every subscription. */
  deleted(name: string): void {
    void this.unlink(name).catch((err: unknown) =>
      this.logger.error({ err, stream: name }, 'unlinking a deleted stream failed'),
    );
  }

  private queueStream(name: string, link: boolean): void {
    const running = this.streamWakes.get(name);
    if (running !== undefined && !link) {
      running.again = true;
      return;
    }
    const state = { again: false };
    this.streamWakes.set(name, state);
    void (async () => {
      try {
        if (link) await this.link(name);
        do {
          state.again = false;
          await this.wakeMembers(name);
        } while (state.again && !this.closed);
      } catch (err) {
        this.logger.error({ err, stream: name }, 'waking subscriptions failed');
      } finally {
        if (this.streamWakes.get(name) === state) this.streamWakes.delete(name);
      }
    })();
  }

  private async link(name: string): Promise<void> {
    let start: Offset | undefined;
    for (const { id, pattern } of await this.patternSubscriptions()) {
      // Filtered here so that a create costs no storage round trip per non-matching subscription; the planner checks
      // the pattern again on the current record.
      if (!matchesPattern(pattern, name)) continue;
      start ??= await this.startOf(name);
      if (start === undefined) return; // already deleted: nothing to link
      await this.storage.mutateSubscription(id, planLinkStream(id, { path: name, offset: start }));
    }
  }

  /**
   * Where a stream created just now starts acked (`planLinkStream`): its first position, so that the data it was
   * created with counts as new — `ZERO_OFFSET`, or for a fork its fork offset, since what the fork inherited is the
   * source's history, not new data of the fork (a subscription never replays history). `undefined` when it is gone.
   */
  private async startOf(name: string): Promise<Offset | undefined> {
    try {
      return (await this.storage.head(name)).fork?.offset ?? ZERO_OFFSET;
    } catch (err) {
      if (isStorageError(err)) return undefined;
      throw err;
    }
  }

  private async unlink(name: string): Promise<void> {
    if (!this.watching) return;
    for (const record of await this.storage.listSubscriptions({ member: name })) {
      await this.storage.mutateSubscription(record.id, planUnlinkStream(record.id, name));
    }
  }

  private async wakeMembers(name: string): Promise<void> {
    const subscribers = await this.storage.listSubscriptions({ member: name });
    // Read only for pull-wake subscriptions: a webhook delivery reads every member's tail itself when it starts.
    let tail: Promise<SubscriptionTail | undefined> | undefined;
    for (const record of subscribers) {
      if (record.status === 'failed') continue;
      if (record.config.type === 'webhook') {
        // The delivery raises the wake itself (atomically, once cluster-wide) with every member's tail.
        this.scheduler.wake(record.id);
      } else {
        tail ??= this.tailOf(name);
        const read = await tail;
        if (read === undefined) return;
        await this.raiseWake(record, [read]);
      }
    }
  }

  // --- wakes -----------------------------------------------------------------------------------------------------

  /** The tail (next offset) of a stream, or `undefined` when it is gone. */
  async tailOf(path: string): Promise<SubscriptionTail | undefined> {
    try {
      return { path, offset: (await this.storage.head(path)).nextOffset };
    } catch (err) {
      if (isStorageError(err)) return undefined;
      throw err;
    }
  }

  /** The tails of every member that still exists. */
  async memberTails(record: SubscriptionRecord): Promise<SubscriptionTail[]> {
    const tails: SubscriptionTail[] = [];
    for (const member of record.members) {
      const tail = await this.tailOf(member.path);
      if (tail !== undefined) tails.push(tail);
    }
    return tails;
  }

  /** Raises a wake of a pull-wake subscription if work is pending, and writes its events to the wake stream. */
  async raiseWake(record: SubscriptionRecord, tails: readonly SubscriptionTail[]): Promise<void> {
    const outcome = await this.storage.mutateSubscription(
      record.id,
      planWake({ wakeId: randomUUID(), tails }),
    );
    if (outcome.woken) await this.announce(outcome.record);
  }

  /** After a wake ended (ack `done`, release, sync auto-ack): the next one, when work remains. Resolves `next_wake`. */
  async followUp(record: SubscriptionRecord): Promise<boolean> {
    const tails = await this.memberTails(record);
    if (!hasPendingWork(record, tails)) return false;
    if (record.config.type === 'webhook') this.scheduler.wake(record.id);
    else await this.raiseWake(record, tails);
    return true;
  }

  /** Appends the wake events of a pull-wake wake to the subscription's wake stream (§7: one per pending stream). */
  private async announce(record: SubscriptionRecord): Promise<void> {
    const wakeStream = record.config.wakeStream;
    if (wakeStream === null) return;
    const ts = Date.now();
    const messages = record.wake.tails.map((t) =>
      Buffer.from(
        JSON.stringify({
          type: 'wake',
          subscription_id: record.id,
          stream: t.path,
          generation: record.wake.generation,
          ts,
        }),
      ),
    );
    try {
      const meta = await this.storage.head(wakeStream);
      await this.storage.append(wakeStream, { messages, contentType: meta.config.contentType });
    } catch (err) {
      // The application creates its wake stream; until it does, workers learn of work by claiming.
      this.logger.warn({ err, subscription: record.id, wakeStream }, 'could not append to the wake stream');
    }
  }

  /** A token for the current wake of `record`. */
  wakeToken(record: SubscriptionRecord): string {
    return issueWakeToken(this.secrets.tokenSecret, {
      subscription: record.id,
      createdAt: record.createdAt,
      generation: record.wake.generation,
      wakeId: record.wake.wakeId ?? '',
      expiresAt: Date.now() + TOKEN_TTL_MS,
    });
  }

  // --- webhook delivery (the scheduler's `deliver`) ----------------------------------------------------------------

  private async deliver(id: string, attempt: number): Promise<'done' | 'again' | 'drop'> {
    const current = await this.storage.getSubscription(id);
    if (current === undefined || current.config.type !== 'webhook' || current.status === 'failed') {
      this.undelivered.delete(id);
      return 'drop';
    }
    // Raise the wake atomically (once cluster-wide): `live` means a wake is already out — raised by another instance,
    // which delivers it, or by this one, delivered (coalesced: the receiver learns of new work through `next_wake`)
    // or still to deliver after a failed attempt.
    const outcome = await this.storage.mutateSubscription(
      id,
      planWake({ wakeId: randomUUID(), tails: await this.memberTails(current) }),
    );
    if (outcome.record === undefined) return 'drop';
    const record = outcome.record;
    if (outcome.woken) this.undelivered.set(id, record.wake.wakeId!);
    else if (outcome.reason !== 'live' || this.undelivered.get(id) !== record.wake.wakeId) return 'done';
    try {
      return await this.post(record);
    } catch (err) {
      if (attempt >= this.settings.maxAttempts) {
        this.logger.error({ err, subscription: id, attempt }, 'webhook given up: subscription marked failed');
        this.undelivered.delete(id);
        await this.storage.mutateSubscription(id, planSetStatus(id, 'failed'));
        return 'drop';
      }
      throw err;
    }
  }

  private async post(record: SubscriptionRecord): Promise<'done' | 'again'> {
    const id = record.id;
    const target = await this.admissions.admit(record.config.webhookUrl!);
    const body = Buffer.from(JSON.stringify(wakePayload(this, record)));
    const answer = await deliverWebhook(
      target,
      body,
      {
        'content-type': 'application/json',
        'webhook-signature': signatureHeader(this.secrets.signingKey, body, Date.now() / 1000),
      },
      this.settings.delivery,
      this.agents?.acquire(id, target),
    );
    if (answer.status < 200 || answer.status > 299) {
      throw new Error(`the receiver answered ${answer.status}`);
    }
    this.undelivered.delete(id);
    if (!answeredDone(answer.body)) {
      // The receiver has the wake from now on: its lease runs from the delivery, not from when the wake was raised
      // (a slow or retried delivery must not leave the receiver a lease already spent).
      await this.storage
        .mutateSubscription(id, ackPlanFor(record, { generation: record.wake.generation }))
        .catch((err: unknown) => {
          if (!isStorageError(err)) throw err;
        });
      return 'done';
    }
    // A synchronous `{ done: true }` acks the tails the wake was raised for.
    try {
      const acked = await this.storage.mutateSubscription(
        id,
        ackPlanFor(record, { generation: record.wake.generation, ackWakeTails: true, done: true }),
      );
      // An append through this instance during the delivery has already asked for the next one, which reads the
      // tails itself: reading them here too would be spent. Otherwise look, for work that came through another
      // instance (its own wake found this one outstanding and left it to us).
      if (this.scheduler.pending(id)) return 'done';
      return (await this.followUp(acked)) ? 'again' : 'done';
    } catch (err) {
      // Fenced: the lease ran out before the answer came; the sweep raises the next wake.
      if (isStorageError(err)) return 'done';
      throw err;
    }
  }

  // --- periodic work ------------------------------------------------------------------------------------------------

  private async tick(): Promise<void> {
    if (this.closed || this.sweeping) return;
    this.sweeping = true;
    try {
      if (Date.now() - this.refreshedAt >= this.settings.refreshIntervalMs) await this.refresh();
      if (this.watching) await this.sweep();
    } catch (err) {
      this.logger.error({ err }, 'subscription sweep failed');
    } finally {
      this.sweeping = false;
    }
  }

  private async refresh(): Promise<void> {
    this.refreshedAt = Date.now();
    const epoch = ++this.epoch;
    const any = (await this.storage.listSubscriptions({ limit: 1 })).length > 0;
    // A change heard or made meanwhile is newer than this answer: keep what it set.
    if (epoch !== this.epoch) return;
    this.watching = any;
    this.patterns = undefined;
  }

  /** Subscriptions whose lease expired get their next wake (or are ended when nothing is left to do). */
  private async sweep(): Promise<void> {
    for (const record of await this.storage.listSubscriptions({ withExpiredLease: true })) {
      if (record.status === 'failed') continue;
      if (record.config.type === 'webhook') this.scheduler.wake(record.id);
      else await this.raiseWake(record, await this.memberTails(record));
    }
  }

  private patternSubscriptions(): Promise<readonly { id: string; pattern: string }[]> {
    if (this.patterns === undefined || Date.now() - this.refreshedAt >= this.settings.refreshIntervalMs) {
      this.patterns = this.storage
        .listSubscriptions({ withPattern: true })
        .then((records) => records.map((r) => ({ id: r.id, pattern: r.config.pattern ?? '' })));
      this.patterns.catch(() => {
        this.patterns = undefined;
      });
    }
    return this.patterns;
  }
}
