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
 * The committed configuration is observed exactly: a `config` entry that is applied is committed, and
 * `commits$` carries its configuration and term; one that is not joint (C_new, or a change of learners)
 * is the committed configuration C. Learners count as members. Without such an observation since the
 * process started (or when the configuration arrived inside an installed snapshot), the view is older
 * than the truth: a stale view only refuses less, never more (the argument above holds for any
 * committed C).
 */
import type { Subscription } from 'rxjs';
import { membersOf } from '../../core/configuration.js';
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
    // In the latest configuration of the log (being added again, as a voter or a learner).
    if (latest.members.some((m) => m.id === id) || (latest.learners ?? []).some((m) => m.id === id)) return undefined;
    return { removedInTerm: committed.term };
  }

  /** Only `config` entries matter, so this costs nothing per command (it is on the apply path). */
  private onApplied(entry: CommittedEntry): void {
    const config = entry.type === 'config' ? entry.configuration : undefined;
    if (!config) return;
    for (const id of membersOf(config)) this.known.add(id);
    if (config.outgoing) return; // C_old,new: C_new follows
    this.committed = { members: new Set([...config.voters, ...(config.learners ?? [])]), term: entry.term };
  }
}
