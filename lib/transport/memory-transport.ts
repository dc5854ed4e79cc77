import { RaftError } from '../core/errors.js';
import type { NodeId } from '../core/types.js';
import type { RaftPeer, RaftRpcHandler, RaftTransport, RpcOptions } from './transport.js';

/** An RPC could not reach its destination (down, unknown, or cut off by a test's partition). */
export class PeerUnreachableError extends RaftError {}

/**
 * An in-process network for clusters inside one process: servers register their handler, peers
 * call it. Requests and answers are deep-copied, as a wire would, so no two servers share an object.
 * Links can be cut to play partitions.
 */
export class MemoryNetwork {
  private readonly handlers = new Map<NodeId, RaftRpcHandler>();
  private readonly cut = new Set<string>();

  register(handler: RaftRpcHandler): void {
    this.handlers.set(handler.id, handler);
  }

  unregister(id: NodeId): void {
    this.handlers.delete(id);
  }

  /** Cuts (both directions of) the link between `a` and `b`. */
  disconnect(a: NodeId, b: NodeId): void {
    this.cut.add(linkKey(a, b));
  }

  /** Cuts every link of `id`. */
  isolate(id: NodeId): void {
    for (const other of this.handlers.keys()) if (other !== id) this.disconnect(id, other);
  }

  heal(): void {
    this.cut.clear();
  }

  /** A transport whose peers send as `from`. */
  transport(from: NodeId): RaftTransport {
    return {
      peer: (id: NodeId) => this.peer(from, id),
      close: async () => {},
    };
  }

  private peer(from: NodeId, to: NodeId): RaftPeer {
    /** `copy` stands for the wire: the answer is a copy (errors keep their class, as the wire maps them back). */
    const call = async <T>(invoke: (handler: RaftRpcHandler) => Promise<T>, options?: RpcOptions, copy: (answer: T) => T = structuredClone): Promise<T> => {
      options?.signal?.throwIfAborted();
      const handler = this.handlers.get(to);
      if (!handler || this.cut.has(linkKey(from, to))) throw new PeerUnreachableError(`node ${to} is unreachable from node ${from}`);
      await Promise.resolve(); // never answer synchronously: a real network does not
      const answer = copy(await invoke(handler));
      if (this.cut.has(linkKey(from, to)) || !this.handlers.has(to)) throw new PeerUnreachableError(`lost the answer of node ${to}`);
      return answer;
    };
    return {
      id: to,
      appendEntries: (request, options) => call((h) => h.appendEntries(structuredClone(request)), options),
      requestVote: (request, options) => call((h) => h.requestVote(structuredClone(request)), options),
      command: (command, options) => call((h) => h.command(new Uint8Array(command), options), options),
      commands: (commands, options) =>
        call(async (h) => {
          const copies = commands.map((c) => new Uint8Array(c));
          if (h.commands) return h.commands(copies, options);
          return Promise.all(copies.map((c) => h.command(c, options).then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }))));
        }, options, (outcomes) => outcomes.map((o) => (o.ok ? { ok: true as const, value: structuredClone(o.value) } : o))),
      setConfiguration: (members, options, learners) =>
        call((h) => (learners ? h.setConfiguration(structuredClone(members), options, structuredClone(learners)) : h.setConfiguration(structuredClone(members), options)), options),
      timeoutNow: (request, options) =>
        call((h) => {
          if (!h.timeoutNow) throw new PeerUnreachableError(`node ${to} does not take leadership transfers`);
          return h.timeoutNow(structuredClone(request));
        }, options),
      readIndex: (options) =>
        call((h) => {
          if (!h.readIndex) throw new PeerUnreachableError(`node ${to} does not serve read indexes`);
          return h.readIndex(options);
        }, options),
      // Bytes are copied (`new Uint8Array`, not `slice`, which is a view for a Buffer): no two servers share memory.
      installSnapshot: (request, data, options) =>
        call((h) => {
          if (!h.installSnapshot) throw new PeerUnreachableError(`node ${to} does not take snapshots`);
          return h.installSnapshot(structuredClone(request), new Uint8Array(data));
        }, options),
      close: async () => {},
    };
  }
}

function linkKey(a: NodeId, b: NodeId): string {
  return a < b ? `${a}-${b}` : `${b}-${a}`;
}
