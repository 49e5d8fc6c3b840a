/**
 * What a backend persists and which optional parts of the contract it implements, declared once on every
 * {@link Storage} instance as `storage.capabilities`.
 *
 * @remarks
 * Every key of revision `v1` is required, so each backend answers every question explicitly. Three consumers read
 * the same object: the conformance kit (a group whose capability is off is reported as skipped, and the kit then
 * checks that the operation rejects with `NOT_SUPPORTED`), the HTTP server (which refuses or advertises features from
 * it) and each backend's README capability table. Adding a *required* key is a contract change and bumps
 * `specificationVersion`. A key added within a revision is optional and an absent key means `false`, so every backend
 * written against the revision stays conformant; read flags with {@link hasCapability}, which applies that default.
 */
export interface StorageCapabilities {
  /**
   * Acknowledged data and metadata survive closing and reopening the storage (a restart of the process). Backends
   * with this flag provide a `reopen` to the conformance kit, which then checks that everything acknowledged (data,
   * producer state, `Stream-Seq`, closure, forks, soft deletes) is identical afterwards.
   */
  readonly durable: boolean;
  /** `createFork` works and deletes of fork sources become soft deletes. Off: `createFork` rejects `NOT_SUPPORTED`. */
  readonly forks: boolean;
  /** `ttlSeconds` / `expiresAt` are honoured. Off: creating a stream with either rejects `NOT_SUPPORTED`. */
  readonly expiry: boolean;
  /** `appendWithProducer` works. Off: it rejects `NOT_SUPPORTED`. */
  readonly producers: boolean;
  /** `listStreams` works. Off: it rejects `NOT_SUPPORTED`. */
  readonly listStreams: boolean;
  /** The backend enforces configured storage-wide and per-stream byte limits. */
  readonly byteLimits: boolean;
  /**
   * Several storage instances (in several processes) may open the same backing store at once, and `subscribe` wakes
   * on commits made by any of them. Off: one instance owns the store (file roots are locked).
   */
  readonly multiInstance: boolean;
  /**
   * The backend is also a `SubscriptionStore`: it persists subscription records (protocol §6–7: webhook and
   * pull-wake subscriptions, their members, acked offsets and wake leases) with an atomic read-modify-write, so
   * that many server instances over one store agree on every claim and wake. Off or absent: the server answers the
   * `__ds` routes with 501, and any subscription method the backend has rejects `NOT_SUPPORTED`.
   * Added within `v1`: optional, absent means `false`.
   */
  readonly subscriptions?: boolean | undefined;
}

/** The flags added within revision `v1`: optional, absent meaning `false`. Every other flag is required. */
export const OPTIONAL_CAPABILITY_NAMES: readonly (keyof StorageCapabilities)[] = ['subscriptions'];

/**
 * The value of one capability flag, with the default of the flags added within a revision applied (absent → `false`).
 * Use it instead of reading `capabilities[name]` directly, which is `undefined` for an absent optional flag.
 */
export function hasCapability(capabilities: StorageCapabilities, name: keyof StorageCapabilities): boolean {
  return capabilities[name] === true;
}

/** The names of all capability flags, in declaration order; used by tooling that prints capability tables. */
export const CAPABILITY_NAMES: readonly (keyof StorageCapabilities)[] = [
  'durable',
  'forks',
  'expiry',
  'producers',
  'listStreams',
  'byteLimits',
  'multiInstance',
  'subscriptions',
];
