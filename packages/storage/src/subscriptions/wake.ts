import { StorageError } from '../errors.js';
import { compareOffsets } from '../offsets.js';
import { validateSubscriptionId, validateSubscriptionText } from './config.js';
import { subscriptionNotFound } from './membership.js';
import {
  findMember,
  IDLE_WAKE,
  isWakeLive,
  pendingTails,
  revise,
  validateTails,
  withMember,
} from './record.js';
import type { SubscriptionPlan, SubscriptionRecord, SubscriptionTail, WakeOutcome } from './types.js';

// Planners of wakes and leases (protocol §6.3–7.3). All time is the `now` the backend passes in — its own clock
// (PostgreSQL: the database's), never the caller's — so every instance sharing a store sees one lease.

/** What {@link planWake} needs from the server. */
export interface WakeRequest {
  /** A fresh, unguessable id for the wake if one is raised. */
  readonly wakeId: string;
  /** Current tails of the members (others are ignored); members missing here count as having nothing pending. */
  readonly tails: readonly SubscriptionTail[];
}

/** What {@link planClaim} needs. */
export interface ClaimRequest extends WakeRequest {
  /** The claiming worker's name (`{ worker }` of the claim body). */
  readonly worker: string;
}

/** An ack or release: the generation the caller was given, and for an ack what it processed. */
export interface AckRequest {
  /** The generation of the wake being acked (from the webhook payload or the claim). */
  readonly generation: number;
  /**
   * Inclusive offsets processed, per stream. An offset at or below the acked one changes nothing (acks only move
   * forward); a stream that is not (or no longer) a member is ignored, since membership may change while a worker
   * holds a wake.
   */
  readonly acks?: readonly SubscriptionTail[] | undefined;
  /**
   * `true` also acks the tails the wake was raised for (`wake.tails` of the record, read in the same atomic step):
   * what a webhook's synchronous `{done: true}` answer means, whichever instance receives it.
   */
  readonly ackWakeTails?: boolean | undefined;
  /** `true` ends the wake (releases the lease); otherwise the ack is a heartbeat that extends the lease. */
  readonly done?: boolean | undefined;
}

function checkGeneration(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new StorageError(
      'INVALID_SUBSCRIPTION',
      `generation must be a non-negative integer, got ${String(value)}`,
    );
  }
  return value;
}

/** The record with a new wake: generation + 1, a fresh lease from `now`. */
function raise(
  record: SubscriptionRecord,
  now: number,
  wakeId: string,
  holder: string | null,
  tails: readonly SubscriptionTail[],
): SubscriptionRecord {
  return revise(record, {
    wake: {
      generation: record.wake.generation + 1,
      wakeId,
      holder,
      leaseExpiresAt: now + record.config.leaseTtlMs,
      tails,
    },
  });
}

/**
 * Raises a wake when work is pending and no live wake is outstanding: the one step that makes "a wake fires once
 * cluster-wide" true, because the store runs it atomically.
 *
 * @remarks
 * - no record → `{ woken: false, reason: 'gone' }`;
 * - a live wake (its lease not yet ended at `now`) → `reason: 'live'`: the wake in progress will see the new work
 *   (coalescing: the receiver or worker learns of it through `next_wake` or the next claim);
 * - no member's tail beyond its acked offset → `reason: 'idle'`; an expired wake still outstanding is ended then
 *   (no wake id, holder or lease; the generation stays), so `listSubscriptions({ withExpiredLease })` stops listing
 *   it;
 * - otherwise a new wake: `generation + 1`, `wakeId`, no holder, lease until `now + leaseTtlMs`, and the pending
 *   tails recorded. A wake whose lease expired unanswered is simply replaced (its generation is then fenced).
 *
 * The server raises wakes for both types: for `webhook` it then delivers (the lease bounds the delivery and the
 * receiver's processing); for `pull-wake` it appends the wake event to the wake stream, and the lease bounds how long
 * the wake waits for a claim before another may be raised.
 *
 * @throws StorageError `INVALID_SUBSCRIPTION` (wake id, tails), `INVALID_OFFSET` (tails).
 */
