import {
  CAPABILITY_NAMES,
  OPTIONAL_CAPABILITY_NAMES,
  type Storage,
  type StorageCapabilities,
} from '@streamkeep/storage';
import { describe, it } from 'vitest';
import { ensure, expectCode } from '../compare.js';
import { probeCapabilities, type StorageHarness, withSession } from '../harness.js';
import { type ConformanceOptions, resolveOptions } from '../options.js';
import { checkSubscriptionsRefused } from '../subscriptions/properties.js';

const CT = 'text/plain';

/** The backend states every capability as a boolean and implements contract revision `v1`. */
export async function checkCapabilityDeclaration(harness: StorageHarness): Promise<void> {
  await withSession(harness, {}, async ({ storage }) => {
    ensure(
      storage.specificationVersion === 'v1',
      `specificationVersion is ${String(storage.specificationVersion)}`,
    );
    for (const key of CAPABILITY_NAMES) {
      const value = storage.capabilities[key];
      const absentOptional = value === undefined && OPTIONAL_CAPABILITY_NAMES.includes(key);
      ensure(typeof value === 'boolean' || absentOptional, `capabilities.${key} must be a boolean`);
    }
  });
}

/** What an optional operation must do when its capability is off: reject with `NOT_SUPPORTED` and change nothing. */
const UNSUPPORTED: Partial<Record<keyof StorageCapabilities, (s: Storage) => Promise<void>>> = {
  forks: async (s) => {
    await s.createStream('src', { contentType: CT, messages: [new Uint8Array([1])] });
    await expectCode('createFork without forks', 'NOT_SUPPORTED', () => s.createFork('f', { source: 'src' }));
    ensure(!(await s.exists('f')), 'a refused fork must not exist');
    const del = await s.delete('src');
    ensure(!del.softDeleted, 'without forks, deletes are never soft');
  },
  expiry: async (s) => {
    await expectCode('ttlSeconds without expiry', 'NOT_SUPPORTED', () =>
      s.createStream('t', { contentType: CT, ttlSeconds: 60 }),
    );
    await expectCode('expiresAt without expiry', 'NOT_SUPPORTED', () =>
      s.createStream('t', { contentType: CT, expiresAt: Date.UTC(2030, 0, 1) }),
    );
    ensure(!(await s.exists('t')), 'a refused create must not exist');
  },
  producers: async (s) => {
    await s.createStream('p', { contentType: CT });
    await expectCode('appendWithProducer without producers', 'NOT_SUPPORTED', () =>
      s.appendWithProducer('p', {
        producer: { id: 'p', epoch: 0, seq: 0 },
        messages: [new Uint8Array([1])],
        contentType: CT,
      }),
    );
    const r = await s.read('p', '-1');
    ensure(r.messages.length === 0, 'a refused producer append must not write');
  },
  listStreams: async (s) => {
    await expectCode('listStreams without listStreams', 'NOT_SUPPORTED', () => s.listStreams());
  },
  subscriptions: checkSubscriptionsRefused,
};

/** Checks `NOT_SUPPORTED` for one capability the backend declares off. */
export async function checkUnsupported(
  harness: StorageHarness,
  capability: keyof StorageCapabilities,
): Promise<void> {
  const body = UNSUPPORTED[capability];
  if (body === undefined)
    throw new RangeError(`capability ${capability} has no optional operation to refuse`);
  await withSession(harness, {}, async ({ storage }) => {
    ensure(!storage.capabilities[capability], `${capability} is on; nothing to refuse`);
    await body(storage);
  });
}

/** After `close()`, every method rejects with `STORAGE_CLOSED`; `close()` itself stays idempotent. */
export async function checkClosedStorage(harness: StorageHarness): Promise<void> {
  await withSession(harness, {}, async (session) => {
    const s = session.storage;
    await s.createStream('x', { contentType: CT });
    await s.close();
    await s.close();
    const calls: [string, () => Promise<unknown>][] = [
      ['createStream', () => s.createStream('y', { contentType: CT })],
      ['createFork', () => s.createFork('z', { source: 'x' })],
      ['append', () => s.append('x', { messages: [new Uint8Array([1])], contentType: CT })],
      ['closeStream', () => s.closeStream('x')],
      [
        'appendWithProducer',
        () =>
          s.appendWithProducer('x', { producer: { id: 'p', epoch: 0, seq: 0 }, messages: [], close: true }),
      ],
      ['read', () => s.read('x', '-1')],
      ['head', () => s.head('x')],
      ['exists', () => s.exists('x')],
      ['delete', () => s.delete('x')],
      ['subscribe', () => s.subscribe('x', () => {})],
      ['listStreams', () => s.listStreams()],
      ['cleanupExpiredStreams', () => s.cleanupExpiredStreams()],
    ];
    for (const [label, call] of calls) await expectCode(`${label} after close()`, 'STORAGE_CLOSED', call);
  });
}

/** Runs the capability checks that apply to this backend. */
export async function checkCapabilities(
  harness: StorageHarness,
  _options?: ConformanceOptions,
): Promise<void> {
  await checkCapabilityDeclaration(harness);
  const caps = await probeCapabilities(harness);
  for (const key of Object.keys(UNSUPPORTED) as (keyof StorageCapabilities)[]) {
    if (!caps[key]) await checkUnsupported(harness, key);
  }
  await checkClosedStorage(harness);
}

/**
 * Registers the capability checks: the declaration, one `NOT_SUPPORTED` test per optional operation (skipped when the
 * backend supports it — its behaviour is then covered by the model and laws), and the closed-storage test.
 */
export function describeCapabilities(
  name: string,
  harness: StorageHarness,
  options: ConformanceOptions = {},
): void {
  const { timeout } = resolveOptions(options);
  describe(`${name}: capabilities`, async () => {
    const caps = await probeCapabilities(harness);
    it(
      'declares every capability and specificationVersion v1',
      () => checkCapabilityDeclaration(harness),
      timeout,
    );
    for (const key of Object.keys(UNSUPPORTED) as (keyof StorageCapabilities)[]) {
      it.skipIf(caps[key])(
        `${key} off: the operation rejects with NOT_SUPPORTED${caps[key] ? ' (supported)' : ''}`,
        () => checkUnsupported(harness, key),
        timeout,
      );
    }
    it('every method rejects with STORAGE_CLOSED after close()', () => checkClosedStorage(harness), timeout);
  });
}
