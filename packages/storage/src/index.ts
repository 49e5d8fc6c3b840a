export type { StorageCapabilities } from './capabilities.js';
export { CAPABILITY_NAMES } from './capabilities.js';
export type { StorageErrorCode, StorageErrorDetails } from './errors.js';
export { isStorageError, STORAGE_ERROR_CODES, StorageError } from './errors.js';
export type { ByteLimits, CommitPlan, DuplicatePlan, ProducerDecision, StreamStateView } from './helpers.js';
export {
  assertStreamName,
  batchBytes,
  checkAccess,
  checkByteLimits,
  checkStreamSeq,
  compareUtf8,
  createMatchesExisting,
  decideProducer,
  isExpired,
  isJsonContentType,
  MAX_DEADLINE_MS,
  normalizeContentType,
  notFound,
  PRODUCER_STATE_TTL_MS,
  planCommit,
  renewedDeadline,
  resolveByteLimits,
  resolveForkConfig,
  resolveStreamOptions,
  streamConfigsEqual,
  takeWithinBudget,
  validateAppendRequest,
  validateForkRequest,
  validateProducerIdentity,
} from './helpers.js';
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
export type { Storage } from './storage.js';
export type {
  AppendRequest,
  AppendResult,
  Clock,
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
export { systemClock } from './types.js';
