import { StorageError } from '../errors.js';
import { ZERO_OFFSET } from '../offsets.js';
import { compareUtf8 } from '../rules/names.js';
import {
  subscriptionConfigsEqual,
  validateStreamPath,
  validateSubscriptionId,
  validateSubscriptionInput,
} from './config.js';
import { matchesPattern } from './glob.js';
import { findMember, IDLE_WAKE, revise, validateTails, withMember, withoutMember } from './record.js';
import type {
  SubscriptionCreated,
  SubscriptionInput,
  SubscriptionMember,
  SubscriptionPlan,
  SubscriptionRecord,
  SubscriptionStatus,
  SubscriptionTail,
} from './types.js';

// Planners of a subscription's life and membership. Each `plan…` validates its own arguments at once (so a bad
// request is refused before any state is read) and returns a pure `SubscriptionPlan` for `mutateSubscription`.

/** The refusal for an id without a record. */
export function subscriptionNotFound(id: string): StorageError {
  return new StorageError('SUBSCRIPTION_NOT_FOUND', `no subscription ${JSON.stringify(id)}`);
}

function existing(current: SubscriptionRecord | undefined, id: string): SubscriptionRecord {
  if (current === undefined) throw subscriptionNotFound(id);
  return current;
}

/**
 * Creates subscription `id` from a create request, or re-confirms it. The request is validated and normalised with
 * `validateSubscriptionInput` (which the server may also call first, to learn which streams to read tails of).
 *
 * @remarks
 * `tails` are the current tails of the streams to link, which the server read just before: each stream of
 * `config.streams` (a stream that does not exist yet is given as `ZERO_OFFSET`: all of its data will count once it
 * appears), and each existing stream matching `config.pattern`. Members start acked at those tails, so a
 * subscription never replays history. A tail whose path is neither named nor matched is ignored; a named stream
 * missing from `tails` is linked at `ZERO_OFFSET`.
 *
 * - no record → a new one (version 1, generation 0, `status: active`, `createdAt: now`); `created: true`;
 * - a record with an equal config (`subscriptionConfigsEqual`) → nothing written, `created: false` with the record
 *   as it is (members added or acked since are kept: a re-confirmation changes nothing);
 * - a record with another config → `SUBSCRIPTION_CONFLICT`.
 *
 * @throws StorageError `INVALID_SUBSCRIPTION` (id, request, tails), `INVALID_OFFSET` (tails), then
 *   `SUBSCRIPTION_CONFLICT`.
 */
export function planCreateSubscription(
  id: string,
  input: SubscriptionInput,
  tails: readonly SubscriptionTail[],
): SubscriptionPlan<SubscriptionCreated> {
  validateSubscriptionId(id);
  const config = validateSubscriptionInput(input);
  const given = validateTails('tails', tails);
  const tailOf = new Map(given.map((t) => [t.path, t.offset]));
  const members: SubscriptionMember[] = [];
  const paths = new Set(config.streams);
  if (config.pattern !== null) {
    for (const t of given) if (matchesPattern(config.pattern, t.path)) paths.add(t.path);
  }
  for (const path of paths) {
    members.push({
      path,
      explicit: config.streams.includes(path),
      glob: config.pattern !== null && matchesPattern(config.pattern, path),
      ackedOffset: tailOf.get(path) ?? ZERO_OFFSET,
    });
  }
  members.sort((a, b) => compareUtf8(a.path, b.path));
  return (current, now) => {
    if (current !== undefined) {
      if (!subscriptionConfigsEqual(current.config, config)) {
        throw new StorageError(
          'SUBSCRIPTION_CONFLICT',
          `subscription ${JSON.stringify(id)} exists with a different configuration`,
        );
      }
      return { result: { created: false, record: current } };
    }
    const record: SubscriptionRecord = {
      id,
      version: 1,
      config,
      createdAt: now,
      status: 'active',
      members,
      wake: IDLE_WAKE,
    };
    return { write: record, result: { created: true, record } };
  };
}

/**
 * Links streams explicitly (`POST …/:id/streams`). `tails` gives each stream and its current tail (`ZERO_OFFSET`
 * for one that does not exist yet). A stream that already is a member becomes explicit too and keeps its acked
 * offset; a new one starts acked at its tail. Resolves with the record after the change (written only if it
 * changed).
 *
 * @throws StorageError `INVALID_SUBSCRIPTION`, `INVALID_OFFSET` (arguments); `SUBSCRIPTION_NOT_FOUND`.
 */
