import {
  type Clock,
  isStorageError,
  type ListSubscriptionsOptions,
  type Storage,
  type SubscriptionPlan,
  type SubscriptionRecord,
  type SubscriptionStore,
} from '@streamkeep/storage';
import { MemoryStorage } from '@streamkeep/storage-memory';
import { describe, expect, it } from 'vitest';
import {
  checkCapabilities,
  checkSubscriptionDurability,
  checkSubscriptionModel,
  checkSubscriptionRaces,
  checkSubscriptions,
  type StorageHarness,
} from '../src/index.js';

// Deliberately broken subscription stores: MemoryStorage behind a wrapper that gets exactly one thing wrong the way a
// real backend could (a column not read or not written, a read-modify-write without a lock, the wrong clock, a cache).
// The kit must fail every one of them, and pass the unbroken wrapper.

type Store = Storage & SubscriptionStore;
type Overrides = Partial<SubscriptionStore> & { capabilities?: Partial<Storage['capabilities']> };

const STORAGE_METHODS = [
  'createStream',
  'createFork',
  'append',
  'closeStream',
  'appendWithProducer',
  'read',
  'head',
  'exists',
  'delete',
  'subscribe',
  'listStreams',
  'cleanupExpiredStreams',
  'close',
  'getSubscription',
  'mutateSubscription',
  'deleteSubscription',
  'listSubscriptions',
] as const;

/** A store forwarding every method to `inner` (bound: MemoryStorage keeps private fields) except the overridden ones. */
function wrap(inner: Store, overrides: Overrides): Store {
  const out: Record<string, unknown> = {
    specificationVersion: inner.specificationVersion,
    capabilities: { ...inner.capabilities, ...overrides.capabilities },
  };
  for (const m of STORAGE_METHODS) out[m] = (inner[m] as (...a: unknown[]) => unknown).bind(inner);
  for (const [k, v] of Object.entries(overrides)) if (k !== 'capabilities') out[k] = v;
  return out as unknown as Store;
}

function harnessOf(make: (inner: Store, clock: Clock) => Overrides): StorageHarness {
  return {
    async create({ clock, limits }) {
      const inner = new MemoryStorage({ clock, ...limits });
      return { storage: wrap(inner, make(inner, clock)), teardown: () => inner.close() };
    },
  };
}

/** Writes `record` over whatever is stored, whatever its version: the blind write of a store without a lock. */
function forceWrite(inner: Store, id: string, record: SubscriptionRecord): Promise<unknown> {
  return inner.mutateSubscription(id, (now) => ({
    write: { ...record, version: (now?.version ?? 0) + 1 },
    result: 0,
  }));
}

/** Runs `plan` on a record transformed by `read` (a store that reads a column wrong), writing what it decides. */
function readingAs(inner: Store, read: (r: SubscriptionRecord) => SubscriptionRecord): Overrides {
  return {
    mutateSubscription: <R>(id: string, plan: SubscriptionPlan<R>) =>
      inner.mutateSubscription(id, (current, now) => {
        const decision = plan(current && read(current), now);
        return decision.write === undefined
          ? decision
          : { write: { ...decision.write, version: (current?.version ?? 0) + 1 }, result: decision.result };
      }),
  };
}

/** Writes what the plan decided, transformed by `write` (a store that writes a column wrong). */
function writingAs(
  inner: Store,
  write: (next: SubscriptionRecord, current?: SubscriptionRecord) => SubscriptionRecord,
): Overrides {
  return {
    mutateSubscription: <R>(id: string, plan: SubscriptionPlan<R>) =>
      inner.mutateSubscription(id, (current, now) => {
        const decision = plan(current, now);
        return decision.write === undefined
          ? decision
          : { write: write(decision.write, current), result: decision.result };
      }),
  };
}

interface Mutant {
  readonly name: string;
  readonly bug: string;
  readonly harness: StorageHarness;
}

