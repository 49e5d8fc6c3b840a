import {
  type Clock,
  checkSubscriptionWrite,
  freezeRecord,
  type ListSubscriptionsOptions,
  MemberIndex,
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
  readonly #members = new MemberIndex();

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
    if (write !== undefined) this.#store(current, freezeRecord(write));
    return decision.result;
  }

  async deleteSubscription(id: string): Promise<boolean> {
    this.assertOpen();
    const current = this.#records.get(validateSubscriptionCall(this.capabilities, id));
    if (current === undefined) return false;
    this.#members.move(current.id, current, undefined);
    this.#records.delete(id);
    return true;
  }

  async listSubscriptions(options?: ListSubscriptionsOptions): Promise<SubscriptionRecord[]> {
    this.assertOpen();
    const query = validateListSubscriptions(this.capabilities, options);
    const candidates =
      query.member === undefined
        ? this.#records.values()
        : [...this.#members.ids(query.member)].map((id) => this.#records.get(id)!);
    return subscriptionListingPage(candidates, query, this.clock.now());
  }

  #store(current: SubscriptionRecord | undefined, next: SubscriptionRecord): void {
    this.#members.move(next.id, current, next);
    this.#records.set(next.id, next);
  }
}
