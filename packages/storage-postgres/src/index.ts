export type { PostgresPoolOptions, PostgresStorageOptions } from './postgres-storage.js';
export { PostgresStorage } from './postgres-storage.js';
export { SCHEMA_VERSION } from './schema.js';
