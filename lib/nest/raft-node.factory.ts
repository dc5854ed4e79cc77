import { Logger, type Type } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import { RaftOptionsError } from '../node/errors.js';
import { resolveTiming, validateMembers, validateNodeId } from '../node/options.js';
import { RaftNode } from '../node/raft-node.js';
import { toStateMachine, type RaftStateMachine } from '../node/state-machine.js';
import { createRaftRequestSigner } from '../transport/auth.js';
import { HttpTransport } from '../transport/http-transport.js';
import { FROM_HEADER } from '../transport/wire.js';
import type { RaftModuleOptions } from './raft-module-options.js';
import { createRaftStorage } from './raft-storage.factory.js';
import { resolveClusterAuth } from './security/cluster-auth.js';
import { CommittedMembershipTracker } from './security/membership-view.js';
import { RaftRpcSecurity } from './security/raft-rpc-security.js';

const DEFAULT_CLUSTER_ID = 'default';

/** Validates module options before anything starts; throws {@link RaftOptionsError} naming the bad field. */
export function validateModuleOptions(options: RaftModuleOptions): void {
  if (!options || typeof options !== 'object') throw new RaftOptionsError('options', 'RaftModule needs an options object');
  validateNodeId('nodeId', options.nodeId);
  if (options.peers !== undefined) validateMembers('peers', options.peers);
  // As the node checks it; here so that it is reported before the cluster secret, which depends on it.
  if (options.peers && options.peers.length > 0 && !options.peers.some((p) => p.id === options.nodeId)) {
    throw new RaftOptionsError('peers', `must include this node (id ${options.nodeId})`);
  }
  if (options.url !== undefined) {
    try {
      new URL(options.url);
    } catch {
      throw new RaftOptionsError('url', `is not a URL: ${JSON.stringify(options.url)}`);
    }
  }
  if (!options.stateMachine) throw new RaftOptionsError('stateMachine', 'is required (an apply function, an object with apply(), or an injectable class)');
  if (options.bodyLimitBytes !== undefined && !(Number.isSafeInteger(options.bodyLimitBytes) && options.bodyLimitBytes > 0)) {
    throw new RaftOptionsError('bodyLimitBytes', `must be a positive integer, got ${String(options.bodyLimitBytes)}`);
  }
  if (options.maxSnapshotBytes !== undefined && !(Number.isSafeInteger(options.maxSnapshotBytes) && options.maxSnapshotBytes > 0)) {
    throw new RaftOptionsError('maxSnapshotBytes', `must be a positive integer, got ${String(options.maxSnapshotBytes)}`);
  }
  if (options.appendEntriesEncoding !== undefined && options.appendEntriesEncoding !== 'binary' && options.appendEntriesEncoding !== 'json') {
    throw new RaftOptionsError('appendEntriesEncoding', `must be "binary" or "json", got ${JSON.stringify(options.appendEntriesEncoding)}`);
  }
  if (options.authClockSkewMs !== undefined && !(Number.isSafeInteger(options.authClockSkewMs) && options.authClockSkewMs > 0)) {
    throw new RaftOptionsError('authClockSkewMs', `must be a positive integer, got ${String(options.authClockSkewMs)}`);
  }
  resolveTiming(options);
  const auth = resolveClusterAuth(options);
  if (options.peerCertificateNodeId !== undefined) {
    if (typeof options.peerCertificateNodeId !== 'function') throw new RaftOptionsError('peerCertificateNodeId', 'must be a function from a certificate to a node id');
    if (auth.mode !== 'authenticated') throw new RaftOptionsError('peerCertificateNodeId', 'needs a clusterSecret (mutual TLS adds to the signatures, it does not replace them)');
  }
}

/**
 * The checks the RPC endpoints run before the node sees a request (see `security/cluster-auth.ts` for
 * when they authenticate). The membership tracker starts listening now, before the node starts.
 */
