import type { Entry, Message, NodeId, Ready, RecoveredState, Role } from '../../lib/core/types.js';
import { chainDigest, entryDigest } from './digest.js';

/** What the checkers may look at in a running engine (the simulator's `SimCore` provides it). */
export interface NodeView {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly commitIndex: number;
  readonly lastIndex: number;
  /** Where its in-memory log starts: entries up to here were compacted into a snapshot. */
  readonly logStartIndex: number;
  /** The engine's in-memory log entry at `index`, O(1). */
  entryAt(index: number): Entry | undefined;
}

/** An entry known committed because some server applied it. */
interface CommittedRecord {
  readonly term: number;
  readonly digest: number;
  /**
   * An upper bound on the term in which the entry was committed: the lowest term any server was in
   * when it applied the entry. A server that knows an index is committed while in term x learned it
   * from a leader of a term ≤ x, so every leader of a term above this one must hold the entry
   * (Leader Completeness, §5.4).
   */
  commitTerm: number;
  readonly firstAppliedBy: NodeId;
}

/** The first server seen holding an entry with some (index, term), and the digest of its log up to there. */
interface SeenEntry {
  readonly digest: number;
  readonly prefix: number;
  readonly node: NodeId;
}

interface NodeWatch {
  live: boolean;
  // ---- one process lifetime (reset on restart)
  term: number;
  commit: number;
  role: Role;
  nextApply: number;
  /** commitIndex when the previous Ready was taken: a lower bound of commitIndex at any later truncation. */
  commitAtLastReady: number;
  /**
   * Shadow of the engine's log as described by its Readys: term and prefix digest per index, from
   * `shadowBase` (0 = the empty log's sentinel; after a snapshot, the snapshot's index) on.
   */
  shadowBase: number;
  shadowTerm: number[];
  shadowPrefix: number[];
  // ---- promises made in messages actually sent (kept across restarts)
  /** Highest term in any message it sent (pre-vote messages excepted: they carry a term not adopted). */
  maxTermSent: number;
  /** Highest matchIndex it acknowledged to a leader, and the term of that acknowledgement. */
  ackTerm: number;
  ackMatch: number;
}

/**
 * The safety invariants of Raft (Figure 3 of the paper, plus the persistence promises of Figure 2),
 * checked incrementally so that they can run after every event of a simulation:
 *
 * - Election Safety: at most one leader per term (roles observed after every event, and every
 *   AppendEntries sent names its sender as the leader of its term);
 * - one vote per term per server, across restarts (from the RequestVote replies actually sent);
 * - Log Matching: two logs holding an entry with the same index and term hold the same entry and are
 *   identical before it (a digest of each log prefix, compared for every (index, term) ever held);
 * - Leader Completeness: a committed entry is in the log of every leader of a later term;
 * - State Machine Safety: no two servers apply different entries at one index;
 * - within one process a server's term and commit index never decrease, it applies in order without
 *   gaps, never truncates what it knows committed, and never truncates what it acknowledged to the
 *   leader of its current term;
 * - on restart, its stable state still covers what it promised before the crash: its term is at least
 *   any term it sent, its vote in that term is the one it granted, and entries it acknowledged in that
 *   term are still there (§5.1 / Figure 2: "respond to RPCs only after updating stable storage").
 */
export class SafetyChecker {
  readonly violations: string[] = [];
  private readonly leaders = new Map<number, NodeId>();
  private readonly votes = new Map<number, NodeId>();
  private readonly seen: (Map<number, SeenEntry> | undefined)[] = [];
  private readonly committed: (CommittedRecord | undefined)[] = [];
  private maxCommitted = 0;
  private readonly watches = new Map<NodeId, NodeWatch>();

  constructor(
    /** Virtual time in µs, for the messages. */
    private readonly now: () => number,
    /** The engines currently running (used to check current leaders when an entry becomes known committed). */
    private readonly liveViews: () => readonly NodeView[],
    /**
     * Whether to check each server's own promises (what it acknowledged or voted is durable, it
     * never truncates what it acknowledged or knows committed). They catch a broken rule at the
     * step that breaks it; without them, only the cluster-wide invariants of Figure 3 are checked,
     * which catch the same bugs later, when their consequence shows.
     */
    private readonly checkPromises = true,
  ) {}

  get ok(): boolean {
    return this.violations.length === 0;
  }

  /** Terms that had a leader, and who it was. */
  get leadersByTerm(): ReadonlyMap<number, NodeId> {
    return this.leaders;
  }

