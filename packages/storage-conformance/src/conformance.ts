import type { StorageHarness } from './harness.js';
import type { ConformanceOptions } from './options.js';
import { describeCapabilities } from './properties/capabilities.js';
import { describeConcurrency } from './properties/concurrency.js';
import { describeDurability } from './properties/durability.js';
import { describeLaws } from './properties/laws.js';
import { describeModel } from './properties/model.js';

/**
 * Registers the whole conformance kit for one backend: capabilities, the model-based property, the laws, concurrency
 * and durability. Groups that do not apply (a capability off, no `reopen`) are reported as skipped.
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
}
