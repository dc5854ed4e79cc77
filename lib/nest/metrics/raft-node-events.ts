// The node's operational events (RaftNode.events$), which RaftMetrics turns into histograms.
export type { RaftNodeEvent } from '../../node/raft-node.js';
