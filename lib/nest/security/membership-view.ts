/**
 * Which senders are known to have been removed from the cluster, for the 410 answer — derived only
 * from what is committed, so that it can never lock out a legitimate leader.
 *
 * The rule (docs/security.md, "Removed nodes"): a request from node X is refused with 410 when
 *   1. X was a member of a configuration this node has seen (it is not merely unknown), and
 *   2. X is neither in the latest *committed* configuration C nor in the latest configuration of the
 *      log (committed or not), and
 *   3. the request's term is at most the term of the entry that holds C (`removedInTerm`).
 * A request without a term (a forwarded command or membership change) is refused on 1 and 2.
 *
 * Why (3) cannot lock out a newly added leader that this node has not heard of: if X was added back
 * after C, by a configuration C' appended after C, then C' was appended in a term ≥ the term of C, and
 * X can only win an election (and send AppendEntries) in a term after the one C' was appended in —
 * strictly above the term of C. And a configuration that was committed is in every later leader's log
 * (Leader Completeness, §5.4), so no leader in a term ≤ that of C can be missing it. Requests from X in
 * such terms are stale for Raft anyway; the 410 only tells X why, instead of a plain refusal.
 *
 * The committed configuration is observed through the node's public surface: when an entry is applied
 * and it is the last entry of the log (nothing uncommitted behind it) and no joint configuration is in
 * effect, the log's configuration (`status().members`) is committed, and its entry is the last `config`
 * entry applied while this tracker listened (`commits$` gives its term). Without such an observation
 * since the process started, nobody is considered removed. Under constant load the view can lag; a
 * stale view only refuses less, never more (the argument above holds for any committed C).
 */
import type { Subscription } from 'rxjs';
import type { NodeId } from '../../core/types.js';
import type { CommittedEntry, RaftStatus } from '../../node/raft-node.js';

/** What the tracker needs of a node: a `RaftNode` fits. */
export interface MembershipSource {
  readonly commits$: { subscribe(observer: (entry: CommittedEntry) => void): Subscription };
  status(): RaftStatus;
}

/** How {@link RaftMembershipView.removal} describes a removed node. */
export interface RemovedMember {
  /** The term of the entry holding the committed configuration that does not include the node. */
  readonly removedInTerm: number;
}

/** Read access to committed membership, for the 410 rule. */
export interface RaftMembershipView {
  /** Whether `id` is known to have been removed (see the file's comment); undefined when not. */
  removal(id: NodeId): RemovedMember | undefined;
}

export class CommittedMembershipTracker implements RaftMembershipView {
  /** Every node seen as a member of some configuration. */
  private readonly known = new Set<NodeId>();
  /** Members of the latest committed configuration observed, and the term of its entry. */
  private committed: { readonly members: ReadonlySet<NodeId>; readonly term: number } | undefined;
  /** Term of the last `config` entry applied while listening. */
  private lastConfigTerm: number | undefined;
  private subscription: Subscription | undefined;

  constructor(
    private readonly source: MembershipSource,
    initialMembers: readonly NodeId[] = [],
  ) {
    for (const id of initialMembers) this.known.add(id);
  }

  /** Starts listening; call before the node starts, so that config entries re-applied at start are seen too. */
  listen(): void {
    this.subscription ??= this.source.commits$.subscribe((entry) => this.onApplied(entry));
  }

  close(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
  }

  removal(id: NodeId): RemovedMember | undefined {
    const committed = this.committed;
    if (!committed || committed.members.has(id) || !this.known.has(id)) return undefined;
    let latest: RaftStatus;
    try {
      latest = this.source.status();
    } catch {
      return undefined;
    }
    if (latest.members.some((m) => m.id === id)) return undefined; // being added again
    return { removedInTerm: committed.term };
  }

  private onApplied(entry: CommittedEntry): void {
    if (entry.type === 'config') this.lastConfigTerm = entry.term;
    let status: RaftStatus;
    try {
      status = this.source.status();
    } catch {
      return;
    }
    for (const member of status.members) this.known.add(member.id);
    if (this.lastConfigTerm === undefined || status.joint || status.lastIndex !== entry.index) return;
    this.committed = { members: new Set(status.members.map((m) => m.id)), term: this.lastConfigTerm };
  }
}
