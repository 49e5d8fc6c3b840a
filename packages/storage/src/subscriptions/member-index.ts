import type { SubscriptionRecord } from './types.js';

/**
 * An in-memory index from member stream path to the ids of the subscriptions that list it, for backends that keep
 * their records in memory (memory, file): routing an append to its subscribers (`listSubscriptions({ member })`) then
 * never scans every record. Kept in step by {@link MemberIndex.move} on every write and delete.
 */
export class MemberIndex {
  readonly #byMember = new Map<string, Set<string>>();

  /** The ids of the subscriptions with `path` among their members (none: empty). */
  ids(path: string): ReadonlySet<string> {
    return this.#byMember.get(path) ?? NONE;
  }

  /** Moves `id` from `before`'s members to `after`'s (`undefined`: no record on that side). */
  move(id: string, before: SubscriptionRecord | undefined, after: SubscriptionRecord | undefined): void {
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

const NONE: ReadonlySet<string> = new Set();

/**
 * Freezes a record deeply, for backends that hand out the records they store: a caller then cannot change stored
 * state in place. Returns the record.
 */
export function freezeRecord<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) freezeRecord(v);
  }
  return value;
}
