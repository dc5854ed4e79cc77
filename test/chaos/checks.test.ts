import { describe, expect, it } from 'vitest';
import { runChecks, type CheckInput, type LogRow, type StoredState } from './checks.js';
import type { RecordedOp } from './workload.js';

/**
 * The verdicts of a chaos run on made-up stores, so that each one is seen to fail when it should:
 * with compaction the committed log is put back together from what the stores still hold and from
 * their shadows (every entry they ever stored), and snapshots are checked against its replay.
 */
const put = (index: number, term: number, key: string, value: string): LogRow => ({
  index,
  term,
  type: 'command',
  command: Buffer.from(JSON.stringify({ op: 'put', key, value })),
  config: null,
});

/** The committed log of the examples: ten puts, term 1 up to 5, term 2 after. */
const LOG: LogRow[] = Array.from({ length: 10 }, (_, i) => put(i + 1, i < 5 ? 1 : 2, `k${i % 3}`, `v${i + 1}`));

/** The key-value map after `index` (what a snapshot there must hold), in the sample's snapshot envelope. */
function snapshotAt(index: number, tamper?: (map: Map<string, string>) => void): Buffer {
  const map = new Map<string, string>();
  for (const e of LOG.slice(0, index)) {
    const c = JSON.parse(e.command.toString()) as { key: string; value: string };
    map.set(c.key, c.value);
  }
  tamper?.(map);
  const sessions = Buffer.from(JSON.stringify({ sessions: [], expired: [] }));
  const header = Buffer.alloc(9);
  Buffer.from('RSNP').copy(header);
  header[4] = 1;
  header.writeUInt32BE(sessions.length, 5);
  return Buffer.concat([header, sessions, Buffer.from(JSON.stringify([...map]))]);
}

function store(database: string, nodeId: number, o: Partial<StoredState> & { from?: number; to?: number; shadowFrom?: number; maxCommitSeen?: number }): StoredState {
  const from = o.from ?? 1;
  const to = o.to ?? 10;
  return {
    incarnation: { nodeId, number: 0, database, maxCommitSeen: o.maxCommitSeen ?? 0 },
    entries: o.entries ?? LOG.slice(from - 1, to),
    logStart: o.logStart ?? { index: from - 1, term: from > 1 ? LOG[from - 2]!.term : 0 },
    shadow: o.shadow ?? LOG.slice((o.shadowFrom ?? 1) - 1, to),
    pinnedTo: o.pinnedTo ?? 0,
    snapshotWrites: o.snapshotWrites ?? [],
    violations: o.violations ?? [],
    audit: [],
    ...(o.snapshot ? { snapshot: o.snapshot } : {}),
    ...(o.hard ? { hard: o.hard } : {}),
  };
}

function ack(id: number, key: string, value: string): RecordedOp {
  return { id, clientId: 1, key, kind: 'write', value, invoke: id, complete: id + 0.5, outcome: 'ok', node: 1, status: '200' };
}

/** Two final members, both compacted (A up to 6 with a snapshot at 8, B up to 4 with one at 4), and an old incarnation C. */
function healthy(): CheckInput {
  const a = store('a', 1, { from: 7, pinnedTo: 8, snapshot: { index: 8, term: 2, data: snapshotAt(8) }, snapshotWrites: [{ index: 8, term: 2, kind: 'taken', matched: true }] });
  const b = store('b', 2, { from: 5, shadowFrom: 5, snapshot: { index: 4, term: 1, data: snapshotAt(4) }, snapshotWrites: [{ index: 4, term: 1, kind: 'installed', matched: false }] });
  const c = store('c', 3, { to: 3, hard: { term: 1, vote: 1, commit: 3 } });
  return {
    history: [ack(1, 'k1', 'v2'), ack(2, 'k2', 'v9')],
    states: [a, b, c],
    finalMembers: [
      { database: 'a', commitIndex: 10 },
      { database: 'b', commitIndex: 10 },
    ],
    leadersByTerm: new Map(),
    checkTimeoutMs: 5_000,
    finalReads: new Map(),
    commitBeforeFinalReads: 10,
    snapshotEvery: 4,
    trailingEntries: 2,
  };
}