export function planWake(request: WakeRequest): SubscriptionPlan<WakeOutcome> {
  const wakeId = validateSubscriptionText('wake id', request.wakeId);
  const tails = validateTails('tails', request.tails);
  return (current, now) => {
    if (current === undefined) return { result: { woken: false, reason: 'gone', record: undefined } };
    if (isWakeLive(current, now)) return { result: { woken: false, reason: 'live', record: current } };
    const pending = pendingTails(current, tails);
    if (pending.length === 0) {
      if (current.wake.wakeId === null) return { result: { woken: false, reason: 'idle', record: current } };
      // An expired wake with nothing left to do is ended, so that lease sweeps stop finding it.
      const ended = revise(current, { wake: { ...IDLE_WAKE, generation: current.wake.generation } });
      return { write: ended, result: { woken: false, reason: 'idle', record: ended } };
    }
    const next = raise(current, now, wakeId, null, pending);
    return { write: next, result: { woken: true, record: next } };
  };
}

/**
 * A pull-wake worker claims the subscription's wake (`POST …/:id/claim`), taking a lease of `leaseTtlMs` from `now`.
 *
 * @remarks
 * In order:
 * - no record → `SUBSCRIPTION_NOT_FOUND`; a `webhook` subscription → `INVALID_SUBSCRIPTION`;
 * - a live wake held by a worker → `ALREADY_CLAIMED` with `details.currentHolder` and `details.generation` (the
 *   same worker claiming again is refused too: a lease has one holder, and a retry must not extend it silently);
 * - a live, unclaimed wake (raised by {@link planWake}) → the worker takes it: same generation and wake id, the
 *   lease restarts at `now`;
 * - otherwise (no wake, or one whose lease expired — an expired holder is fenced by this claim): pending work →
 *   a new wake (`generation + 1`, `request.wakeId`) held by the worker; none → `NO_PENDING_WORK`.
 *
 * Resolves with the record written; the claim answer is its `wake` (`wakeId`, `generation`) and members.
 *
 * @throws StorageError `INVALID_SUBSCRIPTION`, `INVALID_OFFSET` (arguments); `SUBSCRIPTION_NOT_FOUND`,
 *   `ALREADY_CLAIMED`, `NO_PENDING_WORK`.
 */
export function planClaim(id: string, request: ClaimRequest): SubscriptionPlan<SubscriptionRecord> {
  validateSubscriptionId(id);
  const worker = validateSubscriptionText('worker', request.worker);
  const wakeId = validateSubscriptionText('wake id', request.wakeId);
  const tails = validateTails('tails', request.tails);
  return (current, now) => {
    if (current === undefined) throw subscriptionNotFound(id);
    if (current.config.type !== 'pull-wake') {
      throw new StorageError('INVALID_SUBSCRIPTION', `subscription ${JSON.stringify(id)} is not pull-wake`);
    }
    const { wake } = current;
    if (isWakeLive(current, now)) {
      if (wake.holder !== null) {
        throw new StorageError('ALREADY_CLAIMED', `subscription ${JSON.stringify(id)} is claimed`, {
          details: { currentHolder: wake.holder, generation: wake.generation },
        });
      }
      const next = revise(current, {
        wake: { ...wake, holder: worker, leaseExpiresAt: now + current.config.leaseTtlMs },
      });
      return { write: next, result: next };
    }
    const pending = pendingTails(current, tails);
    if (pending.length === 0) {
      throw new StorageError('NO_PENDING_WORK', `subscription ${JSON.stringify(id)} has nothing to do`);
    }
    const next = raise(current, now, wakeId, worker, pending);
    return { write: next, result: next };
  };
}

/** The refusal of an ack or release that does not name the live wake. */
function fenced(record: SubscriptionRecord, generation: number, now: number): StorageError | undefined {
  if (record.wake.generation === generation && isWakeLive(record, now)) return undefined;
  const why =
    record.wake.generation !== generation
      ? `generation ${generation} is not the current ${record.wake.generation}`
      : record.wake.wakeId === null
        ? `wake ${generation} has already ended`
        : `the lease of wake ${generation} has expired`;
  return new StorageError('FENCED', `subscription ${JSON.stringify(record.id)}: ${why}`, {
    details: { generation: record.wake.generation },
  });
}

