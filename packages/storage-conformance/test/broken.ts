// Deliberately broken backends: MemoryStorage behind a wrapper that breaks exactly one rule. The kit's self-test
// requires every one of them to fail the kit. One module per method group under `broken/`; `broken/harness.ts` holds
// the wrapper and the unbroken reference harnesses.

export * from './broken/append.js';
export * from './broken/create.js';
export { durableMemory, memory } from './broken/harness.js';
export * from './broken/other-methods.js';
export * from './broken/producer.js';
export * from './broken/read.js';
