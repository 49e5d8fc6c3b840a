import {
  hasPendingWork,
  isStorageError,
  matchesPattern,
  type Offset,
  planLinkStream,
  planUnlinkStream,
  type Storage,
  type SubscriptionRecord,
  type SubscriptionStore,
  type SubscriptionTail,
  ZERO_OFFSET,
} from '@streamkeep/storage';
import type { Logger } from 'pino';
import { LoadGauge } from '../webhooks/load.js';
import { WakeScheduler } from '../webhooks/scheduler.js';
import { issueWakeToken } from '../webhooks/signing.js';
import { StreamBatch } from './batch.js';
import type { SubscriptionSecrets } from './keys.js';
import type { SubscriptionSettings } from './options.js';
import { raisePullWake } from './pull-wake.js';
import { SubscriberIndex } from './subscriber-index.js';
import { type DeliveryHost, WebhookDelivery } from './webhook-delivery.js';

/** How long a wake token stays valid; fencing by generation and wake id ends it earlier. */
const TOKEN_TTL_MS = 60 * 60 * 1000;

/**
 * Subscribers of one stream up to which an append wakes them at once (a `Map` lookup and a scheduler call each);
 * a stream with more, under load, has them woken together once per `minIntervalMs` ({@link StreamBatch}).
 */
const DIRECT_WAKES = 8;

/** Page size of the full listings (index rebuilds, catch-up). */
const LISTING_PAGE = 500;

export { ackPlanFor } from './acks.js';

type Store = Storage & SubscriptionStore;

/**
 * The server side of subscriptions for one storage: wakes after appends, links after creates, unlinks after deletes,
 * webhook delivery through the {@link WakeScheduler}, pull-wake events, and the periodic lease sweep.
 *
 * @remarks
 * Every decision is a contract planner run through `mutateSubscription`, so instances sharing a store agree; what this
 * class keeps in process is only a cache (which streams have which subscribers — {@link SubscriberIndex} —, which
 * subscriptions have patterns, whether any exist) and the delivery queue. Nothing here runs on a request's path: the
 * hooks queue work and return; an append to a stream nobody subscribes to costs one `Map` lookup, and one with a few
 * webhook subscribers a scheduler call per subscriber, with no storage read.
 *
 * The cache is refreshed at once for changes made through this instance ({@link changed}, and the links, unlinks
 * and status changes this class makes), when the store announces a change made through another one
 * (`onSubscriptionsChanged`, PostgreSQL: a NOTIFY from the change's transaction), and every `refreshIntervalMs` as a
 * safety net. A changed or announced subscription is then checked for work that arrived before its cache entry did
 * (an append through this instance while it did not know of the membership wakes nobody): when a member has data
 * past its acked offset, the wake is raised then.
 */
