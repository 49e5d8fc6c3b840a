export type {
  FileStorageOptions,
  QuarantinedStream,
  RecoveryProgress,
  RecoveryReport,
} from './file-storage.js';
export { FileStorage } from './file-storage.js';
export type { FileHandleLike, FileSystem, OpenFlags } from './fs.js';
export { nodeFileSystem } from './fs.js';
