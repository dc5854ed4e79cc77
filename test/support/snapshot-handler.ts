import type { InstallSnapshotRequest, InstallSnapshotResponse, NodeId } from '../../lib/core/types.js';
import type { RaftRpcHandler } from '../../lib/transport/transport.js';

/**
 * A node stub for InstallSnapshot tests: records every complete snapshot it is given and answers with
 * its index; the other RPCs are not used. `failWith` makes the next installs throw.
 */
export class RecordingSnapshotHandler implements RaftRpcHandler {
  readonly installs: Array<{ request: InstallSnapshotRequest; data: Uint8Array }> = [];
  failWith: Error | undefined;

  constructor(
    readonly id: NodeId,
    private readonly options: {
      /** Added to the request's term in the answer (a receiver that moved on to a later term). Default 0. */
      readonly termDelta?: number;
      /** Whether an install that fails is recorded too. Default false. */
      readonly recordFailed?: boolean;
    } = {},
  ) {}

  async appendEntries(): Promise<never> {
    throw new Error('not used');
  }
  async requestVote(): Promise<never> {
    throw new Error('not used');
  }
  async command(): Promise<unknown> {
    return null;
  }
  async setConfiguration(): Promise<void> {}
  async installSnapshot(request: InstallSnapshotRequest, data: Uint8Array): Promise<InstallSnapshotResponse> {
    if (this.options.recordFailed) this.installs.push({ request, data });
    if (this.failWith) throw this.failWith;
    if (!this.options.recordFailed) this.installs.push({ request, data });
    return { type: 'InstallSnapshotResponse', from: this.id, to: request.from, term: request.term + (this.options.termDelta ?? 0), matchIndex: request.snapshot.index };
  }
}
