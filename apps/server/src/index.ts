export type { AppConfig, AppOptions, RequestContext, StreamkeepApp } from './app.js';
export {
  createApp,
  DEFAULT_BASE_PATH,
  DEFAULT_LONG_POLL_TIMEOUT_MS,
  DEFAULT_MAX_READ_BYTES,
  DEFAULT_MAX_REQUEST_BODY_BYTES,
  DEFAULT_READ_CACHE_CONTROL,
  resolveAppConfig,
} from './app.js';
export type { HttpErrorCode, Problem, ProblemResponse } from './error-status.js';
export { HTTP_ERROR_STATUS, HttpError, problemFor, STORAGE_ERROR_STATUS } from './error-status.js';
export type { CursorPolicy } from './http/cursor.js';
export { DEFAULT_CURSOR_POLICY } from './http/cursor.js';
export type { CommitReport, LoadProbe, RouteLabel } from './metrics.js';
export { ServerMetrics } from './metrics.js';
export type { RunningServer } from './server.js';
export { openStorage, StartupError, startServer } from './server.js';
export type { Backend, LogLevel, ServerConfig, Setting } from './settings/index.js';
export {
  buildCommand,
  DEFAULT_SERVER_CONFIG,
  parseServerConfig,
  SETTINGS,
  serverVersion,
  settingsMarkdown,
} from './settings/index.js';
export type { SubscriptionOptions } from './subscriptions/index.js';
export type { DeliveryLimits } from './webhooks/deliver.js';
export type { ResolvedAddress, Resolver, WebhookUrlPolicy } from './webhooks/ssrf.js';
