import { RaftNode } from '../../lib/node/raft-node.js';
import type { RaftNodeOptions } from '../../lib/node/options.js';
import { MemoryStorage } from '../../lib/storage/memory-storage.js';
import { MemoryNetwork } from '../../lib/transport/memory-transport.js';
import type { NodeId } from '../../lib/core/types.js';

const decoder = new TextDecoder();

/** A tiny deterministic key-value state machine: commands are `set k v` or `get k`. */
export class KvMachine {
  readonly data = new Map<string, string>();
  readonly appliedIndexes: number[] = [];
  apply(command: Uint8Array, index: number): string | null {
    this.appliedIndexes.push(index);
    const [op, key, value] = decoder.decode(command).split(' ');
    if (op === 'set') {
      this.data.set(key!, value!);
      return value!;
    }
    if (op === 'fail') throw new Error(`refused ${key}`);
    return this.data.get(key!) ?? null;
  }
  /** Log compaction: the whole map as JSON. */
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify([...this.data]));
  }
  restore(data: Uint8Array, index: number): void {
    this.data.clear();
    for (const [k, v] of JSON.parse(decoder.decode(data)) as [string, string][]) this.data.set(k, v);
    this.restoredAt.push(index);
  }
  readonly restoredAt: number[] = [];
}

/** A cluster of RaftNodes in one process: MemoryNetwork between them, MemoryStorage under each. */
export class MemoryCluster {
  readonly network = new MemoryNetwork();
  readonly storages = new Map<NodeId, MemoryStorage>();
  readonly machines = new Map<NodeId, KvMachine>();
  readonly nodes = new Map<NodeId, RaftNode>();

  constructor(
    readonly ids: NodeId[],
    readonly extra: Partial<RaftNodeOptions> = {},
  ) {}

  async startAll(): Promise<void> {
    await Promise.all(this.ids.map((id) => this.start(id)));
  }

  /** (Re)starts a node on its storage, with a fresh in-memory state machine. `join`: no initial peers. */
  async start(id: NodeId, join = false): Promise<RaftNode> {
    if (!this.storages.has(id)) this.storages.set(id, new MemoryStorage());
    const machine = new KvMachine();
    this.machines.set(id, machine);
    const node = new RaftNode({
      nodeId: id,
      ...(join ? {} : { peers: this.ids.map((peer) => ({ id: peer })) }),
      storage: this.storages.get(id)!,
      transport: this.network.transport(id),
      stateMachine: machine,
      electionTimeoutMs: 60,
      ...this.extra,
    });
    this.nodes.set(id, node);
    this.network.register(node.rpcHandler);
    await node.start();
    return node;
  }

  async stop(id: NodeId): Promise<void> {
    this.network.unregister(id);
    await this.nodes.get(id)!.stop();
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.nodes.entries()].filter(([, n]) => n.isRunning).map(([id]) => this.stop(id)));
  }

  node(id: NodeId): RaftNode {
    return this.nodes.get(id)!;
  }

  /** Waits (real time, bounded) until exactly one running node leads; returns it. */
  async leader(timeoutMs = 5000, among: NodeId[] = [...this.nodes.keys()]): Promise<RaftNode> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const leaders = among.map((id) => this.nodes.get(id)!).filter((n) => n.isRunning && n.isLeader());
      if (leaders.length === 1) return leaders[0]!;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('no leader elected in time');
  }
}
