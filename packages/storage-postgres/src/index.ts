export type { PostgresPoolOptions, PostgresStorageOptions } from './options.js';
export { PostgresStorage } from './postgres-storage.js';
export { SCHEMA_VERSION } from './schema.js';