  /** Highest index known committed (applied by some server). */
  get highestCommitted(): number {
    return this.maxCommitted;
  }

  /** The entry applied at `index`, if any server applied one. */
  committedAt(index: number): { term: number; digest: number } | undefined {
    return this.committed[index];
  }

  violation(text: string): void {
    this.violations.push(`t=${(this.now() / 1000).toFixed(3)}ms: ${text}`);
  }

  // ------------------------------------------------------------------ lifecycle

  /** A server (re)started from `recovered`; `view` is its new engine. */
  nodeStarted(view: NodeView, recovered: RecoveredState): void {
    const id = view.id;
    let w = this.watches.get(id);
    const hs = recovered.hardState;
    if (w === undefined) {
      w = {
        live: true,
        term: 0,
        commit: 0,
        role: 'follower',
        nextApply: 1,
        commitAtLastReady: 0,
        shadowBase: 0,
        shadowTerm: [0],
        shadowPrefix: [0],
        maxTermSent: 0,
        ackTerm: 0,
        ackMatch: 0,
      };
      this.watches.set(id, w);
    } else if (this.checkPromises) {
      if (hs.term < w.maxTermSent) {
        this.violation(`n${id} restarted in term ${hs.term}, but before the crash it had sent messages of term ${w.maxTermSent} (term not persisted before sending)`);
      }
      const granted = this.votes.get(voteKey(hs.term, id));
      if (granted !== undefined && hs.vote !== granted) {
        this.violation(`n${id} restarted in term ${hs.term} with vote ${hs.vote}, but it had granted its vote in term ${hs.term} to n${granted} (vote not persisted)`);
      }
      const storedLast = (recovered.logStart?.index ?? 0) + recovered.entries.length;
      if (w.ackTerm === hs.term && storedLast < w.ackMatch) {
        this.violation(
          `n${id} restarted with log up to ${storedLast}, but in term ${hs.term} it had acknowledged entries up to ${w.ackMatch} (entries not persisted before the acknowledgement)`,
        );
      }
    }
    w.live = true;
    w.term = view.term;
    w.commit = view.commitIndex;
    w.role = view.role;
    w.nextApply = (recovered.appliedIndex ?? 0) + 1;
    w.commitAtLastReady = view.commitIndex;
    w.shadowBase = 0;
    w.shadowTerm = [0];
    w.shadowPrefix = [0];
    if (recovered.logStart && recovered.logStart.index > 0) this.rebase(id, w, recovered.logStart.index, recovered.logStart.term, 'restarted from a compacted log');
    for (const entry of recovered.entries) {
      if (!this.shadowAppend(id, w, entry)) break;
    }
  }

  nodeCrashed(id: NodeId): void {
    const w = this.watches.get(id);
    if (w) w.live = false;
  }

  // ------------------------------------------------------------------ observations

  /** After every event: roles, terms and commit indexes of every running engine. */
  afterEvent(views: readonly NodeView[]): void {
    for (const view of views) {
      const w = this.watches.get(view.id);
      if (w === undefined) continue;
      const term = view.term;
      if (term < w.term) this.violation(`n${view.id}'s term went back from ${w.term} to ${term}`);
      if (view.commitIndex < w.commit) this.violation(`n${view.id}'s commit index went back from ${w.commit} to ${view.commitIndex}`);
      if (view.role === 'leader') {
        this.claimLeadership(view.id, term, 'is leader');
        if (w.role !== 'leader' || w.term !== term) this.checkNewLeader(view);
      }
      w.term = term;
      w.commit = view.commitIndex;
      w.role = view.role;
    }
  }

