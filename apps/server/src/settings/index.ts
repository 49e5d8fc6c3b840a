export type { AppConfig, AppOptions } from './app-options.js';
export * from './app-options.js';
export { buildCommand, parseServerConfig, serverVersion, settingsMarkdown } from './cli.js';
export type { Backend, LogLevel, ServerConfig, Setting, SettingKey } from './table.js';
export { BACKENDS, DEFAULT_SERVER_CONFIG, LOG_LEVELS, SETTINGS } from './table.js';
