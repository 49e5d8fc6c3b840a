import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  matchesPattern,
  planAddStreams,
  planClaim,
  planCreateSubscription,
  planRelease,
  planRemoveStream,
  planSetStatus,
  StorageError,
  type SubscriptionCreated,
  type SubscriptionInput,
  type SubscriptionPlan,
  type SubscriptionTail,
  validateStreamPath,
  validateSubscriptionId,
  validateSubscriptionInput,
  ZERO_OFFSET,
} from '@streamkeep/storage';
import { HttpError } from '../error-status.js';
import { jwks, readWakeToken } from '../webhooks/signing.js';
import { admitWebhookUrl } from '../webhooks/ssrf.js';
import { readJsonObject, sendJson, sendNoContent } from './http.js';
import { ackPlanFor, type SubscriptionService } from './service.js';
import { subscriptionView, wakeStreams } from './view.js';

// The reserved `__ds` API (protocol §6–7). Each route follows the table of `SubscriptionStore` in the contract: parse,
// validate, run one planner through `mutateSubscription`, answer. Work that follows (the next wake) never delays the
// answer more than one storage step.

/** A matched `__ds` route, ready to serve. */
export type SubscriptionRoute = (
  service: SubscriptionService,
  req: IncomingMessage,
  res: ServerResponse,
  /** The origin answers name URLs with: the public origin, else the request's. */
  origin: string,
) => Promise<void>;

/**
 * Matches `{base}/__ds/<rest>` (`rest` still URL-encoded) to its route, before anything is read: an unknown path is
 * 404 and a wrong method 405 whether or not the storage supports subscriptions.
 *
 * @throws HttpError `ROUTE_NOT_FOUND`, `METHOD_NOT_ALLOWED`; StorageError `INVALID_SUBSCRIPTION` (a malformed id).
 */
export function matchSubscriptionRoute(rest: string, method: string): SubscriptionRoute {
  const segments = rest.split('/');
  if (segments.length === 1 && segments[0] === 'jwks.json') {
    if (method !== 'GET' && method !== 'HEAD') throw notAllowed('GET, HEAD');
    // The key set is public and changes only with the key: caches may keep it for 5 minutes.
    return async (service, req, res) =>
      sendJson(req, res, 200, jwks([service.secrets.signingKey]), {
        'Content-Type': 'application/jwk-set+json',
        'Cache-Control': 'public, max-age=300',
      });
  }
  if (segments[0] !== 'subscriptions' || segments.length < 2) {
    throw new HttpError('ROUTE_NOT_FOUND', `no subscription route for __ds/${rest}`);
  }
  const id = validateSubscriptionId(decode(segments[1]!));
  const action = segments[2];
  if (segments.length === 2) {
    if (method === 'PUT') return (service, req, res, origin) => create(service, req, res, id, origin);
    if (method === 'GET' || method === 'HEAD') {
      return (service, req, res, origin) => show(service, req, res, id, origin);
    }
    if (method === 'DELETE') return (service, _req, res) => remove(service, res, id);
    throw notAllowed('GET, HEAD, PUT, DELETE');
  }
  if (action === 'streams') {
    if (segments.length === 3) {
      if (method !== 'POST') throw notAllowed('POST');
      return (service, req, res) => addStreams(service, req, res, id);
    }
    if (method !== 'DELETE') throw notAllowed('DELETE');
    const path = validateStreamPath('stream', decode(segments.slice(3).join('/')));
    return async (service, _req, res) => {
      await service.storage.mutateSubscription(id, planRemoveStream(id, path));
      service.changed(id, false);
      sendNoContent(res);
    };
  }
  if (segments.length === 3 && action !== undefined && ACTIONS.has(action)) {
    if (method !== 'POST') throw notAllowed('POST');
    return async (service, req, res) => {
      const body = await readJsonObject(req);
      if (action === 'claim') return claim(service, req, res, id, body);
      if (action === 'release') return release(service, req, res, id, body);
      return ack(service, req, res, id, body);
    };
  }
  throw new HttpError('ROUTE_NOT_FOUND', `no subscription route for __ds/${rest}`);
}

const ACTIONS = new Set(['claim', 'ack', 'callback', 'release']);

function notAllowed(allow: string): HttpError {
  return new HttpError('METHOD_NOT_ALLOWED', `allowed here: ${allow}`, { Allow: allow });
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new StorageError('INVALID_SUBSCRIPTION', 'the path holds a malformed percent-encoding');
  }
}

