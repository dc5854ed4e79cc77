/**
 * What a leader knows about one follower's log (§5.3 nextIndex/matchIndex), and how it paces sending.
 *
 * `probe`: the leader does not yet know where the logs agree; it sends one AppendEntries and waits for
 * the answer (or the next heartbeat). `replicate`: the logs agree up to `match`; the leader pipelines
 * AppendEntries optimistically, advancing `next` as it sends, with at most a bounded number unanswered.
 * `snapshot`: the entries it needs were compacted; an InstallSnapshot is out and nothing else is sent
 * until it is answered, reported failed, or times out.
 */
export class Progress {
  state: 'probe' | 'replicate' | 'snapshot' = 'probe';
  match = 0;
  /** Probe only: one AppendEntries is out and unanswered. */
  paused = false;
  /** Replicate only: the last index of each unanswered AppendEntries, oldest first. */
  readonly inflight: number[] = [];
  /** Heard from since the last CheckQuorum round (thesis §6.2). */
  recentActive = false;
  /** Heartbeat rounds since the follower last answered while AppendEntries were outstanding. */
  silentHeartbeats = 0;
  /** Snapshot only: the index of the snapshot being sent, and the tick it was sent at. */
  pendingSnapshot = 0;
  snapshotSentAt = 0;

  constructor(public next: number) {}

  becomeProbe(next: number): void {
    this.state = 'probe';
    this.next = Math.max(next, this.match + 1);
    this.paused = false;
    this.inflight.length = 0;
    this.silentHeartbeats = 0;
  }

  /** The logs are known to agree up to `match`: send optimistically from just after it. */
  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.paused = false;
    this.inflight.length = 0;
    this.silentHeartbeats = 0;
  }

  /** An InstallSnapshot of the snapshot at `index` is out: send nothing else until it is settled. */
  becomeSnapshot(index: number, tick: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = index;
    this.snapshotSentAt = tick;
    this.paused = false;
    this.inflight.length = 0;
    this.silentHeartbeats = 0;
  }

  /** Records an acknowledgement up to `index`; returns false if it told nothing new. */
  acknowledge(index: number): boolean {
    while (this.inflight.length > 0 && this.inflight[0]! <= index) this.inflight.shift();
    if (index <= this.match) return false;
    this.silentHeartbeats = 0;
    this.match = index;
    this.next = Math.max(this.next, index + 1);
    return true;
  }

  canSend(maxInflight: number): boolean {
    if (this.state === 'snapshot') return false;
    return this.state === 'probe' ? !this.paused : this.inflight.length < maxInflight;
  }

  /** Records that entries up to `lastIndex` were sent from `next`. */
  sent(lastIndex: number): void {
    if (this.state === 'probe') {
      this.paused = true;
    } else {
      this.inflight.push(lastIndex);
      this.next = lastIndex + 1;
    }
  }
}
