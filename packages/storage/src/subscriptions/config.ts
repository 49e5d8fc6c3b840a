import { StorageError } from '../errors.js';
import { compareUtf8, isWellFormed, typeName } from '../rules/names.js';
import { validatePattern } from './glob.js';
import type { SubscriptionConfig, SubscriptionInput, SubscriptionType } from './types.js';

/** The shortest lease a subscription may ask for, in milliseconds. */
export const MIN_LEASE_TTL_MS = 1_000;
/** The longest lease a subscription may ask for, in milliseconds (10 minutes). */
export const MAX_LEASE_TTL_MS = 600_000;
/** The lease of a subscription that names none, in milliseconds. */
export const DEFAULT_LEASE_TTL_MS = 30_000;
/** The longest subscription id, worker name, wake id or description accepted, in UTF-16 code units. */
export const MAX_SUBSCRIPTION_TEXT = 1024;

const TYPES: readonly SubscriptionType[] = ['webhook', 'pull-wake'];

function invalid(message: string): StorageError {
  return new StorageError('INVALID_SUBSCRIPTION', message);
}

/**
 * Checks a piece of client text used as an identifier (subscription id, worker, wake id): a non-empty, well-formed
 * string of at most `maxLength` code units.
 *
 * @throws StorageError `INVALID_SUBSCRIPTION` — never a `TypeError`, whatever `value` is.
 */
export function validateSubscriptionText(
  what: string,
  value: unknown,
  maxLength: number = MAX_SUBSCRIPTION_TEXT,
): string {
  if (typeof value !== 'string') throw invalid(`${what} must be a string, got ${typeName(value)}`);
  if (value.length === 0) throw invalid(`${what} must not be empty`);
  if (value.length > maxLength) throw invalid(`${what} is longer than ${maxLength}`);
  if (!isWellFormed(value)) throw invalid(`${what} holds a lone surrogate`);
  return value;
}

/**
 * Checks a stream name given in a subscription request (a member, the wake stream): the storage name rule (non-empty,
 * well-formed), answered as `INVALID_SUBSCRIPTION`. @throws StorageError `INVALID_SUBSCRIPTION`.
 */
export function validateStreamPath(what: string, value: unknown): string {
  return validateSubscriptionText(what, value, Number.POSITIVE_INFINITY);
}

/** Checks a subscription id ({@link validateSubscriptionText}). @throws StorageError `INVALID_SUBSCRIPTION`. */
export function validateSubscriptionId(id: unknown): string {
  return validateSubscriptionText('subscription id', id);
}

/**
 * Validates and normalises a create request into the subscription's config. Checks, in this order, each answering
 * `INVALID_SUBSCRIPTION`: `input` is an object; `type` is `webhook` or `pull-wake`; `pattern` (a string,
 * `validatePattern`); `streams` (an array of valid stream names); at least a pattern or one stream; `leaseTtlMs` (a
 * whole number within {@link MIN_LEASE_TTL_MS}–{@link MAX_LEASE_TTL_MS}); `webhookUrl` (required for and only for
 * `webhook`: a non-empty string); `wakeStream` (required for and only for `pull-wake`: a valid stream name);
 * `description` (a string of at most {@link MAX_SUBSCRIPTION_TEXT}).
 *
 * Whether the URL is acceptable (scheme, SSRF rules) is the server's decision, made before it calls storage.
 *
 * @throws StorageError `INVALID_SUBSCRIPTION`.
 */
export function validateSubscriptionInput(input: SubscriptionInput): SubscriptionConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw invalid(`a subscription must be an object, got ${typeName(input)}`);
  }
  const raw = input as unknown as Record<string, unknown>;
  if (!TYPES.includes(raw.type as SubscriptionType)) {
    throw invalid(`type must be "webhook" or "pull-wake", got ${JSON.stringify(raw.type) ?? 'nothing'}`);
  }
  const type = raw.type as SubscriptionType;

  let pattern: string | null = null;
  if (raw.pattern !== undefined) {
    if (typeof raw.pattern !== 'string')
      throw invalid(`pattern must be a string, got ${typeName(raw.pattern)}`);
    validatePattern(raw.pattern);
    pattern = raw.pattern;
  }

  const streams = normaliseStreams(raw.streams);
  if (pattern === null && streams.length === 0) throw invalid('a subscription needs a pattern or streams');

  const leaseTtlMs = raw.leaseTtlMs === undefined ? DEFAULT_LEASE_TTL_MS : raw.leaseTtlMs;
  if (
    typeof leaseTtlMs !== 'number' ||
    !Number.isSafeInteger(leaseTtlMs) ||
    leaseTtlMs < MIN_LEASE_TTL_MS ||
    leaseTtlMs > MAX_LEASE_TTL_MS
  ) {
    throw invalid(
      `lease_ttl_ms must be a whole number from ${MIN_LEASE_TTL_MS} to ${MAX_LEASE_TTL_MS}, got ${String(leaseTtlMs)}`,
    );
  }

  let webhookUrl: string | null = null;
  if (type === 'webhook') {
    if (typeof raw.webhookUrl !== 'string' || raw.webhookUrl.length === 0) {
      throw invalid('a webhook subscription needs webhook.url');
    }
    webhookUrl = raw.webhookUrl;
  } else if (raw.webhookUrl !== undefined) {
    throw invalid('webhook.url is only for webhook subscriptions');
  }

  let wakeStream: string | null = null;
  if (type === 'pull-wake') {
    if (raw.wakeStream === undefined) throw invalid('a pull-wake subscription needs wake_stream');
    wakeStream = validateStreamPath('wake_stream', raw.wakeStream);
  } else if (raw.wakeStream !== undefined) {
    throw invalid('wake_stream is only for pull-wake subscriptions');
  }

  let description: string | null = null;
  if (raw.description !== undefined) {
    if (typeof raw.description !== 'string') {
      throw invalid(`description must be a string, got ${typeName(raw.description)}`);
    }
    if (raw.description.length > MAX_SUBSCRIPTION_TEXT) {
      throw invalid(`description is longer than ${MAX_SUBSCRIPTION_TEXT}`);
    }
    description = raw.description;
  }
  return { type, pattern, streams, webhookUrl, wakeStream, leaseTtlMs, description };
}

/** Validates a list of member paths: an array of valid names, deduplicated and sorted in UTF-8 byte order. */
export function normaliseStreams(value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(`streams must be an array, got ${typeName(value)}`);
  const paths = value.map((path, i) => validateStreamPath(`streams[${i}]`, path));
  return [...new Set(paths)].sort(compareUtf8);
}

/**
 * True when two normalised configs are the same request: every field equal (`streams` as normalised lists). A
 * create that repeats an existing subscription's config is an idempotent re-confirmation; any difference is
 * `SUBSCRIPTION_CONFLICT`.
 */
export function subscriptionConfigsEqual(a: SubscriptionConfig, b: SubscriptionConfig): boolean {
  return (
    a.type === b.type &&
    a.pattern === b.pattern &&
    a.webhookUrl === b.webhookUrl &&
    a.wakeStream === b.wakeStream &&
    a.leaseTtlMs === b.leaseTtlMs &&
    a.description === b.description &&
    a.streams.length === b.streams.length &&
    a.streams.every((s, i) => s === b.streams[i])
  );
}