export class SubscriptionService implements DeliveryHost {
  /** True while any subscription may exist: the app calls the hooks only then. */
  watching = false;
  private patterns: Promise<readonly { id: string; pattern: string }[]> | undefined;
  /**
   * Stream → subscribers, kept in step with every change made or heard of; consulted by the append path only when
   * the store is this process's alone ({@link shared} false).
   */
  private readonly index = new SubscriberIndex();
  /**
   * The store may be shared with other instances (it announces changes: PostgreSQL). Its announcements cover creates,
   * config changes and deletes, not membership (a stream linked or added through another instance), so the append
   * path then asks the store for a stream's subscribers, as the index could miss one.
   */
  readonly shared: boolean;
  /** The full listings of the store (index rebuilds), one at a time. */
  private listing: Promise<void> | undefined;
  private refreshedAt = 0;
  private readonly scheduler: WakeScheduler;
  /** Whether appends keep the process busy: then deliveries are paced (minimum interval, rate cap). */
  private readonly load: LoadGauge;
  /** Webhook deliveries: the scheduler's `deliver`. */
  private readonly delivery: WebhookDelivery;
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
    this.shared = storage.onSubscriptionsChanged !== undefined;
    this.load = new LoadGauge({ busyAppendsPerSecond: settings.busyAppendsPerSecond });
    this.delivery = new WebhookDelivery(this, logger);
    this.scheduler = new WakeScheduler({
      concurrency: settings.concurrency,
      retryBaseMs: settings.retryBaseMs,
      retryMaxMs: settings.retryMaxMs,
      minIntervalMs: settings.minIntervalMs,
      ratePerSecond: settings.ratePerSecond,
      paced: () => this.load.busy(),
      deliver: (id, attempt) => {
        this.load.noteDelivery();
        return this.delivery.deliver(id, attempt);
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
    this.delivery.close();
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

  /**
   * The ids of the subscriptions this instance knows to have `path` as a member, sorted (tests, diagnostics): on a
   * shared store only those changed through this instance or announced to it.
   */
  subscribersOf(path: string): string[] {
    return [...this.index.subscribers(path)].sort();
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
    if (deleted) {
      this.index.remove(id);
      this.forget(id);
      return;
    }
    void this.catchUp(id).catch((err: unknown) => this.failed(err, id, 'catching up with a change'));
  }

  /** Drops what this instance keeps for a deleted subscription: its queued wake, its origin, its connections. */
  private forget(id: string): void {
    this.origins.delete(id);
    this.scheduler.cancel(id);
    this.delivery.forget(id);
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
      if (id === undefined) {
        await this.refresh();
        await this.catchUpAll();
      } else {
        await this.catchUp(id);
      }
    })().catch((err: unknown) => this.failed(err, id ?? '*', 'catching up with a change'));
  }

  /**
   * Raises the wake an announced subscription may have missed: an append made through this instance between the
   * change's commit and its announcement found no subscriber here. The wake itself is atomic (`planWake`), so several
   * instances catching up at once raise it once.
   */
  private async catchUp(id: string): Promise<void> {
    const record = await this.reload(id);
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
      const page = await this.storage.listSubscriptions({ after, limit: LISTING_PAGE });
      for (const record of page) {
        if (this.closed) return;
        await this.catchUp(record.id);
      }
      if (page.length < LISTING_PAGE) return;
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
   * After an append (or a close): wake the subscriptions that have the stream as a member. A few webhook subscribers
   * are woken here and now (the scheduler coalesces); pull-wake subscribers (their wake is a store mutation) and a
   * crowd of subscribers are woken in the background — at once, or while appends keep the instance busy, together
   * with the other streams appended to within `minIntervalMs` (one pass per stream).
   */
  appended(name: string): void {
    this.load.noteAppend();
    // On a shared store nothing is skipped on the index's word: another instance may have linked the stream.
    if (!this.shared && !this.wakeKnownSubscribers(name)) return;
    if (this.settings.minIntervalMs > 0 && this.load.busy()) this.deferred.add(name);
    else this.queueStream(name, false);
  }

  /**
   * Wakes the webhook subscribers of `name` the index knows, when there are few. False when nothing is left to do;
   * true when the stream's subscribers are to be woken in the background (pull-wake ones, or too many).
   */
  private wakeKnownSubscribers(name: string): boolean {
    const ids = this.index.subscribers(name);
    if (ids.size === 0) return false;
    if (ids.size > DIRECT_WAKES) return true;
    let pull = false;
    for (const id of ids) {
      const entry = this.index.get(id);
      if (entry === undefined || entry.failed) continue;
      if (entry.webhook) this.scheduler.wake(id);
      else pull = true;
    }
    return pull;
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
      if (await this.storage.mutateSubscription(id, planLinkStream(id, { path: name, offset: start }))) {
        await this.reload(id);
      }
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
    // The store, not the index: every subscription of the stream must lose it, known here yet or not.
    for (const record of await this.storage.listSubscriptions({ member: name })) {
      await this.storage.mutateSubscription(record.id, planUnlinkStream(record.id, name));
      await this.reload(record.id);
    }
  }

  private async wakeMembers(name: string): Promise<void> {
    // Read only for pull-wake subscriptions: a webhook delivery reads every member's tail itself when it starts.
    let tail: Promise<SubscriptionTail | undefined> | undefined;
    /** Raises the wake of a pull-wake subscriber; false when the stream is gone. */
    const pull = async (record: SubscriptionRecord): Promise<boolean> => {
      tail ??= this.tailOf(name);
      const read = await tail;
      if (read === undefined) return false;
      await this.raiseWake(record, [read]);
      return true;
    };
    if (this.shared) {
      for (const record of await this.storage.listSubscriptions({ member: name })) {
        if (record.status === 'failed') continue;
        // The delivery raises the wake itself (atomically, once cluster-wide) with every member's tail.
        if (record.config.type === 'webhook') this.scheduler.wake(record.id);
        else if (!(await pull(record))) return;
      }
      return;
    }
    for (const id of [...this.index.subscribers(name)]) {
      const entry = this.index.get(id);
      if (entry === undefined || entry.failed) continue;
      if (entry.webhook) {
        this.scheduler.wake(id);
        continue;
      }
      const record = await this.storage.getSubscription(id);
      if (record === undefined || record.status === 'failed') continue;
      if (!(await pull(record))) return;
    }
  }

  /** A delivery of `id` is already due. */
  pending(id: string): boolean {
    return this.scheduler.pending(id);
  }

  async statusChanged(id: string): Promise<void> {
    await this.reload(id);
  }

  /** Reads the record of `id` into the index (and returns it; `undefined`: deleted). */
  private async reload(id: string): Promise<SubscriptionRecord | undefined> {
    const ticket = this.index.reloading(id);
    const record = await this.storage.getSubscription(id);
    this.index.settle(id, ticket, record);
    return record;
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
  raiseWake(record: SubscriptionRecord, tails: readonly SubscriptionTail[]): Promise<void> {
    return raisePullWake(this.storage, record, tails, this.logger);
  }

  /** After a wake ended (ack `done`, release, sync auto-ack): the next one, when work remains. Resolves `next_wake`. */
  async followUp(record: SubscriptionRecord): Promise<boolean> {
    const tails = await this.memberTails(record);
    if (!hasPendingWork(record, tails)) return false;
    if (record.config.type === 'webhook') this.scheduler.wake(record.id);
    else await this.raiseWake(record, tails);
    return true;
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

  /** Rebuilds the index from a full listing of the store (after any listing already running). */
  private refresh(): Promise<void> {
    const run = () => this.listAll();
    const next = (this.listing ?? Promise.resolve()).then(run, run);
    this.listing = next;
    return next;
  }

  private async listAll(): Promise<void> {
    this.refreshedAt = Date.now();
    const epoch = ++this.epoch;
    if (this.shared) {
      // The index does not route appends (see `shared`): knowing whether any subscription exists is enough.
      const any = (await this.storage.listSubscriptions({ limit: 1 })).length > 0;
      if (epoch !== this.epoch) return;
      this.watching = any;
      this.patterns = undefined;
      return;
    }
    const count = await this.index.rebuild(this.storage, LISTING_PAGE);
    // A change heard or made meanwhile is newer than this answer: keep what it set.
    if (epoch !== this.epoch) return;
    this.watching = count > 0;
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