  /** A Ready was just taken from `view`: check and record the log changes it describes. */
  readyTaken(view: NodeView, ready: Ready): void {
    const w = this.watches.get(view.id)!;
    const id = view.id;
    if (ready.truncateFrom !== undefined) {
      const from = ready.truncateFrom;
      if (this.checkPromises) {
        if (from <= w.commitAtLastReady) {
          this.violation(`n${id} truncated its log from ${from}, but it already knew entries up to ${w.commitAtLastReady} committed`);
        }
        if (w.ackTerm === view.term && from <= w.ackMatch) {
          this.violation(
            `n${id} truncated its log from ${from} in term ${view.term}, but it had acknowledged entries up to ${w.ackMatch} to the leader of term ${view.term}`,
          );
        }
      }
      if (from <= w.shadowBase) {
        this.violation(`n${id} truncated its log from ${from}, at or below its compaction point ${w.shadowBase}`);
      } else if (from - w.shadowBase < w.shadowTerm.length) {
        w.shadowTerm.length = from - w.shadowBase;
        w.shadowPrefix.length = from - w.shadowBase;
      }
    }
    if (ready.snapshot) {
      const s = ready.snapshot;
      if (this.checkPromises && s.index <= w.commitAtLastReady) {
        this.violation(`n${id} installed a snapshot at ${s.index}, not beyond what it already knew committed (${w.commitAtLastReady})`);
      }
      const held = s.index - w.shadowBase;
      if (held >= 0 && held < w.shadowTerm.length && w.shadowTerm[held] === s.term) {
        // The log agrees with the snapshot: keep what follows it.
        w.shadowTerm = w.shadowTerm.slice(held);
        w.shadowPrefix = w.shadowPrefix.slice(held);
        w.shadowBase = s.index;
      } else {
        if (held >= 0 && held < w.shadowTerm.length - 1) {
          this.violation(`n${id} accepted a snapshot at ${s.index}/${s.term} but kept a log beyond it that disagrees at ${s.index}`);
        }
        this.rebase(id, w, s.index, s.term, 'installed a snapshot');
      }
    }
    for (const entry of ready.entries) {
      if (!this.shadowAppend(id, w, entry)) break;
    }
    const shadowLast = w.shadowBase + w.shadowTerm.length - 1;
    if (view.lastIndex !== shadowLast && this.ok) {
      this.violation(`n${id}'s Ready leaves its stored log ending at ${shadowLast}, but its in-memory log ends at ${view.lastIndex}`);
    }
    w.commitAtLastReady = view.commitIndex;
  }

  /** A message is leaving `msg.from` (after its Ready was persisted, unless a bug says otherwise). */
  messageSent(msg: Message): void {
    const w = this.watches.get(msg.from);
    if (w === undefined) return;
    const preVote = (msg.type === 'RequestVote' || msg.type === 'RequestVoteResponse') && msg.preVote;
    if (!preVote && msg.term > w.maxTermSent) w.maxTermSent = msg.term;
    switch (msg.type) {
      case 'AppendEntries':
        this.claimLeadership(msg.from, msg.term, 'sent AppendEntries');
        break;
      case 'AppendEntriesResponse':
        if (msg.success) {
          if (msg.term > w.ackTerm) {
            w.ackTerm = msg.term;
            w.ackMatch = msg.matchIndex;
          } else if (msg.term === w.ackTerm && msg.matchIndex > w.ackMatch) {
            w.ackMatch = msg.matchIndex;
          }
        }
        break;
      case 'RequestVoteResponse':
        if (msg.voteGranted && !msg.preVote) {
          const key = voteKey(msg.term, msg.from);
          const previous = this.votes.get(key);
          if (previous === undefined) this.votes.set(key, msg.to);
          else if (previous !== msg.to) {
            this.violation(`n${msg.from} voted twice in term ${msg.term}: for n${previous} and for n${msg.to}`);
          }
        }
        break;
      case 'RequestVote':
        break;
    }
  }

  /**
   * `view` restored its state machine from a snapshot at `index`/`term` (installed from the leader, or
   * its own on restart): the next apply must be `index + 1`, and the snapshot must cover a committed
   * prefix that agrees with every other server's.
   */
  restored(view: NodeView, index: number, term: number): void {
    const w = this.watches.get(view.id)!;
    if (index > view.commitIndex) this.violation(`n${view.id} restored a snapshot at ${index}, above its commit index ${view.commitIndex}`);
    const record = this.committed[index];
    if (record !== undefined && record.term !== term) {
      this.violation(`State Machine Safety: n${view.id} restored a snapshot at ${index}/${term} but n${record.firstAppliedBy} applied ${index}/${record.term}`);
    }
    w.nextApply = index + 1;
  }

  /** `view` applies `entry` to its state machine. */
  applied(view: NodeView, entry: Entry): void {
    const id = view.id;
    const w = this.watches.get(id)!;
    const index = entry.index;
    if (index !== w.nextApply) this.violation(`n${id} applied index ${index}, expected ${w.nextApply} (applies must be in order, gapless, once)`);
    w.nextApply = index + 1;
    if (index > view.commitIndex) this.violation(`n${id} applied index ${index} above its commit index ${view.commitIndex}`);
    const digest = entryDigest(entry);
    const record = this.committed[index];
    if (record === undefined) {
      this.committed[index] = { term: entry.term, digest, commitTerm: view.term, firstAppliedBy: id };
      if (index > this.maxCommitted) this.maxCommitted = index;
      for (const leader of this.liveViews()) {
        if (leader.role === 'leader' && leader.term > view.term) this.checkLeaderHolds(leader, index, this.committed[index]!);
      }
      return;
    }
    if (record.term !== entry.term || record.digest !== digest) {
      this.violation(
        `State Machine Safety: n${id} applied ${index}/${entry.term} but n${record.firstAppliedBy} applied ${index}/${record.term}${
          record.term === entry.term ? ' with different content' : ''
        }`,
      );
      return;
    }
    if (view.term < record.commitTerm) record.commitTerm = view.term;
  }

