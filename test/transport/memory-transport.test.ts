import { describe, expect, it } from 'vitest';
import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  InstallSnapshotRequest,
  InstallSnapshotResponse,
  RequestVoteRequest,
  RequestVoteResponse,
} from '../../lib/core/types.js';
import { MemoryNetwork, PeerUnreachableError } from '../../lib/transport/memory-transport.js';
import type { RaftRpcHandler } from '../../lib/transport/transport.js';

/** A node that records the snapshots it is given (and can keep its answer back until released). */
class SnapshotHandler implements RaftRpcHandler {
  readonly installs: Array<{ request: InstallSnapshotRequest; data: Uint8Array }> = [];
  hold: Promise<void> | undefined;
  constructor(readonly id: number) {}
  async appendEntries(request: AppendEntriesRequest): Promise<AppendEntriesResponse> {
    return { type: 'AppendEntriesResponse', from: this.id, to: request.from, term: request.term, success: true, matchIndex: 0, rejectedIndex: 0, conflictTerm: 0, conflictIndex: 0 };
  }
  async requestVote(request: RequestVoteRequest): Promise<RequestVoteResponse> {
    return { type: 'RequestVoteResponse', from: this.id, to: request.from, term: request.term, voteGranted: false, preVote: request.preVote };
  }
  async command(): Promise<unknown> {
    return null;
  }
  async setConfiguration(): Promise<void> {}
  async installSnapshot(request: InstallSnapshotRequest, data: Uint8Array): Promise<InstallSnapshotResponse> {
    this.installs.push({ request, data });
    await this.hold;
    return { type: 'InstallSnapshotResponse', from: this.id, to: request.from, term: request.term, matchIndex: request.snapshot.index };
  }
}

const request: InstallSnapshotRequest = {
  type: 'InstallSnapshot',
  from: 1,
  to: 2,
  term: 3,
  snapshot: { index: 40, term: 2, configuration: { voters: [1, 2, 3], addresses: { '1': 'mem://1' } } },
};

describe('MemoryNetwork setConfiguration', () => {
  it('carries the learners when given, and only then', async () => {
    const network = new MemoryNetwork();
    const calls: unknown[][] = [];
    const follower = new SnapshotHandler(2);
    follower.setConfiguration = async (...args: unknown[]) => void calls.push(args);
    network.register(follower);
    const peer = network.transport(1).peer(2);
    await peer.setConfiguration([{ id: 1 }, { id: 2 }], { timeoutMs: 5 }, [{ id: 4, url: 'mem://4' }]);
    await peer.setConfiguration([{ id: 1 }]);
    expect(calls).toEqual([
      [[{ id: 1 }, { id: 2 }], { timeoutMs: 5 }, [{ id: 4, url: 'mem://4' }]],
      [[{ id: 1 }], undefined],
    ]);
  });
});

describe('MemoryNetwork InstallSnapshot', () => {
  it('delivers the request and a copy of the bytes (never the sender\'s buffer), and returns the answer', async () => {
    const network = new MemoryNetwork();
    const follower = new SnapshotHandler(2);
    network.register(follower);
    const data = Buffer.from('the state machine, serialized');
    const response = await network.transport(1).peer(2).installSnapshot!(request, data);
    expect(response).toEqual({ type: 'InstallSnapshotResponse', from: 2, to: 1, term: 3, matchIndex: 40 });
    expect(follower.installs).toHaveLength(1);
    const [received] = follower.installs;
    expect(received!.request).toEqual(request);
    expect(received!.request).not.toBe(request);
    expect(received!.request.snapshot.configuration).not.toBe(request.snapshot.configuration);
    expect(Buffer.from(received!.data).equals(data)).toBe(true);
    expect(received!.data.buffer).not.toBe(data.buffer);
    data[0] = 0; // the sender changing its buffer afterwards changes nothing on the receiver
    expect(Buffer.from(received!.data).toString()).toBe('the state machine, serialized');
  });

  it('fails like the other RPCs across a cut link, to an unknown node, when the answer is lost, and for a node that takes no snapshots', async () => {
    const network = new MemoryNetwork();
    const follower = new SnapshotHandler(2);
    network.register(follower);
    network.register(new SnapshotHandler(1));
    const peer = network.transport(1).peer(2);
    network.disconnect(1, 2);
    await expect(peer.installSnapshot!(request, new Uint8Array(3))).rejects.toBeInstanceOf(PeerUnreachableError);
    expect(follower.installs).toHaveLength(0);
    network.heal();
    await expect(network.transport(1).peer(9).installSnapshot!({ ...request, to: 9 }, new Uint8Array(3))).rejects.toBeInstanceOf(PeerUnreachableError);

    // Cut while the follower installs: it has the snapshot, but the leader never hears of it.
    let release!: () => void;
    follower.hold = new Promise((resolve) => (release = resolve));
    const call = peer.installSnapshot!(request, new Uint8Array(3));
    await new Promise((r) => setTimeout(r, 5));
    network.isolate(2);
    release();
    await expect(call).rejects.toThrow(/lost the answer of node 2/);
    expect(follower.installs).toHaveLength(1);
    network.heal();

    // A caller's abort before the call.
    await expect(peer.installSnapshot!(request, new Uint8Array(3), { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });

    const plain: RaftRpcHandler = { id: 5, appendEntries: follower.appendEntries, requestVote: follower.requestVote, command: follower.command, setConfiguration: follower.setConfiguration };
    network.register(plain);
    await expect(network.transport(1).peer(5).installSnapshot!({ ...request, to: 5 }, new Uint8Array(3))).rejects.toThrow(/does not take snapshots/);
  });
});
