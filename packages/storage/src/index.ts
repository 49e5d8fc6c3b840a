export type { StorageCapabilities } from './capabilities.js';
export { CAPABILITY_NAMES, hasCapability, OPTIONAL_CAPABILITY_NAMES } from './capabilities.js';
export type { StorageErrorCode, StorageErrorDetails } from './errors.js';
export { isStorageError, STORAGE_ERROR_CODES, StorageError } from './errors.js';
export type { Offset, ParsedOffset } from './offsets.js';
export {
  compareOffsets,
  formatOffset,
  isValidOffset,
  NOW_OFFSET,
  parseOffset,
  START_OFFSET,
  ZERO_OFFSET,
} from './offsets.js';
export { checkAccess, checkFound, gone, isVisible, notFound, streamClosed } from './rules/access.js';
export type { ValidatedFork, ValidatedRead } from './rules/arguments.js';
export {
  validateAppend,
  validateCloseStream,
  validateCreateFork,
  validateCreateStream,
  validateForkRequest,
  validateListStreams,
  validateName,
  validateProducerAppend,
  validateRead,
  validateSubscribe,
} from './rules/arguments.js';
export type { CommitPlan, CommitRequest, DuplicatePlan, StreamStateView } from './rules/commit.js';
export {
  appendResultOf,
  checkStreamSeq,
  committedResult,
  duplicateResult,
  planCommit,
  validateAppendRequest,
} from './rules/commit.js';
export {
  createMatchesExisting,
  isExpired,
  MAX_DEADLINE_MS,
  renewedDeadline,
  resolveForkConfig,
  resolveStreamOptions,
  streamConfigsEqual,
} from './rules/config.js';
export { isJsonContentType, normalizeContentType } from './rules/content-type.js';
export type { ForkPlan, ForkSourceView, LifecycleView, NameClaim, Removal } from './rules/lifecycle.js';
export {
  afterForkRemoved,
  forkPrefix,
  orphanedTombstone,
  planDelete,
  planExpiry,
  planFork,
  planNameClaim,
  sameLineage,
} from './rules/lifecycle.js';
export type { ByteLimits } from './rules/limits.js';
export { batchBytes, checkByteLimits, checkCreateLimits, resolveByteLimits } from './rules/limits.js';
export type { ListingQuery } from './rules/listing.js';
export { listingFull, listingIncludes, listingPage } from './rules/listing.js';
export { assertStreamName, compareUtf8, isWellFormed } from './rules/names.js';
export type { ProducerDecision } from './rules/producer.js';
export {
  decideProducer,
  isProducerStateLive,
  PRODUCER_STATE_TTL_MS,
  producerStateCutoff,
  prunedProducers,
  validateProducerIdentity,
} from './rules/producer.js';
export type { ReadSegment } from './rules/read.js';
export { fitsBudget, readSegments, readStart, tailReadResult, takeWithinBudget } from './rules/read.js';
export type { Storage } from './storage.js';
export { parseSubscriptionRecord } from './subscriptions/codec.js';
export {
  DEFAULT_LEASE_TTL_MS,
  MAX_LEASE_TTL_MS,
  MAX_SUBSCRIPTION_TEXT,
  MIN_LEASE_TTL_MS,
  normaliseStreams,
  subscriptionConfigsEqual,
  validateStreamPath,
  validateSubscriptionId,
  validateSubscriptionInput,
  validateSubscriptionText,
} from './subscriptions/config.js';
export { matchesPattern, validatePattern } from './subscriptions/glob.js';
export { freezeRecord, MemberIndex } from './subscriptions/member-index.js';
export {
  planAddStreams,
  planCreateSubscription,
  planLinkStream,
  planRemoveStream,
  planSetStatus,
  planUnlinkStream,
  subscriptionNotFound,
} from './subscriptions/membership.js';
export {
  checkConcreteOffset,
  findMember,
  hasPendingWork,
  IDLE_WAKE,
  isWakeLive,
  memberLinkType,
  pendingTails,
  validateTails,
} from './subscriptions/record.js';
export type { SubscriptionQuery, SubscriptionStore } from './subscriptions/store.js';
export {
  checkSubscriptionWrite,
  subscriptionListingIncludes,
  subscriptionListingPage,
  supportsSubscriptions,
  validateListSubscriptions,
  validateMutateSubscription,
  validateSubscriptionCall,
} from './subscriptions/store.js';
export type {
  ListSubscriptionsOptions,
  SubscriptionConfig,
  SubscriptionCreated,
  SubscriptionDecision,
  SubscriptionInput,
  SubscriptionLinkType,
  SubscriptionMember,
  SubscriptionPlan,
  SubscriptionRecord,
  SubscriptionStatus,
  SubscriptionTail,
  SubscriptionType,
  SubscriptionWakeState,
  WakeOutcome,
} from './subscriptions/types.js';
export type { AckRequest, ClaimRequest, WakeRequest } from './subscriptions/wake.js';
export { planAck, planClaim, planRelease, planWake } from './subscriptions/wake.js';
export type {
  AppendRequest,
  AppendResult,
  Clock,
  CommitObserver,
  CommitReport,
  CreateStreamOptions,
  CreateStreamResult,
  DeleteResult,
  ForkInfo,
  ForkOptions,
  ListStreamsOptions,
  ProducerAppendRequest,
  ProducerAppendResult,
  ProducerIdentity,
  ProducerState,
  ReadOptions,
  ReadResult,
  StreamConfig,
  StreamListener,
  StreamMetadata,
  StreamOptions,
  Subscription,
} from './types.js';
export { reportCommit, systemClock } from './types.js';