/** The client's JSON body in the contract's shape (snake case → camel case); the contract validates every field. */
function toInput(body: Record<string, unknown>): SubscriptionInput {
  const webhook = body.webhook;
  let webhookUrl: unknown;
  if (webhook !== undefined && webhook !== null) {
    if (typeof webhook !== 'object' || Array.isArray(webhook)) {
      throw new StorageError('INVALID_SUBSCRIPTION', 'webhook must be an object { url }');
    }
    webhookUrl = (webhook as { url?: unknown }).url;
  }
  return {
    type: body.type,
    pattern: body.pattern ?? undefined,
    streams: body.streams ?? undefined,
    webhookUrl: webhookUrl ?? undefined,
    wakeStream: body.wake_stream ?? undefined,
    leaseTtlMs: body.lease_ttl_ms ?? undefined,
    description: body.description ?? undefined,
  } as SubscriptionInput;
}

/** Current tails of `paths` (`ZERO_OFFSET` for a stream that does not exist yet: all its data will count). */
async function tailsOf(service: SubscriptionService, paths: Iterable<string>): Promise<SubscriptionTail[]> {
  const tails: SubscriptionTail[] = [];
  for (const path of paths) tails.push((await service.tailOf(path)) ?? { path, offset: ZERO_OFFSET });
  return tails;
}

/**
 * Existing streams a pattern matches, at their tails (a pattern links what exists at its tail: no history replay).
 * Without the `listStreams` capability only streams created later link.
 */
async function matchingTails(service: SubscriptionService, pattern: string): Promise<SubscriptionTail[]> {
  if (!service.storage.capabilities.listStreams) return [];
  // Only the segments before the first wildcard can narrow the listing.
  const segments = pattern.split('/');
  const literal = segments.findIndex((s) => s.includes('*'));
  const prefix = literal <= 0 ? '' : `${segments.slice(0, literal).join('/')}/`;
  const tails: SubscriptionTail[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await service.storage.listStreams({ prefix, after, limit: 1000 });
    for (const s of page)
      if (matchesPattern(pattern, s.name)) tails.push({ path: s.name, offset: s.nextOffset });
    if (page.length < 1000) return tails;
    after = page[page.length - 1]!.name;
  }
}

async function create(
  service: SubscriptionService,
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
  origin: string,
): Promise<void> {
  const input = toInput(await readJsonObject(req));
  const config = validateSubscriptionInput(input);
  // §6.1: the server MUST refuse unsafe webhook URLs (SSRF) before it stores anything.
  if (config.webhookUrl !== null) {
    await admitWebhookUrl(config.webhookUrl, service.settings.urlPolicy, service.settings.resolver);
  }
  const tails = await tailsOf(service, config.streams);
  if (config.pattern !== null) tails.push(...(await matchingTails(service, config.pattern)));
  const outcome = await service.storage.mutateSubscription(id, createOrRevive(id, input, tails));
  if (outcome.created) {
    service.createdThrough(id, origin);
    service.changed(id, false);
  } else if (outcome.revived) {
    service.changed(id, false);
    // The work that piled up while it was failed is delivered now, in the background (the answer does not wait).
    void service
      .followUp(outcome.record)
      .catch((err: unknown) => service.failed(err, id, 'resuming a revived subscription'));
  }
  sendJson(req, res, outcome.created ? 201 : 200, subscriptionView(service, outcome.record, origin));
}

/**
 * `planCreateSubscription`, and when it re-confirms a subscription whose `status` is `failed` (the server gave up
 * delivering to its webhook after `maxAttempts`), `planSetStatus(active)` in the same atomic step: sending the same
 * subscription again is how its owner says the receiver is back. A `failed` subscription is otherwise never woken
 * (no retry storm against a receiver that is down), and a config that differs is still `SUBSCRIPTION_CONFLICT`.
 */
function createOrRevive(
  id: string,
  input: SubscriptionInput,
  tails: readonly SubscriptionTail[],
): SubscriptionPlan<SubscriptionCreated & { revived: boolean }> {
  const create = planCreateSubscription(id, input, tails);
  const revive = planSetStatus(id, 'active');
  return (current, now) => {
    const made = create(current, now);
    if (made.result.created || made.result.record.status !== 'failed') {
      return { write: made.write, result: { ...made.result, revived: false } };
    }
    const revived = revive(made.result.record, now);
    return { write: revived.write, result: { created: false, record: revived.result, revived: true } };
  };
}

async function show(
  service: SubscriptionService,
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
  origin: string,
): Promise<void> {
  const record = await service.storage.getSubscription(id);
  if (record === undefined)
    throw new StorageError('SUBSCRIPTION_NOT_FOUND', `no subscription ${JSON.stringify(id)}`);
  sendJson(req, res, 200, subscriptionView(service, record, origin));
}

