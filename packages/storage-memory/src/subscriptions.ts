import {
  type Clock,
  checkSubscriptionWrite,
  type ListSubscriptionsOptions,
  type StorageCapabilities,
  type SubscriptionPlan,
  type SubscriptionRecord,
  type SubscriptionStore,
  subscriptionListingPage,
  validateListSubscriptions,
  validateMutateSubscription,
  validateSubscriptionCall,
} from '@streamkeep/storage';

/**
 * The subscription records of one {@link MemoryStorage}: a map of frozen records plus an index from member path to
 * subscription ids, so that routing an append to its subscribers does not scan every record.
 *
 * @remarks
 * Every method works synchronously once called, so a `mutateSubscription` reads, plans and writes in one turn of the
 * event loop: atomic with respect to every other call, which is all the serialisation the contract asks for.
 */
export class MemorySubscriptions implements SubscriptionStore {
  readonly #records = new Map<string, SubscriptionRecord>();
  readonly #byMember = new Map<string, Set<string>>();

  constructor(
    private readonly capabilities: StorageCapabilities,
    private readonly clock: Clock,
    private readonly assertOpen: () => void,
  ) {}

  async getSubscription(id: string): Promise<SubscriptionRecord | undefined> {
    this.assertOpen();
    return this.#records.get(validateSubscriptionCall(this.capabilities, id));
  }

  async mutateSubscription<R>(id: string, plan: SubscriptionPlan<R>): Promise<R> {
    this.assertOpen();
    validateMutateSubscription(this.capabilities, id, plan);
    const current = this.#records.get(id);
    const decision = plan(current, this.clock.now());
    const write = checkSubscriptionWrite(id, current, decision);
    if (write !== undefined) this.#store(current, deepFreeze(write));
    return decision.result;
  }

  async deleteSubscription(id: string): Promise<boolean> {
    this.assertOpen();
    const current = this.#records.get(validateSubscriptionCall(this.capabilities, id));
    if (current === undefined) return false;
    this.#index(current, undefined);
    this.#records.delete(id);
    return true;
  }

  async listSubscriptions(options?: ListSubscriptionsOptions): Promise<SubscriptionRecord[]> {
    this.assertOpen();
    const query = validateListSubscriptions(this.capabilities, options);
    const candidates =
      query.member === undefined
        ? this.#records.values()
        : [...(this.#byMember.get(query.member) ?? [])].map((id) => this.#records.get(id)!);
    return subscriptionListingPage(candidates, query, this.clock.now());
  }

  #store(current: SubscriptionRecord | undefined, next: SubscriptionRecord): void {
    this.#index(current, next);
    this.#records.set(next.id, next);
  }

  /** Moves the member index from `before`'s members to `after`'s. */
  #index(before: SubscriptionRecord | undefined, after: SubscriptionRecord | undefined): void {
    const id = (before ?? after)!.id;
    const keep = new Set(after?.members.map((m) => m.path));
    for (const m of before?.members ?? []) {
      if (keep.has(m.path)) continue;
      const ids = this.#byMember.get(m.path);
      ids?.delete(id);
      if (ids?.size === 0) this.#byMember.delete(m.path);
    }
    for (const m of after?.members ?? []) {
      let ids = this.#byMember.get(m.path);
      if (ids === undefined) this.#byMember.set(m.path, (ids = new Set()));
      ids.add(id);
    }
  }
}

/** Records are handed out as they are stored; freezing them keeps a caller from changing stored state in place. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
