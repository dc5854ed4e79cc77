/**
 * Named crash points for fault-injection tests (the chaos harness): with
 * `RAFT_FAILPOINTS=name[:probability][,name…]` in the environment, reaching a listed point kills the
 * process with SIGKILL — no cleanup, no flush — with the given probability (default 1). Unset, each
 * check is one Set lookup.
 */
export type FailpointName =
  /** A vote (or term) was persisted, and the reply that carries it was not yet sent. */
  | 'after-vote-persist'
  /** Inside a storage transaction, after the truncation/hard state and before the new entries. */
  | 'mid-batch-persist'
  /** Entries are committed and persisted, and not yet applied. */
  | 'after-commit-before-apply'
  /** A batch holding a configuration entry was persisted, before anything else happened. */
  | 'during-config-change'
  /** The node's own snapshot and compaction were persisted, and the engine does not know yet. */
  | 'after-snapshot-persist'
  /** A snapshot from the leader was persisted, and the state machine not yet restored from it. */
  | 'after-snapshot-install';

const configured = parse(process.env.RAFT_FAILPOINTS);

function parse(text: string | undefined): Map<string, number> {
  const points = new Map<string, number>();
  for (const item of (text ?? '').split(',')) {
    const [name, probability] = item.trim().split(':');
    if (!name) continue;
    const p = probability === undefined ? 1 : Number(probability);
    points.set(name, Number.isFinite(p) ? Math.min(1, Math.max(0, p)) : 1);
  }
  return points;
}

/** Kills this process here if `name` is an enabled failpoint (and its coin says so). */
export function failpoint(name: FailpointName): void {
  if (configured.size === 0) return;
  const probability = configured.get(name);
  if (probability === undefined || Math.random() >= probability) return;
  process.stderr.write(`failpoint ${name}: killing process ${process.pid}\n`);
  process.kill(process.pid, 'SIGKILL');
}
