import { Logger, type Type } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import { RaftOptionsError } from '../node/errors.js';
import { resolveTiming, validateMembers, validateNodeId } from '../node/options.js';
import { RaftNode } from '../node/raft-node.js';
import { toStateMachine, type RaftStateMachine } from '../node/state-machine.js';
import { HttpTransport } from '../transport/http-transport.js';
import { FROM_HEADER } from '../transport/wire.js';
import type { RaftModuleOptions } from './raft-module-options.js';
import { createRaftStorage } from './raft-storage.factory.js';

/** Validates module options before anything starts; throws {@link RaftOptionsError} naming the bad field. */
export function validateModuleOptions(options: RaftModuleOptions): void {
  if (!options || typeof options !== 'object') throw new RaftOptionsError('options', 'RaftModule needs an options object');
  validateNodeId('nodeId', options.nodeId);
  if (options.peers !== undefined) validateMembers('peers', options.peers);
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
  resolveTiming(options);
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
  return {
    apply: async (command, index) => (instance ?? (await resolve())).apply(command, index),
    appliedIndex: async () => (await resolve()).appliedIndex?.() ?? 0,
  };
}

/** Builds the module's RaftNode from its options: storage, transport, state machine, logger. */
export async function createRaftNodeFromOptions(options: RaftModuleOptions, moduleRef: ModuleRef, pathPrefix: string): Promise<RaftNode> {
  validateModuleOptions(options);
  const timing = resolveTiming(options);
  const logger = options.logger ?? new Logger(`Raft(${options.nodeId})`);
  const stateMachine = isClass(options.stateMachine) ? lazyStateMachine(options.stateMachine, moduleRef) : toStateMachine(options.stateMachine);
  const transport =
    options.transport ??
    new HttpTransport({
      pathPrefix,
      rpcTimeoutMs: timing.rpcTimeoutMs,
      commandTimeoutMs: timing.commandTimeoutMs,
      backoffMaxMs: timing.electionTimeoutMs,
      // Who is calling, for logs and proxies; informational only (peer authentication is separate).
      headers: { [FROM_HEADER]: String(options.nodeId) },
    });
  const storage = createRaftStorage(options);
  return new RaftNode({ ...options, stateMachine, storage, transport, logger });
}