  // ------------------------------------------------------------------ internals

  private claimLeadership(id: NodeId, term: number, how: string): void {
    const leader = this.leaders.get(term);
    if (leader === undefined) this.leaders.set(term, id);
    else if (leader !== id) this.violation(`Election Safety: two leaders in term ${term}: n${leader} and n${id} (n${id} ${how})`);
  }

  /** Leader Completeness (§5.4): a new leader holds every entry committed in an earlier term. */
  private checkNewLeader(view: NodeView): void {
    for (let index = 1; index <= this.maxCommitted; index++) {
      const record = this.committed[index];
      if (record !== undefined && record.commitTerm < view.term && !this.checkLeaderHolds(view, index, record)) return;
    }
  }

  private checkLeaderHolds(view: NodeView, index: number, record: CommittedRecord): boolean {
    // Compacted into the leader's snapshot: a snapshot covers only committed entries, and restoring one
    // that disagrees with what was applied is reported by restored() and the shadow logs.
    if (index <= view.logStartIndex) return true;
    const entry = view.entryAt(index);
    if (entry !== undefined && entry.term === record.term && entryDigest(entry) === record.digest) return true;
    this.violation(
      `Leader Completeness: n${view.id} is leader of term ${view.term} but its log ${
        entry === undefined ? `ends at ${view.lastIndex}, without` : `has ${index}/${entry.term} instead of`
      } committed entry ${index}/${record.term} (applied by n${record.firstAppliedBy}, committed by term ${record.commitTerm})`,
    );
    return false;
  }

  /**
   * Starts a shadow log at a snapshot's `index`/`term`: its prefix digest is that of the log some
   * server held up to there (Log Matching makes it unique); a snapshot of an entry no log ever held
   * is a violation.
   */
  private rebase(id: NodeId, w: NodeWatch, index: number, term: number, how: string): void {
    const first = this.seen[index]?.get(term);
    if (first === undefined) this.violation(`n${id} ${how} at ${index}/${term}, an entry no server's log ever held`);
    w.shadowBase = index;
    w.shadowTerm = [term];
    w.shadowPrefix = [first?.prefix ?? 0];
  }

  /** Extends a shadow log by one entry and checks Log Matching against every log seen so far. */
  private shadowAppend(id: NodeId, w: NodeWatch, entry: Entry): boolean {
    const expected = w.shadowBase + w.shadowTerm.length;
    if (entry.index !== expected) {
      this.violation(`n${id}'s log would get entry ${entry.index} after index ${expected - 1} (gap or overlap)`);
      return false;
    }
    const previousTerm = w.shadowTerm[w.shadowTerm.length - 1]!;
    if (entry.term < previousTerm) {
      this.violation(`n${id}'s log would get ${entry.index}/${entry.term} after an entry of term ${previousTerm} (terms must not decrease)`);
    }
    const digest = entryDigest(entry);
    const prefix = chainDigest(w.shadowPrefix[w.shadowPrefix.length - 1]!, digest);
    w.shadowTerm.push(entry.term);
    w.shadowPrefix.push(prefix);
    let byTerm = this.seen[entry.index];
    if (byTerm === undefined) {
      byTerm = new Map();
      this.seen[entry.index] = byTerm;
    }
    const first = byTerm.get(entry.term);
    if (first === undefined) {
      byTerm.set(entry.term, { digest, prefix, node: id });
    } else if (first.digest !== digest) {
      this.violation(`Log Matching: n${id} and n${first.node} hold different entries at ${entry.index}/${entry.term}`);
      return false;
    } else if (first.prefix !== prefix) {
      this.violation(`Log Matching: n${id} and n${first.node} both hold ${entry.index}/${entry.term} but their logs differ before it`);
      return false;
    }
    return true;
  }
}

function voteKey(term: number, node: NodeId): number {
  return term * 0x10000 + node;
}
