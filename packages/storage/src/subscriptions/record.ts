import { StorageError } from '../errors.js';
import { compareOffsets, isValidOffset, NOW_OFFSET, type Offset, START_OFFSET } from '../offsets.js';
import { compareUtf8 } from '../rules/names.js';
import { validateStreamPath } from './config.js';
import type {
  SubscriptionLinkType,
  SubscriptionMember,
  SubscriptionRecord,
  SubscriptionTail,
  SubscriptionWakeState,
} from './types.js';

/** The wake state of a record that never woke. */
export const IDLE_WAKE: SubscriptionWakeState = Object.freeze({
  generation: 0,
  wakeId: null,
  holder: null,
  leaseExpiresAt: null,
  tails: Object.freeze([]) as readonly SubscriptionTail[],
});

/** The link type a member shows (`GET` answers one per stream): `explicit` when it is explicitly linked at all. */
export function memberLinkType(member: SubscriptionMember): SubscriptionLinkType {
  return member.explicit ? 'explicit' : 'glob';
}

/** The member with this path, or `undefined` (binary search over the sorted members). */
export function findMember(record: SubscriptionRecord, path: string): SubscriptionMember | undefined {
  const i = indexOf(record.members, path);
  return i >= 0 ? record.members[i] : undefined;
}

function indexOf(members: readonly SubscriptionMember[], path: string): number {
  let lo = 0;
  let hi = members.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareUtf8(members[mid]!.path, path);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -(lo + 1);
}

/** `members` with `member` inserted or replacing the one of the same path, still sorted. */
export function withMember(
  members: readonly SubscriptionMember[],
  member: SubscriptionMember,
): SubscriptionMember[] {
  const next = [...members];
  const i = indexOf(members, member.path);
  if (i >= 0) next[i] = member;
  else next.splice(-(i + 1), 0, member);
  return next;
}

/** `members` without the one of this path. */
export function withoutMember(members: readonly SubscriptionMember[], path: string): SubscriptionMember[] {
  return members.filter((m) => m.path !== path);
}

/** The next version of `current` with `changes`: the version steps by one, nothing else moves. */
export function revise(
  current: SubscriptionRecord,
  changes: Partial<SubscriptionRecord>,
): SubscriptionRecord {
  return { ...current, ...changes, id: current.id, version: current.version + 1 };
}

/**
 * True while the record has an outstanding wake whose lease has not ended at `now` (storage clock). An expired
 * lease is no lease: whoever held it is fenced from then on.
 */
export function isWakeLive(record: SubscriptionRecord, now: number): boolean {
  const { wakeId, leaseExpiresAt } = record.wake;
  return wakeId !== null && leaseExpiresAt !== null && now < leaseExpiresAt;
}

/**
 * Checks a concrete offset given to a subscription planner (a tail or an ack): well-formed, not a sentinel.
 *
 * @throws StorageError `INVALID_OFFSET`.
 */
export function checkConcreteOffset(what: string, offset: unknown): Offset {
  if (
    typeof offset !== 'string' ||
    !isValidOffset(offset) ||
    offset === START_OFFSET ||
    offset === NOW_OFFSET
  ) {
    throw new StorageError(
      'INVALID_OFFSET',
      `${what} must be a concrete offset (<16 hex>_<16 hex>), got ${JSON.stringify(offset) ?? 'nothing'}`,
    );
  }
  return offset;
}

/**
 * Validates a list of `{ path, offset }` pairs (tails or acks): an array of objects with a valid stream name and a
 * concrete offset. When a path repeats, the greatest offset counts.
 *
 * @throws StorageError `INVALID_SUBSCRIPTION` (not an array, a bad path), `INVALID_OFFSET`.
 */
export function validateTails(what: string, value: unknown): SubscriptionTail[] {
  if (!Array.isArray(value)) {
    throw new StorageError('INVALID_SUBSCRIPTION', `${what} must be an array of { path, offset }`);
  }
  const byPath = new Map<string, Offset>();
  value.forEach((entry: unknown, i) => {
    if (typeof entry !== 'object' || entry === null) {
      throw new StorageError('INVALID_SUBSCRIPTION', `${what}[${i}] must be an object { path, offset }`);
    }
    const e = entry as { path?: unknown; offset?: unknown };
    const path = validateStreamPath(`${what}[${i}].path`, e.path);
    const offset = checkConcreteOffset(`${what}[${i}].offset`, e.offset);
    const seen = byPath.get(path);
    if (seen === undefined || compareOffsets(offset, seen) > 0) byPath.set(path, offset);
  });
  return [...byPath].map(([path, offset]) => ({ path, offset })).sort((a, b) => compareUtf8(a.path, b.path));
}

/**
 * The members with pending work, given the current tails of (some of) the linked streams: each member whose stream's
 * tail lies beyond its acked offset, with that tail, sorted by path. Tails of streams that are not members are
 * ignored; a member without a tail in `tails` is taken as having nothing pending.
 */
export function pendingTails(
  record: SubscriptionRecord,
  tails: readonly SubscriptionTail[],
): SubscriptionTail[] {
  const pending: SubscriptionTail[] = [];
  for (const tail of tails) {
    const member = findMember(record, tail.path);
    if (member !== undefined && compareOffsets(tail.offset, member.ackedOffset) > 0) pending.push(tail);
  }
  return pending.sort((a, b) => compareUtf8(a.path, b.path));
}

/** True when some member's tail (in `tails`) lies beyond its acked offset: a wake is due. */
export function hasPendingWork(record: SubscriptionRecord, tails: readonly SubscriptionTail[]): boolean {
  return pendingTails(record, validateTails('tails', tails)).length > 0;
}