describe('chaos verdicts with log compaction', () => {
  it('accept consistent compacted stores, counting what only the shadows still hold', () => {
    const report = runChecks(healthy());
    expect(report.logAgreement.problems).toEqual([]);
    expect(report.snapshots.problems).toEqual([]);
    expect(report.lost).toEqual([]);
    expect(report.logAgreement.committedIndex).toBe(10);
    expect(report.logAgreement.fromShadowsOnly).toBe(1); // index 4: compacted in A and B, never stored by C
    expect(report.snapshots).toMatchObject({ taken: 1, installed: 1, verified: 2 });
  });

  it('find a shadowed committed entry that differs from another copy', () => {
    const input = healthy();
    input.states[2]!.shadow[1] = put(2, 1, 'k1', 'other');
    expect(runChecks(input).logAgreement.problems.join('\n')).toMatch(/committed index 2/);
  });

  it('find a committed entry that no store or shadow holds, and the acknowledged write it carried', () => {
    const input = healthy();
    input.states[0]!.shadow = LOG.slice(2); // A forgot 1..2; C does not vouch for what it never committed
    input.states[2]!.hard = { term: 1, vote: 1, commit: 0 };
    const report = runChecks(input);
    expect(report.logAgreement.problems.join('\n')).toMatch(/2 committed entries are in no store or shadow/);
    expect(report.lost.map((l) => l.value)).toEqual(['v2']);
  });

  it('find a snapshot whose contents are not the replay of the committed log at its index', () => {
    const input = healthy();
    input.states[0]!.snapshot = { index: 8, term: 2, data: snapshotAt(8, (m) => m.set('k0', 'nope')) };
    expect(runChecks(input).snapshots.problems.join('\n')).toMatch(/its snapshot at 8 holds/);
  });

  it('find a compacted prefix no snapshot covers, a gap, and a log start of the wrong term', () => {
    const input = healthy();
    delete input.states[1]!.snapshot;
    input.states[0]!.entries = [LOG[6]!, LOG[8]!, LOG[9]!];
    input.states[0]!.logStart = { index: 6, term: 1 };
    const problems = runChecks(input).logAgreement.problems.join('\n');
    expect(problems).toMatch(/compacted up to 4 but holds no snapshot/);
    expect(problems).toMatch(/stored log has 9 where 8 was expected/);
    expect(problems).toMatch(/log starts after 6\/term 1, the committed log has term 2/);
  });

  it('find a final member whose log is not compacted', () => {
    const input = healthy();
    const long = [...LOG, ...Array.from({ length: 110 }, (_, i) => put(i + 11, 2, 'k9', `u${i}`))]; // beyond the commit index: not compared
    input.states[1] = store('b', 2, { entries: long, shadow: long });
    const report = runChecks(input);
    expect(report.logAgreement.problems).toEqual([]);
    expect(report.snapshots.storedBound).toBe(106); // 4 + 2 + at least 100 of slack
    expect(report.snapshots.problems.join('\n')).toMatch(/stores 120 entries \(1\.\.\), more than 106/);
  });

  it('report what the triggers saw replaced', () => {
    const input = healthy();
    input.states[0]!.violations = ['entry 7 (term 2 command) at or below an own snapshot (at 8) replaced by term 3 command'];
    expect(runChecks(input).logAgreement.problems.join('\n')).toMatch(/replaced by term 3/);
  });
});

describe('chaos verdicts on learners', () => {
  it('find a learner that voted for itself before its promotion was asked for, and allow later votes and votes for others', () => {
    const input = healthy();
    const learner = input.states[2]!;
    learner.incarnation.learner = { since: 1_000, promoteRequestedAt: 5_000 };
    learner.audit = [
      { term: 2, vote: 1, at: 2_000 }, // for another candidate (one with a stale configuration may ask): allowed
      { term: 3, vote: 0, at: 3_000 },
      { term: 4, vote: 3, at: 6_000 }, // after the promotion was asked for: a voter may campaign
    ];
    let report = runChecks(input);
    expect(report.learners).toEqual({ incarnations: 1, votesForOthers: 1, problems: [] });
    learner.audit.splice(2, 0, { term: 3, vote: 3, at: 4_000 });
    report = runChecks(input);
    expect(report.learners.problems.join('\n')).toMatch(/c \(node 3\): a learner voted for itself in term 3 3\.00 s after .*, 1\.00 s before its promotion was asked for/);
    delete learner.incarnation.learner.promoteRequestedAt;
    expect(runChecks(input).learners.problems.join('\n')).toMatch(/in term 4 .*never promoted/);
  });
});
