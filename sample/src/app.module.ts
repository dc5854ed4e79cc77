import { Module, type DynamicModule } from '@nestjs/common';
import { RaftModule } from '../../lib/index.js';
import { ClusterController } from './cluster.controller.js';
import type { SampleConfig } from './config.js';
import { KvController } from './kv.controller.js';
import { KvStateMachine } from './kv.state-machine.js';

/** The sample application: a replicated key-value store on Raft. */
@Module({})
export class AppModule {
  static forNode(config: SampleConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        RaftModule.forRoot({
          nodeId: config.nodeId,
          url: config.url,
          peers: config.peers,
          stateMachine: KvStateMachine,
          storage: config.databaseUrl ? { postgres: { url: config.databaseUrl } } : { embedded: { dataDir: config.dataDir } },
          clusterId: config.clusterId,
          electionTimeoutMs: config.electionTimeoutMs,
        }),
      ],
      controllers: [KvController, ClusterController],
      providers: [KvStateMachine],
    };
  }
}