/**
 * Acknowledges a wake (`POST …/:id/ack`, and the webhook callback): moves acked offsets forward, then either extends
 * the lease (a heartbeat) or, with `done`, ends the wake.
 *
 * @remarks
 * - no record → `SUBSCRIPTION_NOT_FOUND`;
 * - `request.generation` is not the current generation, or the wake has ended or its lease expired at `now` →
 *   `FENCED` with `details.generation` (the current one): a stale worker can neither move offsets nor end a wake it
 *   no longer holds;
 * - each ack (and with `ackWakeTails` each tail the wake was raised for) sets its member's acked offset to the
 *   greater of the two (inclusive offsets, compared with `compareOffsets`): never backwards;
 * - without `done` the lease runs again for `leaseTtlMs` from `now`; with `done` the wake ends (no wake id, holder
 *   or lease; the generation stays), and the server raises the next wake at once if work remains
 *   (`hasPendingWork` on the result: the answer's `next_wake`).
 *
 * @throws StorageError `INVALID_SUBSCRIPTION`, `INVALID_OFFSET` (arguments); `SUBSCRIPTION_NOT_FOUND`, `FENCED`.
 */
export function planAck(id: string, request: AckRequest): SubscriptionPlan<SubscriptionRecord> {
  validateSubscriptionId(id);
  const generation = checkGeneration(request.generation);
  const acks = request.acks === undefined ? [] : validateTails('acks', request.acks);
  if (request.done !== undefined && typeof request.done !== 'boolean') {
    throw new StorageError('INVALID_SUBSCRIPTION', 'done must be a boolean');
  }
  if (request.ackWakeTails !== undefined && typeof request.ackWakeTails !== 'boolean') {
    throw new StorageError('INVALID_SUBSCRIPTION', 'ackWakeTails must be a boolean');
  }
  const done = request.done === true;
  const wakeTails = request.ackWakeTails === true;
  return (current, now) => {
    if (current === undefined) throw subscriptionNotFound(id);
    const refusal = fenced(current, generation, now);
    if (refusal !== undefined) throw refusal;
    // One offset per stream, the greatest: an explicit ack and a wake tail may name the same stream.
    const best = new Map(acks.map((a) => [a.path, a.offset]));
    if (wakeTails) {
      for (const t of current.wake.tails) {
        const seen = best.get(t.path);
        if (seen === undefined || compareOffsets(t.offset, seen) > 0) best.set(t.path, t.offset);
      }
    }
    let members = current.members;
    for (const [path, offset] of best) {
      const member = findMember(current, path);
      if (member !== undefined && compareOffsets(offset, member.ackedOffset) > 0) {
        members = withMember(members, { ...member, ackedOffset: offset });
      }
    }
    const wake = done
      ? { ...IDLE_WAKE, generation: current.wake.generation }
      : { ...current.wake, leaseExpiresAt: now + current.config.leaseTtlMs };
    const next = revise(current, { members, wake });
    return { write: next, result: next };
  };
}

/**
 * Gives a wake back without finishing it (`POST …/:id/release`): the wake ends, offsets stay, and the server raises
 * the next wake if work remains. Fenced exactly like {@link planAck}.
 *
 * @throws StorageError `INVALID_SUBSCRIPTION` (arguments); `SUBSCRIPTION_NOT_FOUND`, `FENCED`.
 */
export function planRelease(
  id: string,
  request: { readonly generation: number },
): SubscriptionPlan<SubscriptionRecord> {
  validateSubscriptionId(id);
  const generation = checkGeneration(request.generation);
  return (current, now) => {
    if (current === undefined) throw subscriptionNotFound(id);
    const refusal = fenced(current, generation, now);
    if (refusal !== undefined) throw refusal;
    const next = revise(current, { wake: { ...IDLE_WAKE, generation: current.wake.generation } });
    return { write: next, result: next };
  };
}
