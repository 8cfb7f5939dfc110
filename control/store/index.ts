// The config store in one import: the interface, errors, the embedded file store, an in-memory store.
export * from './errors';
export * from './store';
export { FileStore, STATE_FILE, type FileStoreOptions } from './file-store';
export { MemoryStore, type BaseStoreOptions } from './base-store';
export { MemorySnapshot } from './snapshot';
export { checkReferences, allocateClusterIP } from './admission';
