export type { SubOutcome } from './model.js';
export { SubscriptionModel } from './model.js';
export type { SubOp } from './ops.js';
export {
  SUBSCRIPTION_IDS,
  SUBSCRIPTION_INPUTS,
  SubscriptionRun,
  subOpArb,
  subOpsArb,
  WORLD_PATHS,
} from './ops.js';
export {
  checkSubscriptionArguments,
  checkSubscriptionDurability,
  checkSubscriptionModel,
  checkSubscriptionRaces,
  checkSubscriptions,
  checkSubscriptionsRefused,
  describeSubscriptions,
  SUBSCRIPTIONS,
} from './properties.js';
