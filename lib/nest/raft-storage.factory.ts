import type { Entry, RecoveredState } from '../core/types.js';
import { EmbeddedPostgres } from '../storage/embedded/embedded-postgres.js';
import type { RaftStorage, StorageBatch, StoredSnapshot } from '../storage/storage.js';
import { TypeOrmStorage } from '../storage/typeorm/typeorm-storage.js';
import type { RaftModuleOptions } from './raft-module-options.js';

/**
 * The module's default store: an embedded PostgreSQL started when the node loads its state and
 * stopped when it closes, with the same TypeORM storage on top as for a real server.
 */
class EmbeddedTypeOrmStorage implements RaftStorage {
  private server: EmbeddedPostgres | undefined;
  private storage: TypeOrmStorage | undefined;

  constructor(
    private readonly dataDir: string,
    private readonly nodeId: number,
    private readonly clusterId: string | undefined,
  ) {}

  async load(): Promise<RecoveredState> {
    this.server ??= await EmbeddedPostgres.start({ dataDir: this.dataDir });
    this.storage ??= new TypeOrmStorage({ nodeId: this.nodeId, ...(this.clusterId ? { clusterId: this.clusterId } : {}), ...this.server.storageOptions() });
    try {
      return await this.storage.load();
    } catch (error) {
      await this.close(); // release the data directory: nothing will use it
      throw error;
    }
  }

  save(batch: StorageBatch): Promise<void> {
    return this.opened().save(batch);
  }

  entries(from: number, to: number): Promise<Entry[]> {
    return this.opened().entries(from, to);
  }

  loadSnapshot(): Promise<StoredSnapshot | undefined> {
    return this.opened().loadSnapshot();
  }

  async close(): Promise<void> {
    await this.storage?.close();
    await this.server?.stop();
    this.storage = undefined;
    this.server = undefined;
  }

  private opened(): TypeOrmStorage {
    if (!this.storage) throw new Error('embedded storage used before load()');
    return this.storage;
  }
}

function isRaftStorage(value: unknown): value is RaftStorage {
  return typeof (value as RaftStorage | undefined)?.load === 'function' && typeof (value as RaftStorage).save === 'function';
}

/** Turns the module's `storage` option into a {@link RaftStorage}. */
export function createRaftStorage(options: RaftModuleOptions): RaftStorage {
  const storage = options.storage;
  if (isRaftStorage(storage)) return storage;
  const common = {
    nodeId: options.nodeId,
    ...(options.clusterId ? { clusterId: options.clusterId } : {}),
    ...(options.unsafeAllowAsyncCommit ? { unsafeAllowAsyncCommit: true } : {}),
  };
  if (storage && 'dataSource' in storage) return new TypeOrmStorage({ ...common, dataSource: storage.dataSource });
  if (storage && 'postgres' in storage) return new TypeOrmStorage({ ...common, dataSourceOptions: { type: 'postgres', ...storage.postgres } });
  const dataDir = (storage && 'embedded' in storage ? storage.embedded.dataDir : undefined) ?? `./data/node-${options.nodeId}`;
  return new EmbeddedTypeOrmStorage(dataDir, options.nodeId, options.clusterId);
}
