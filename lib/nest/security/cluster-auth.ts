/**
 * Whether (and how) a module's RPCs are authenticated, decided once from its options and environment:
 *
 * - a cluster secret is configured (`clusterSecret`, else `RAFT_CLUSTER_SECRET`) → `authenticated`;
 * - no secret, `insecureNoAuth: true` → `open` (warned about when the cluster has peers);
 * - no secret, a single-node cluster (`peers` is exactly this node) → `closed`: it has nobody to talk
 *   to, so every peer RPC is refused (a single node needs no secret, and stays unreachable);
 * - no secret otherwise (several peers, or peers left out to join a cluster) → RaftOptionsError
 *   naming `clusterSecret`: a node that has peers never starts unauthenticated by accident.
 */
import { RaftOptionsError } from '../../core/errors.js';
import type { NodeId } from '../../core/types.js';
import { MAX_PREVIOUS_CLUSTER_SECRETS, clusterSecretKey, type ClusterSecret } from '../../transport/auth.js';
import type { RaftMember } from '../../transport/transport.js';
import type { RaftRpcSecurityMode } from './raft-rpc-security.js';

/** Environment variable read when the `clusterSecret` option is left out. */
export const CLUSTER_SECRET_ENV = 'RAFT_CLUSTER_SECRET';
/** Comma-separated; read when the `previousClusterSecrets` option is left out. */
export const PREVIOUS_CLUSTER_SECRETS_ENV = 'RAFT_PREVIOUS_CLUSTER_SECRETS';

export interface ClusterAuthOptions {
  readonly nodeId: NodeId;
  readonly peers?: readonly RaftMember[];
  readonly clusterSecret?: ClusterSecret;
  readonly previousClusterSecrets?: readonly ClusterSecret[];
  readonly insecureNoAuth?: boolean;
}

export interface ResolvedClusterAuth {
  readonly mode: RaftRpcSecurityMode;
  readonly secret?: ClusterSecret;
  readonly previousSecrets?: readonly ClusterSecret[];
  /** Whether the cluster can have other members (so `open` deserves a warning). */
  readonly multiNode: boolean;
}

/** @throws RaftOptionsError naming `clusterSecret`, `previousClusterSecrets` or `insecureNoAuth` */
export function resolveClusterAuth(options: ClusterAuthOptions, env: NodeJS.ProcessEnv = process.env): ResolvedClusterAuth {
  if (options.insecureNoAuth !== undefined && typeof options.insecureNoAuth !== 'boolean') {
    throw new RaftOptionsError('insecureNoAuth', `must be true or false, got ${typeof options.insecureNoAuth}`);
  }
  const fromEnv = env[CLUSTER_SECRET_ENV];
  const secret = options.clusterSecret ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined);
  const field = options.clusterSecret !== undefined ? 'clusterSecret' : CLUSTER_SECRET_ENV;
  const previousFromEnv = env[PREVIOUS_CLUSTER_SECRETS_ENV];
  const previous =
    options.previousClusterSecrets ??
    (previousFromEnv ? previousFromEnv.split(',').map((s) => s.trim()).filter((s) => s !== '') : undefined);
  const multiNode = !(options.peers && options.peers.length === 1 && options.peers[0]!.id === options.nodeId);

  if (secret !== undefined) {
    clusterSecretKey(secret, field); // validates; the key itself is made where it is used
    if (previous !== undefined) {
      if (!Array.isArray(previous)) throw new RaftOptionsError('previousClusterSecrets', 'must be an array of secrets');
      if (previous.length > MAX_PREVIOUS_CLUSTER_SECRETS) throw new RaftOptionsError('previousClusterSecrets', `holds ${previous.length} secrets, more than ${MAX_PREVIOUS_CLUSTER_SECRETS}`);
      previous.forEach((s, i) => clusterSecretKey(s, `previousClusterSecrets[${i}]`));
    }
    return { mode: 'authenticated', secret, ...(previous?.length ? { previousSecrets: previous } : {}), multiNode };
  }
  if (previous?.length) throw new RaftOptionsError('previousClusterSecrets', 'needs a current clusterSecret to go with it');
  if (options.insecureNoAuth) return { mode: 'open', multiNode };
  if (!multiNode) return { mode: 'closed', multiNode };
  throw new RaftOptionsError(
    'clusterSecret',
    `is required for a cluster of more than one node (${options.peers?.length ? `peers names ${options.peers.length} nodes` : 'peers is left out, so this node will join a cluster'}): give every node the same secret of at least 16 bytes (option clusterSecret or environment variable ${CLUSTER_SECRET_ENV}), or set insecureNoAuth: true on a network nobody else can reach`,
  );
}
