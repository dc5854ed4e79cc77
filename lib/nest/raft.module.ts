import { ConfigurableModuleBuilder, Module, type Provider } from '@nestjs/common';
import { DiscoveryModule, ModuleRef } from '@nestjs/core';
import type { RaftNode } from '../node/raft-node.js';
import { resolveTiming } from '../node/options.js';
import type { RaftModuleExtras, RaftModuleOptions } from './raft-module-options.js';
import { createRaftNodeFromOptions, createRaftRpcSecurity } from './raft-node.factory.js';
import { RaftRpcListener, type RaftRpcListenerExtra } from './security/raft-rpc-listener.js';
import { RAFT_RPC_LISTENER_EXTRA, RAFT_RPC_SECURITY } from './security/security.constants.js';
import { DEFAULT_RPC_LIMITS, RAFT_MODULE_OPTIONS, RAFT_NODE, RAFT_RPC_HANDLER, RAFT_RPC_LIMITS, type RaftRpcLimits } from './raft.constants.js';
import { createRaftRpcController } from './raft-rpc.controller.js';
import { RaftService } from './raft.service.js';
import { MAX_ENVELOPE_OVERHEAD } from '../node/command-envelope.js';
import { RaftExplorer } from './decorators/raft.explorer.js';
import { RaftHealthIndicator } from './health/raft.health.js';

const DEFAULT_PATH = '/raft';

/** Token under which the module's own path prefix is provided (it is a static extra, not an option). */
const RAFT_PATH_PREFIX = Symbol('RAFT_PATH_PREFIX');

const { ConfigurableModuleClass } = new ConfigurableModuleBuilder<RaftModuleOptions>({ optionsInjectionToken: RAFT_MODULE_OPTIONS })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createRaftOptions')
  // rpcListener is listed (undefined) so that forRoot keeps it out of the options object.
  .setExtras<RaftModuleExtras>({ isGlobal: false, path: DEFAULT_PATH, rpcListener: undefined }, (definition, extras) => {
    const path = extras.path ?? DEFAULT_PATH;
    const listener = extras.rpcListener;
    const separate = listener !== undefined && listener !== false;
    return {
      ...definition,
      global: extras.isGlobal ?? false,
      // With a separate listener, the application itself never serves the RPC routes.
      controllers: [...(definition.controllers ?? []), ...(separate ? [] : [createRaftRpcController(path)])],
      providers: [
        ...(definition.providers ?? []),
        { provide: RAFT_PATH_PREFIX, useValue: path },
        ...(separate
          ? [{ provide: RAFT_RPC_LISTENER_EXTRA, useValue: { listener, path } satisfies RaftRpcListenerExtra }, RaftRpcListener]
          : []),
      ],
      exports: [...(definition.exports ?? []), ...(separate ? [RaftRpcListener] : [])],
    };
  })
  .build();

const providers: Provider[] = [
  {
    provide: RAFT_NODE,
    useFactory: (options: RaftModuleOptions, moduleRef: ModuleRef, path: string) => createRaftNodeFromOptions(options, moduleRef, path),
    inject: [RAFT_MODULE_OPTIONS, ModuleRef, RAFT_PATH_PREFIX],
  },
  {
    provide: RAFT_RPC_HANDLER,
    useFactory: (node: RaftNode) => node.rpcHandler,
    inject: [RAFT_NODE],
  },
  {
    provide: RAFT_RPC_LIMITS,
    useFactory: (options: RaftModuleOptions): RaftRpcLimits => {
      const timing = resolveTiming(options);
      return {
        maxEntriesPerAppend: Math.max(timing.maxEntriesPerAppend, DEFAULT_RPC_LIMITS.maxEntriesPerAppend),
        // Commands travel with their session envelope (a few dozen bytes), which must fit too.
        maxCommandBytes: timing.maxCommandBytes + MAX_ENVELOPE_OVERHEAD,
        bodyLimitBytes: options.bodyLimitBytes ?? DEFAULT_RPC_LIMITS.bodyLimitBytes,
        maxSnapshotBytes: options.maxSnapshotBytes ?? DEFAULT_RPC_LIMITS.maxSnapshotBytes,
        snapshotIdleTimeoutMs: DEFAULT_RPC_LIMITS.snapshotIdleTimeoutMs,
      };
    },
    inject: [RAFT_MODULE_OPTIONS],
  },
  {
    provide: RAFT_RPC_SECURITY,
    useFactory: (options: RaftModuleOptions, node: RaftNode) => createRaftRpcSecurity(options, node),
    inject: [RAFT_MODULE_OPTIONS, RAFT_NODE],
  },
  RaftService,
  // Finds @OnLeaderElected/@OnLeadershipLost/@OnCommit handlers and binds @LeaderOnly methods at bootstrap.
  RaftExplorer,
  RaftHealthIndicator,
];

/**
 * Raft in a Nest application:
 *
 * ```ts
 * @Module({
 *   imports: [RaftModule.forRoot({ nodeId: 1, url: 'http://10.0.0.1:3000', peers, stateMachine: MyMachine })],
 * })
 * export class AppModule {}
 * ```
 *
 * It registers the RPC endpoints (`GET {path}/id`, `POST {path}/appendentries`, `/requestvote`,
 * `/command`, `/setconfiguration`, `/readindex`, `/timeoutnow`, `/installsnapshot`; `path` defaults to `/raft`) — on the application, or on their own
 * server with the extra `rpcListener: { host, port }` — and provides {@link RaftService}. Peers sign
 * every RPC with the cluster secret (`clusterSecret`); see docs/security.md.
 * `forRootAsync({ imports, inject, useFactory | useClass | useExisting, isGlobal, path })` takes the
 * options from other providers (e.g. ConfigService); a `useClass`/`useExisting` class implements
 * {@link RaftOptionsFactory}.
 */
@Module({ imports: [DiscoveryModule], providers, exports: [RaftService, RAFT_NODE, RaftHealthIndicator] })
export class RaftModule extends ConfigurableModuleClass {}
