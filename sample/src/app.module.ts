import { Inject, Injectable, Module, RequestMethod, UnauthorizedException, type DynamicModule, type MiddlewareConsumer, type NestMiddleware, type NestModule } from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RaftModule } from '../../lib/index.js';
import { ClusterController } from './cluster.controller.js';
import type { SampleConfig } from './config.js';
import { KvController } from './kv.controller.js';
import { KvStateMachine } from './kv.state-machine.js';

const ADMIN_TOKEN = Symbol('ADMIN_TOKEN');

/**
 * Membership changes are an administrator's act: with `ADMIN_TOKEN` set they need
 * `authorization: Bearer <token>` (compared in constant time); without it they stay open, as in a
 * development cluster on loopback.
 */
@Injectable()
class AdminTokenMiddleware implements NestMiddleware {
  private readonly expected: Buffer | undefined;
  constructor(@Inject(ADMIN_TOKEN) token: string) {
    this.expected = token ? createHash('sha256').update(token).digest() : undefined;
  }
  use(req: IncomingMessage, _res: ServerResponse, next: (error?: unknown) => void): void {
    if (!this.expected) return next();
    const header = req.headers.authorization;
    const given = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : undefined;
    // Hashing first makes both sides the same length, so the comparison is constant-time.
    if (given !== undefined && timingSafeEqual(createHash('sha256').update(given).digest(), this.expected)) return next();
    next(new UnauthorizedException('membership changes need authorization: Bearer <ADMIN_TOKEN>'));
  }
}

/** The sample application: a replicated key-value store on Raft. */
@Module({})
export class AppModule implements NestModule {
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
          ...(config.snapshotEvery !== undefined ? { snapshotEvery: config.snapshotEvery } : {}),
          ...(config.snapshotTrailingEntries !== undefined ? { snapshotTrailingEntries: config.snapshotTrailingEntries } : {}),
          ...(config.appendEntriesEncoding ? { appendEntriesEncoding: config.appendEntriesEncoding } : {}),
          ...(config.leaseReads ? { leaseReads: true } : {}),
          ...(config.maxInflightAppends !== undefined ? { maxInflightAppends: config.maxInflightAppends } : {}),
          ...(config.clusterSecret ? { clusterSecret: config.clusterSecret } : {}),
          ...(config.previousClusterSecrets ? { previousClusterSecrets: config.previousClusterSecrets } : {}),
          ...(config.insecureNoAuth ? { insecureNoAuth: true } : {}),
          // The Raft RPCs on their own listener: the public port never serves /raft/*.
          ...(config.rpc ? { rpcListener: config.rpc } : {}),
        }),
      ],
      controllers: [KvController, ClusterController],
      providers: [KvStateMachine, AdminTokenMiddleware, { provide: ADMIN_TOKEN, useValue: config.adminToken ?? '' }],
    };
  }

  configure(consumer: MiddlewareConsumer): void {
    consumer
      .apply(AdminTokenMiddleware)
      .forRoutes(
        { path: 'cluster/members', method: RequestMethod.POST },
        { path: 'cluster/members/:id', method: RequestMethod.DELETE },
        { path: 'cluster/learners', method: RequestMethod.POST },
        { path: 'cluster/learners/:id/promote', method: RequestMethod.POST },
      );
  }
}