export function planAddStreams(
  id: string,
  tails: readonly SubscriptionTail[],
): SubscriptionPlan<SubscriptionRecord> {
  validateSubscriptionId(id);
  const given = validateTails('streams', tails);
  return (current) => {
    const record = existing(current, id);
    let members = record.members;
    for (const t of given) {
      const member = findMember(record, t.path);
      if (member === undefined) {
        members = withMember(members, { path: t.path, explicit: true, glob: false, ackedOffset: t.offset });
      } else if (!member.explicit) {
        members = withMember(members, { ...member, explicit: true });
      }
    }
    if (members === record.members) return { result: record };
    const next = revise(record, { members });
    return { write: next, result: next };
  };
}

/**
 * Unlinks an explicit stream (`DELETE …/:id/streams/:path`). A member also matched by the pattern stays, as a glob
 * member, with its acked offset; a path that is not an explicit member changes nothing (idempotent).
 *
 * @throws StorageError `INVALID_SUBSCRIPTION` (arguments); `SUBSCRIPTION_NOT_FOUND`.
 */
export function planRemoveStream(id: string, path: string): SubscriptionPlan<SubscriptionRecord> {
  validateSubscriptionId(id);
  validateStreamPath('stream', path);
  return (current) => {
    const record = existing(current, id);
    const member = findMember(record, path);
    if (member === undefined || !member.explicit) return { result: record };
    const members = member.glob
      ? withMember(record.members, { ...member, explicit: false })
      : withoutMember(record.members, path);
    const next = revise(record, { members });
    return { write: next, result: next };
  };
}

/**
 * Links a stream that appeared after the subscription was created, when the pattern matches it (the server calls it
 * for each subscription `listSubscriptions({ withPattern: true })` returns, after creating a stream). `offset` is
 * where the member starts acked: for a stream created just now, its first position (`ZERO_OFFSET`, or a fork's fork
 * offset), so that its initial data counts as pending. The pattern is checked again here, so a stale listing is
 * harmless; a missing record, a non-matching path or an existing member (which becomes a glob member too, keeping its
 * acked offset) write nothing new. Resolves `true` when the stream is a glob member afterwards.
 *
 * @throws StorageError `INVALID_SUBSCRIPTION`, `INVALID_OFFSET` (arguments) — never `SUBSCRIPTION_NOT_FOUND`.
 */
export function planLinkStream(id: string, tail: SubscriptionTail): SubscriptionPlan<boolean> {
  validateSubscriptionId(id);
  const [given] = validateTails('tail', [tail]);
  const { path, offset } = given!;
  return (current) => {
    if (current === undefined || current.config.pattern === null) return { result: false };
    if (!matchesPattern(current.config.pattern, path)) return { result: false };
    const member = findMember(current, path);
    if (member?.glob === true) return { result: true };
    const members = withMember(
      current.members,
      member === undefined
        ? { path, explicit: false, glob: true, ackedOffset: offset }
        : { ...member, glob: true },
    );
    return { write: revise(current, { members }), result: true };
  };
}

/**
 * Drops a deleted stream from a subscription, whichever way it was linked (the server calls it for each subscription
 * `listSubscriptions({ member })` returns, after deleting the stream). A missing record or a non-member writes
 * nothing. Resolves `true` when a member was removed.
 *
 * @throws StorageError `INVALID_SUBSCRIPTION` (arguments) — never `SUBSCRIPTION_NOT_FOUND`.
 */
export function planUnlinkStream(id: string, path: string): SubscriptionPlan<boolean> {
  validateSubscriptionId(id);
  validateStreamPath('stream', path);
  return (current) => {
    if (current === undefined || findMember(current, path) === undefined) return { result: false };
    return { write: revise(current, { members: withoutMember(current.members, path) }), result: true };
  };
}

/**
 * Sets the status (`failed` when the server gives up delivering to a webhook, `active` to resume). Writes only when
 * it changes.
 *
 * @throws StorageError `INVALID_SUBSCRIPTION` (arguments); `SUBSCRIPTION_NOT_FOUND`.
 */
export function planSetStatus(id: string, status: SubscriptionStatus): SubscriptionPlan<SubscriptionRecord> {
  validateSubscriptionId(id);
  if (status !== 'active' && status !== 'failed') {
    throw new StorageError(
      'INVALID_SUBSCRIPTION',
      `status must be "active" or "failed", got ${String(status)}`,
    );
  }
  return (current) => {
    const record = existing(current, id);
    if (record.status === status) return { result: record };
    const next = revise(record, { status });
    return { write: next, result: next };
  };
}
