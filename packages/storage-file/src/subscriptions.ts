import {
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
import { encodeCatalogOp } from './catalog.js';
import type { Core } from './core.js';
import { classifyIoError } from './fs.js';

/**
 * The subscription store of a {@link FileStorage}: records in memory (`core.subscriptions`), every write one JSON
 * entry of the commit journal, made durable by the journal's next round (shared with the appends and lifecycle
 * changes in flight) before the call resolves. The whole table is saved to the `subscriptions` file at each
 * checkpoint; opening reads that file and applies the journal's subscription entries over it.
 *
 * @remarks
 * Mutations of one id are serialised by a lock of their own (a chain of promises per id, unrelated to the stream
 * names' lifecycle locks): the plan runs on the current durable record once the previous mutation of that id is
 * durable, so two mutations never plan over the same version. Different ids proceed in parallel and share rounds.
 */
export class FileSubscriptions implements SubscriptionStore {
  /** Per id, the end of its chain of mutations (settled, never rejected); removed when the chain goes idle. */
  readonly #chains = new Map<string, Promise<void>>();

  constructor(
    private readonly core: Core,
    private readonly capabilities: StorageCapabilities,
  ) {}

  async getSubscription(id: string): Promise<SubscriptionRecord | undefined> {
    this.core.assertOpen();
    return this.core.subscriptions.get(validateSubscriptionCall(this.capabilities, id));
  }

  async mutateSubscription<R>(id: string, plan: SubscriptionPlan<R>): Promise<R> {
    this.core.assertOpen();
    validateMutateSubscription(this.capabilities, id, plan);
    return this.#serialised(id, async () => {
      const current = this.core.subscriptions.get(id);
      const decision = plan(current, this.core.clock.now());
      const write = checkSubscriptionWrite(id, current, decision);
      if (write !== undefined) await this.#persist(id, write);
      return decision.result;
    });
  }

  async deleteSubscription(id: string): Promise<boolean> {
    this.core.assertOpen();
    validateSubscriptionCall(this.capabilities, id);
    return this.#serialised(id, async () => {
      if (this.core.subscriptions.get(id) === undefined) return false;
      await this.#persist(id, null);
      return true;
    });
  }

  async listSubscriptions(options?: ListSubscriptionsOptions): Promise<SubscriptionRecord[]> {
    this.core.assertOpen();
    const query = validateListSubscriptions(this.capabilities, options);
    const table = this.core.subscriptions;
    const candidates = query.member === undefined ? table.values() : table.withMember(query.member);
    return subscriptionListingPage(candidates, query, this.core.clock.now());
  }

  /**
   * Journals the new record of `id` (or its removal) and resolves once it is durable; the table takes it at that
   * moment (the journal's `onDurable`), so a failed write leaves the record as it was.
   */
  async #persist(id: string, record: SubscriptionRecord | null): Promise<void> {
    const body = encodeCatalogOp({ op: 'subscription', id, record });
    try {
      await this.core.journal.submitCatalog(body, () => this.core.subscriptions.apply(id, record));
    } catch (err) {
      throw classifyIoError(err, `writing subscription ${JSON.stringify(id)}`);
    }
  }

  /**
   * Runs `fn` after every earlier mutation of `id` has settled. Counted among the storage's operations in flight,
   * so that `close` waits for it (a mutation accepted while open completes, durable, before the journal closes).
   */
  #serialised<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.#chains.get(id) ?? Promise.resolve()).then(fn);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.#chains.set(id, settled);
    const ops = this.core.ops;
    ops.add(run);
    void settled.then(() => {
      ops.delete(run);
      if (this.#chains.get(id) === settled) this.#chains.delete(id);
    });
    return run;
  }
}
