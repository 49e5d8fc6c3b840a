import type { SubscriptionRecord, SubscriptionStore } from '@streamkeep/storage';

/** What the append path needs to know of one subscription, without reading its record. */
export interface IndexedSubscription {
  readonly id: string;
  readonly webhook: boolean;
  readonly failed: boolean;
  readonly members: readonly string[];
}

/**
 * This process's map from stream path to the subscriptions that have it as a member, so that an append finds its
 * subscribers with one `Map` lookup (none: nothing else happens) instead of a storage listing per stream.
 *
 * @remarks
 * A cache of the store, never the truth: entries are set from records read *after* the change they reflect (a
 * reload per id after each change made or heard of, a full listing at start and every `refreshIntervalMs`). Reads of
 * one id may resolve out of order (PostgreSQL), so each reload takes a ticket and only the latest one applies; a full
 * listing leaves alone the ids that changed while it ran (their own reload is newer). What a lagging entry can miss —
 * an append between a membership change and the reload of its record — the service catches up on after the reload,
 * from the members' tails.
 */
export class SubscriberIndex {
  private readonly byId = new Map<string, IndexedSubscription>();
  private readonly byStream = new Map<string, Set<string>>();
  /** Per id, the ticket of its latest reload. */
  private readonly tickets = new Map<string, number>();
  private nextTicket = 0;
  /** Ids changed while a full listing runs (`undefined`: none runs). */
  private touchedDuringListing: Set<string> | undefined;

  get size(): number {
    return this.byId.size;
  }

  /** The ids of the subscriptions having `path` as a member (empty when none). */
  subscribers(path: string): ReadonlySet<string> {
    return this.byStream.get(path) ?? NONE;
  }

  get(id: string): IndexedSubscription | undefined {
    return this.byId.get(id);
  }

  /** Starts a reload of `id`: pass the ticket to {@link settle} with what the read found. */
  reloading(id: string): number {
    const ticket = ++this.nextTicket;
    this.tickets.set(id, ticket);
    this.touchedDuringListing?.add(id);
    return ticket;
  }

  /** Applies the record a reload of `id` read (`undefined`: deleted), unless a later reload of `id` started. */
  settle(id: string, ticket: number, record: SubscriptionRecord | undefined): void {
    if (this.tickets.get(id) !== ticket) return;
    this.tickets.delete(id);
    this.put(id, record);
  }

  /** Drops `id` at once (deleted through this instance); a reload begun before does not bring it back. */
  remove(id: string): void {
    this.reloading(id);
    this.tickets.delete(id);
    this.put(id, undefined);
  }

  /**
   * Replaces every entry with what a full listing of `store` finds (`pageSize` records a call), except the ids that
   * changed while it ran (their reloads are newer than the listing). Resolves with the number of subscriptions
   * listed. One at a time.
   */
  async rebuild(store: Pick<SubscriptionStore, 'listSubscriptions'>, pageSize: number): Promise<number> {
    const records: SubscriptionRecord[] = [];
    const touched = new Set<string>();
    this.touchedDuringListing = touched;
    try {
      let after: string | undefined;
      for (;;) {
        const page = await store.listSubscriptions({ after, limit: pageSize });
        records.push(...page);
        if (page.length < pageSize) break;
        after = page[page.length - 1]!.id;
      }
    } finally {
      this.touchedDuringListing = undefined;
    }
    const listed = new Set<string>();
    for (const record of records) {
      listed.add(record.id);
      if (!touched.has(record.id)) this.put(record.id, record);
    }
    for (const id of [...this.byId.keys()]) {
      if (!listed.has(id) && !touched.has(id)) this.put(id, undefined);
    }
    return records.length;
  }

  private put(id: string, record: SubscriptionRecord | undefined): void {
    const before = this.byId.get(id);
    const members = record?.members.map((m) => m.path) ?? [];
    if (before !== undefined) {
      const keep = new Set(members);
      for (const path of before.members) {
        if (keep.has(path)) continue;
        const ids = this.byStream.get(path);
        ids?.delete(id);
        if (ids?.size === 0) this.byStream.delete(path);
      }
    }
    if (record === undefined) {
      this.byId.delete(id);
      return;
    }
    for (const path of members) {
      let ids = this.byStream.get(path);
      if (ids === undefined) this.byStream.set(path, (ids = new Set()));
      ids.add(id);
    }
    this.byId.set(id, {
      id,
      webhook: record.config.type === 'webhook',
      failed: record.status === 'failed',
      members,
    });
  }
}

const NONE: ReadonlySet<string> = new Set();
