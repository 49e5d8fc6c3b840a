import type { StorageHarness } from './harness.js';
import type { ConformanceOptions } from './options.js';
import { checkCapabilities, describeCapabilities } from './properties/capabilities.js';
import { checkConcurrency, describeConcurrency } from './properties/concurrency.js';
import { checkDurability, describeDurability } from './properties/durability.js';
import { checkLaws, describeLaws } from './properties/laws.js';
import { checkModel, describeModel } from './properties/model.js';
import { checkSubscriptions, describeSubscriptions } from './subscriptions/properties.js';

/**
 * Registers the whole conformance kit for one backend: capabilities, the model-based property, the laws, concurrency,
 * durability and subscriptions. Groups that do not apply (a capability off, no `reopen`) are reported as skipped.
 */
export function describeStorageConformance(
  name: string,
  harness: StorageHarness,
  options: ConformanceOptions = {},
): void {
  describeCapabilities(name, harness, options);
  describeModel(name, harness, options);
  describeLaws(name, harness, options);
  describeConcurrency(name, harness, options);
  describeDurability(name, harness, options);
  describeSubscriptions(name, harness, options);
}

/** The areas of {@link checkStorageConformance}, in the order it runs them (quick, broad checks first). */
export const AREAS = ['model', 'concurrency', 'durability', 'capabilities', 'laws', 'subscriptions'] as const;
export type Area = (typeof AREAS)[number];

/** An area's failure, naming the area. */
export class AreaFailure extends Error {
  override readonly name = 'AreaFailure';
  constructor(
    readonly area: Area,
    cause: unknown,
  ) {
    super(`${area}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/**
 * The whole kit as one plain async check (no vitest registration): resolves when every applicable area holds,
 * rejects with an {@link AreaFailure} for the first area that does not. Durability runs when the backend is durable
 * and its harness can reopen.
 */
export async function checkStorageConformance(
  harness: StorageHarness,
  options: ConformanceOptions = {},
): Promise<void> {
  const run: Record<Area, () => Promise<void>> = {
    model: () => checkModel(harness, options),
    concurrency: () => checkConcurrency(harness, options),
    durability: () => checkDurability(harness, options),
    capabilities: () => checkCapabilities(harness),
    laws: () => checkLaws(harness, options),
    subscriptions: () => checkSubscriptions(harness, options),
  };
  for (const area of AREAS) {
    try {
      await run[area]();
    } catch (err) {
      throw new AreaFailure(area, err);
    }
  }
}
