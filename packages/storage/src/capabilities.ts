/**
 * What a backend persists and which optional parts of the contract it implements, declared once on every
 * {@link Storage} instance as `storage.capabilities`.
 *
 * @remarks
 * Every key is required, so each backend answers every question explicitly. Three consumers read the same object:
 * the conformance kit (a group whose capability is off is reported as skipped, and the kit then checks that the
 * operation rejects with `NOT_SUPPORTED`), the HTTP server (which refuses or advertises features from it) and each
 * backend's README capability table. Adding a key is a contract change and bumps `specificationVersion`.
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
];
