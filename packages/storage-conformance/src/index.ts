export * from './arbitraries.js';
export type { Cmd, Step, Target } from './commands.js';
export {
  AdvanceTimeCommand,
  auditAll,
  Base,
  CleanupCommand,
  DeleteCommand,
  ExistsCommand,
  HeadCommand,
  ListCommand,
  ReadCommand,
  ReopenCommand,
  SubscribeCommand,
} from './commands.js';
export { ConformanceError, DOCUMENTED_DETAILS } from './compare.js';
export type { Area } from './conformance.js';
export { AREAS, AreaFailure, checkStorageConformance, describeStorageConformance } from './conformance.js';
export type { CommandSelection } from './generation.js';
export { commandArbitraries, createCommandArb } from './generation.js';
export type { HarnessContext, HarnessInstance, Session, StorageHarness } from './harness.js';
export { ManualClock, openSession, withSession } from './harness.js';
export { OutcomeHistogram } from './histogram.js';
export type { ModelLimits, ModelMessage, Outcome } from './model.js';
export { StorageModel } from './model.js';
export type { ConformanceOptions, ResolvedOptions } from './options.js';
export { RUNS_ENV, resolveOptions, SEED_ENV } from './options.js';
export type { ArgumentAnswer, ArgumentCase } from './properties/argument-cases.js';
export { ARGUMENT_CASES } from './properties/argument-cases.js';
export { checkInvalidArguments, InvalidCallCommand, NAME_STATES } from './properties/arguments.js';
export {
  checkCapabilities,
  checkCapabilityDeclaration,
  checkClosedStorage,
  checkUnsupported,
  describeCapabilities,
} from './properties/capabilities.js';
export type { PropertyCheck } from './properties/common.js';
export {
  CONCURRENCY,
  checkConcurrency,
  checkParallelAppendersAndReaders,
  checkSubscriberNeverMisses,
  describeConcurrency,
} from './properties/concurrency.js';
export type { DifferentialOptions, KnownDivergence } from './properties/differential.js';
export { checkDifferential, describeDifferential } from './properties/differential.js';
export {
  checkDurability,
  checkReopenPreservesState,
  DURABILITY,
  describeDurability,
} from './properties/durability.js';
export {
  checkBudgetedReads,
  checkClosedStream,
  checkCoherentSnapshots,
  checkExpiry,
  checkFailedCommitHasNoEffect,
  checkFailedCreateHasNoEffect,
  checkForkReads,
  checkIdempotentWritesNothing,
  checkLaws,
  checkOffsetsMonotonic,
  checkStreamSeqOrder,
  checkSuffixReads,
  describeLaws,
  LAWS,
} from './properties/laws.js';
export type { ModelCheckOptions } from './properties/model.js';
export { checkModel, describeModel } from './properties/model.js';
export type { SubOp, SubOutcome } from './subscriptions/index.js';
export {
  checkSubscriptionArguments,
  checkSubscriptionDurability,
  checkSubscriptionModel,
  checkSubscriptionRaces,
  checkSubscriptions,
  checkSubscriptionsRefused,
  describeSubscriptions,
  SUBSCRIPTION_IDS,
  SUBSCRIPTION_INPUTS,
  SUBSCRIPTIONS,
  SubscriptionModel,
  SubscriptionRun,
  subOpArb,
  subOpsArb,
  WORLD_PATHS,
} from './subscriptions/index.js';
export type {
  ContentTypeChoice,
  CreateMode,
  ForkOffsetChoice,
  ProducerEpochChoice,
  ProducerSeqChoice,
} from './write-commands.js';
export {
  AppendCommand,
  CloseCommand,
  CreateCommand,
  ForkCommand,
  ProducerAppendCommand,
} from './write-commands.js';