async function remove(service: SubscriptionService, res: ServerResponse, id: string): Promise<void> {
  if (!(await service.storage.deleteSubscription(id))) {
    throw new StorageError('SUBSCRIPTION_NOT_FOUND', `no subscription ${JSON.stringify(id)}`);
  }
  service.changed(id, true);
  sendNoContent(res);
}

async function addStreams(
  service: SubscriptionService,
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
): Promise<void> {
  const body = await readJsonObject(req);
  if (!Array.isArray(body.streams)) {
    throw new StorageError('INVALID_SUBSCRIPTION', 'streams must be an array of stream paths');
  }
  const paths = body.streams.map((p, i) => validateStreamPath(`streams[${i}]`, p));
  await service.storage.mutateSubscription(id, planAddStreams(id, await tailsOf(service, new Set(paths))));
  service.changed(id, false);
  sendNoContent(res);
}

/** `POST …/claim` `{ worker }` → the wake, its streams and a token for ack and release. */
async function claim(
  service: SubscriptionService,
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
  body: Record<string, unknown>,
): Promise<void> {
  const current = await service.storage.getSubscription(id);
  if (current === undefined)
    throw new StorageError('SUBSCRIPTION_NOT_FOUND', `no subscription ${JSON.stringify(id)}`);
  const tails = await service.memberTails(current);
  const record = await service.storage.mutateSubscription(
    id,
    planClaim(id, { worker: body.worker as string, wakeId: randomUUID(), tails }),
  );
  const streams = wakeStreams(
    record,
    record.members.map(
      (m) => tails.find((t) => t.path === m.path) ?? { path: m.path, offset: m.ackedOffset },
    ),
  );
  sendJson(req, res, 200, {
    wake_id: record.wake.wakeId,
    generation: record.wake.generation,
    token: service.wakeToken(record),
    streams,
    lease_ttl_ms: record.config.leaseTtlMs,
  });
}

/** The wake a request's `Authorization: Bearer` token names; a missing or forged one is refused. */
function bearerWake(
  service: SubscriptionService,
  req: IncomingMessage,
  id: string,
  body: Record<string, unknown>,
) {
  const header = req.headers.authorization;
  const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
  const claims =
    token === undefined ? undefined : readWakeToken(service.secrets.tokenSecret, token, Date.now());
  if (claims === undefined || claims.subscription !== id) {
    throw new StorageError('FENCED', 'the token does not name a wake of this subscription');
  }
  // A body naming another wake than its token is stale or forged: fenced.
  if (
    (body.wake_id !== undefined && body.wake_id !== claims.wakeId) ||
    (body.generation !== undefined && body.generation !== claims.generation)
  ) {
    throw new StorageError('FENCED', 'the body names another wake than its token');
  }
  return { id, createdAt: claims.createdAt, generation: claims.generation, wake: { wakeId: claims.wakeId } };
}

/** `POST …/ack` and `…/callback` `{ wake_id, generation, acks: [{ stream, offset }], done }` → `{ ok, next_wake }`. */
async function ack(
  service: SubscriptionService,
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
  body: Record<string, unknown>,
): Promise<void> {
  const bound = bearerWake(service, req, id, body);
  if (body.acks !== undefined && !Array.isArray(body.acks)) {
    throw new StorageError('INVALID_SUBSCRIPTION', 'acks must be an array of { stream, offset }');
  }
  const acks = ((body.acks as unknown[] | undefined) ?? []).map((a) => {
    if (typeof a !== 'object' || a === null) {
      throw new StorageError('INVALID_SUBSCRIPTION', 'each ack must be an object { stream, offset }');
    }
    const { stream, offset } = a as { stream?: unknown; offset?: unknown };
    return { path: stream, offset } as SubscriptionTail;
  });
  const done = body.done === undefined ? undefined : (body.done as boolean);
  const record = await service.storage.mutateSubscription(
    id,
    ackPlanFor(bound, { generation: bound.generation, acks, done }),
  );
  const nextWake = done === true ? await service.followUp(record) : false;
  sendJson(req, res, 200, { ok: true, next_wake: nextWake });
}

/** `POST …/release` `{ wake_id, generation }` → 204; the next wake follows if work remains. */
async function release(
  service: SubscriptionService,
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
  body: Record<string, unknown>,
): Promise<void> {
  const bound = bearerWake(service, req, id, body);
  const record = await service.storage.mutateSubscription(
    id,
    ackPlanFor(bound, { generation: bound.generation }, planRelease(id, { generation: bound.generation })),
  );
  sendNoContent(res);
  void service.followUp(record).catch((err: unknown) => service.failed(err, id, 'raising the next wake'));
}