const SUBSCRIPTION_MUTANTS: readonly Mutant[] = [
  {
    name: 'wall-clock-lease',
    bug: 'leases and createdAt measured on the wall clock instead of the storage clock',
    harness: harnessOf((inner) => ({
      mutateSubscription: (id, plan) => inner.mutateSubscription(id, (current) => plan(current, Date.now())),
    })),
  },
  {
    name: 'holder-not-read',
    bug: 'the lease holder is not read back, so a claim ignores a live lease',
    harness: harnessOf((inner) => readingAs(inner, (r) => ({ ...r, wake: { ...r.wake, holder: null } }))),
  },
  {
    name: 'generation-not-written',
    bug: 'the generation is not written, so a wake does not bump it and stale acks are not fenced',
    harness: harnessOf((inner) =>
      writingAs(inner, (next, current) =>
        current === undefined
          ? next
          : { ...next, wake: { ...next.wake, generation: current.wake.generation } },
      ),
    ),
  },
  {
    name: 'lost-update',
    bug: 'read-modify-write without a lock: concurrent claims both win, a slower ack moves the offset back',
    harness: harnessOf((inner, clock) => ({
      mutateSubscription: async (id, plan) => {
        const current = await inner.getSubscription(id);
        await new Promise<void>((resolve) => setImmediate(resolve));
        const decision = plan(current, clock.now());
        if (decision.write !== undefined) await forceWrite(inner, id, decision.write);
        return decision.result;
      },
    })),
  },
  {
    name: 'description-not-written',
    bug: 'the description is not persisted, so re-confirming the same config is a conflict',
    harness: harnessOf((inner) =>
      writingAs(inner, (next) => ({ ...next, config: { ...next.config, description: null } })),
    ),
  },
  {
    name: 'conflict-as-reconfirm',
    bug: 'a create of an existing id is treated as an idempotent re-confirmation whatever its config',
    harness: harnessOf((inner) => ({
      mutateSubscription: (id, plan) =>
        inner.mutateSubscription(id, (current, now) => {
          try {
            return plan(current, now);
          } catch (err) {
            if (isStorageError(err, 'SUBSCRIPTION_CONFLICT'))
              return { result: { created: false, record: current } as never };
            throw err;
          }
        }),
    })),
  },
  {
    name: 'stale-cache',
    bug: 'records read through get/list are cached and handed to later plans: acks move back, leases reappear',
    harness: harnessOf((inner) => {
      const cache = new Map<string, SubscriptionRecord>();
      return {
        getSubscription: async (id) => {
          const r = await inner.getSubscription(id);
          if (r !== undefined && !cache.has(id)) cache.set(id, r);
          return r;
        },
        mutateSubscription: (id, plan) =>
          inner.mutateSubscription(id, (current, now) => {
            const decision = plan(cache.get(id) ?? current, now);
            return decision.write === undefined
              ? decision
              : {
                  write: { ...decision.write, version: (current?.version ?? 0) + 1 },
                  result: decision.result,
                };
          }),
      };
    }),
  },
  {
    name: 'member-index-grows-only',
    bug: 'the member index is not updated on unlink or delete, so listSubscriptions({ member }) returns stale ids',
    harness: harnessOf((inner) => {
      const ever = new Map<string, Set<string>>();
      return {
        mutateSubscription: async (id, plan) => {
          const result = await inner.mutateSubscription(id, plan);
          for (const m of (await inner.getSubscription(id))?.members ?? []) {
            if (!ever.has(m.path)) ever.set(m.path, new Set());
            ever.get(m.path)!.add(id);
          }
          return result;
        },
        listSubscriptions: async (options?: ListSubscriptionsOptions) => {
          if (options?.member === undefined) return inner.listSubscriptions(options);
          const ids = ever.get(options.member) ?? new Set();
          const all = await inner.listSubscriptions({ ...options, member: undefined, limit: undefined });
          const page = all.filter((r) => ids.has(r.id));
          return options.limit === undefined ? page : page.slice(0, options.limit);
        },
      };
    }),
  },
  {
    name: 'delete-keeps-record',
    bug: 'deleteSubscription answers true but the record stays',
    harness: harnessOf((inner) => ({
      deleteSubscription: async (id) => (await inner.getSubscription(id)) !== undefined,
    })),
  },
  {
    name: 'closed-still-reads',
    bug: 'getSubscription answers after close() (its own STORAGE_CLOSED check forgotten)',
    harness: harnessOf((inner) => ({
      getSubscription: (id) =>
        inner.getSubscription(id).catch((err: unknown) => {
          if (isStorageError(err, 'STORAGE_CLOSED')) return undefined;
          throw err;
        }),
    })),
  },
  {
    name: 'id-not-validated',
    bug: 'getSubscription looks a malformed id up instead of refusing it (INVALID_SUBSCRIPTION)',
    harness: harnessOf((inner) => ({
      getSubscription: (id) => (id === '' ? Promise.resolve(undefined) : inner.getSubscription(id)),
    })),
  },
  {
    name: 'off-but-working',
    bug: 'declares subscriptions off, yet its subscription methods work instead of refusing NOT_SUPPORTED',
    harness: harnessOf(() => ({ capabilities: { subscriptions: false } })),
  },
];

const SEEDS = [1, 2, 3];

describe('the subscription checks catch every subscription mutant', () => {
  it('the unbroken wrapper passes them', async () => {
    const honest = harnessOf(() => ({}));
    await checkSubscriptionModel(honest, { seed: 1, numRuns: 100 });
    await checkSubscriptionRaces(honest, { seed: 1 });
    await checkCapabilities(honest, { seed: 1, numRuns: 50 });
    await checkSubscriptions(honest, { seed: 2, numRuns: 50 });
  }, 120_000);

  for (const mutant of SUBSCRIPTION_MUTANTS) {
    for (const seed of SEEDS) {
      it(`${mutant.name} (${mutant.bug}), seed ${seed}`, async () => {
        let failure: unknown;
        try {
          // The other areas only see honest MemoryStorage: the capability checks (the refusal when off) and the
          // subscription group are what must catch these.
          await checkCapabilities(mutant.harness, { seed, shrink: false });
          await checkSubscriptions(mutant.harness, { seed, shrink: false });
        } catch (err) {
          failure = err;
        }
        expect(failure, `${mutant.name} survived seed ${seed}`).toBeInstanceOf(Error);
        expect(String(failure)).toMatch(/seed|expected|NOT_SUPPORTED/i);
      }, 120_000);
    }
  }
});

/**
 * A harness whose `reopen` hands out a new wrapper over the same MemoryStorage (state "survives"), declaring itself
 * durable; with `forget`, reopen starts an empty MemoryStorage instead, as a backend that persists no records would.
 */
function reopenable(forget: boolean): StorageHarness {
  return {
    async create({ clock }) {
      let inner = new MemoryStorage({ clock });
      const durable = () => wrap(inner, { capabilities: { durable: true } });
      return {
        storage: durable(),
        async reopen() {
          if (forget) {
            await inner.close();
            inner = new MemoryStorage({ clock });
          }
          return durable();
        },
        teardown: () => inner.close(),
      };
    },
  };
}

describe('the durability check of subscriptions', () => {
  it('passes records that survive reopen()', async () => {
    await checkSubscriptionDurability(reopenable(false), { seed: 1, numRuns: 100 });
  }, 120_000);

  it('catches a backend that loses its records on reopen()', async () => {
    await expect(checkSubscriptionDurability(reopenable(true), { seed: 1, shrink: false })).rejects.toThrow(
      /reopen/,
    );
  }, 120_000);
});
