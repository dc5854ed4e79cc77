export { EmbeddedPostgres, type EmbeddedPostgresOptions, type EmbeddedPostgresConnectionOptions } from './embedded-postgres.js';
export { DataDirectoryLock } from './data-dir-lock.js';
export { DurableNodeFS } from './durable-node-fs.js';