export function createRaftRpcSecurity(options: RaftModuleOptions, node: RaftNode): RaftRpcSecurity {
  const auth = resolveClusterAuth(options);
  const logger = options.logger ?? new Logger(`Raft(${options.nodeId})`);
  if (auth.mode === 'open' && auth.multiNode) {
    logger.warn('insecureNoAuth: the Raft RPC endpoints accept unauthenticated requests; anyone who reaches them can rewrite this node\'s log');
  }
  const tracker = auth.mode === 'authenticated' ? new CommittedMembershipTracker(node, (options.peers ?? []).map((p) => p.id)) : undefined;
  tracker?.listen();
  return new RaftRpcSecurity({
    mode: auth.mode,
    nodeId: options.nodeId,
    clusterId: options.clusterId ?? DEFAULT_CLUSTER_ID,
    ...(auth.secret !== undefined ? { secret: auth.secret } : {}),
    ...(auth.previousSecrets ? { previousSecrets: auth.previousSecrets } : {}),
    ...(options.authClockSkewMs !== undefined ? { clockSkewMs: options.authClockSkewMs } : {}),
    ...(options.unauthenticatedRateLimit !== undefined ? { rateLimit: options.unauthenticatedRateLimit } : {}),
    ...(tracker ? { membership: tracker, onClose: () => tracker.close() } : {}),
    ...(options.peerCertificateNodeId ? { peerCertificateNodeId: options.peerCertificateNodeId } : {}),
    logger,
  });
}

function isClass(value: unknown): value is Type<RaftStateMachine> {
  return typeof value === 'function' && typeof (value as { prototype?: { apply?: unknown } }).prototype?.apply === 'function';
}

/**
 * A state machine given as an injectable class is resolved when the node starts (every provider
 * exists by then): from the application's providers if it is registered there, else instantiated
 * with its dependencies injected.
 */
function lazyStateMachine(type: Type<RaftStateMachine>, moduleRef: ModuleRef): RaftStateMachine {
  let instance: RaftStateMachine | undefined;
  const resolve = async (): Promise<RaftStateMachine> => {
    if (instance) return instance;
    let found: RaftStateMachine | undefined;
    try {
      found = moduleRef.get(type, { strict: false });
    } catch {
      found = undefined; // not registered anywhere: the module makes its own
    }
    instance = found ?? (await moduleRef.create(type));
    return instance;
  };
  // Log compaction is offered only if the class has it (the node checks for snapshot/restore).
  const prototype = type.prototype as Partial<RaftStateMachine>;
  const compaction: Pick<RaftStateMachine, 'snapshot' | 'restore'> =
    typeof prototype.snapshot === 'function' && typeof prototype.restore === 'function'
      ? {
          snapshot: async () => (await resolve()).snapshot!(),
          restore: async (data, index) => (await resolve()).restore!(data, index),
        }
      : {};
  return {
    apply: async (command, index) => (instance ?? (await resolve())).apply(command, index),
    appliedIndex: async () => (await resolve()).appliedIndex?.() ?? 0,
    ...compaction,
  };
}

/** Builds the module's RaftNode from its options: storage, transport, state machine, logger. */
export async function createRaftNodeFromOptions(options: RaftModuleOptions, moduleRef: ModuleRef, pathPrefix: string): Promise<RaftNode> {
  validateModuleOptions(options);
  const timing = resolveTiming(options);
  const logger = options.logger ?? new Logger(`Raft(${options.nodeId})`);
  const stateMachine = isClass(options.stateMachine) ? lazyStateMachine(options.stateMachine, moduleRef) : toStateMachine(options.stateMachine);
  const auth = resolveClusterAuth(options);
  const sign =
    auth.secret !== undefined ? createRaftRequestSigner({ nodeId: options.nodeId, clusterId: options.clusterId ?? DEFAULT_CLUSTER_ID, secret: auth.secret }) : undefined;
  const transport =
    options.transport ??
    new HttpTransport({
      pathPrefix,
      rpcTimeoutMs: timing.rpcTimeoutMs,
      commandTimeoutMs: timing.commandTimeoutMs,
      backoffMaxMs: timing.electionTimeoutMs,
      // Who is calling, for logs and proxies; informational only (peer authentication is separate).
      headers: { [FROM_HEADER]: String(options.nodeId) },
      // Every request signed with the cluster secret (the receiver verifies before parsing).
      ...(sign ? { sign } : {}),
      ...(options.peerTls ? { tls: options.peerTls } : {}),
      ...(options.appendEntriesEncoding ? { appendEntriesEncoding: options.appendEntriesEncoding } : {}),
    });
  const storage = createRaftStorage(options);
  return new RaftNode({ ...options, stateMachine, storage, transport, logger });
}
