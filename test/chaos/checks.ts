/**
 * The verdicts of a chaos run, from the clients' history and from what the nodes left in PostgreSQL:
 *
 * 1. Linearizable: the history, per key, with the Wing–Gong–Lowe checker (a timeout is a failure).
 * 2. Lost writes: every acknowledged write (a put answered 200, a cas answered `ok: true`) is a
 *    command in the committed log (values are unique, so (key, value) names the operation); and no
 *    operation the client was told certainly failed is there.
 * 3. Applied twice: the committed log is replayed with the semantics of client sessions (thesis §6.3:
 *    a command whose (client id, sequence) was already applied is answered, not applied). A write
 *    applied more than once by that replay is a duplicate (D). Entries the sessions deduplicate are
 *    counted apart: they are harmless retries. The replay must also agree with the cluster: each final
 *    read (through the log, after the workload stopped) must see what the replay says the key held.
 * 4. Log agreement: every node incarnation's committed prefix (what it reported committed, or its
 *    stored commit index) equals the same prefix of the most advanced final member's log, entry by
 *    entry (term, type, bytes, configuration).
 * 5. One vote per term: the audit of every (term, vote) a node stored (a trigger on raft_hard_state)
 *    never shows two different votes in one term, a forgotten vote, or a term going back.
 * 6. Election safety: no two nodes ever reported being leader of the same term.
 */
import { checkLinearizable, type HistoryOp } from '../sim/linearizability.js';
import type { Incarnation } from './nodes.js';
import { CLUSTER_ID } from './nodes.js';
import type { PgServer } from './postgres.js';
import type { RecordedOp } from './workload.js';

export interface LogRow {
  index: number;
  term: number;
  type: string;
  command: Buffer;
  config: unknown;
}

export interface StoredState {
  incarnation: Incarnation;
  entries: LogRow[];
  hard?: { term: number; vote: number; commit: number };
  audit: { term: number; vote: number }[];
  error?: string;
}

export async function readStoredState(pg: PgServer, incarnation: Incarnation): Promise<StoredState> {
  const state: StoredState = { incarnation, entries: [], audit: [] };
  try {
    const tables = await pg.query<{ t: string | null }>(incarnation.database, `SELECT to_regclass('raft_log_entries')::text AS t`);
    if (!tables[0]?.t) return state; // the node never got as far as creating its tables
    const rows = await pg.query<{ index: string; term: string; type: string; command: Buffer; config: unknown }>(
      incarnation.database,
      `SELECT e."index"::text AS "index", e."term"::text AS "term", e."type", e."command", e."config" FROM raft_log_entries e WHERE e.cluster_id = $1 AND e.node_id = $2 ORDER BY e."index"`,
      [CLUSTER_ID, incarnation.nodeId],
    );
    state.entries = rows.map((r) => ({ index: Number(r.index), term: Number(r.term), type: r.type, command: r.command, config: r.config }));
    const hard = await pg.query<{ term: string; vote: string; commit_index: string }>(
      incarnation.database,
      `SELECT term::text, vote::text, commit_index::text FROM raft_hard_state WHERE cluster_id = $1 AND node_id = $2`,
      [CLUSTER_ID, incarnation.nodeId],
    );
    if (hard[0]) state.hard = { term: Number(hard[0].term), vote: Number(hard[0].vote), commit: Number(hard[0].commit_index) };
    const audit = await pg.query<{ term: string; vote: string }>(incarnation.database, `SELECT term::text, vote::text FROM chaos_vote_audit WHERE node_id = $1 ORDER BY seq`, [incarnation.nodeId]);
    state.audit = audit.map((a) => ({ term: Number(a.term), vote: Number(a.vote) }));
  } catch (error) {
    state.error = (error as Error).message;
  }
  return state;
}

// ------------------------------------------------------------------------------------ commands

/** The session header of a command (the envelope of lib/node/command-envelope.ts, decoded independently). */
export interface DecodedEntry {
  index: number;
  session?: { clientId: string; sequence: number };
  command?: { op: string; key?: string; value?: unknown; expected?: unknown };
  undecodable?: string;
}

const MAGIC = [0x89, 0x52, 0x46, 0x01];

export function decodeEntry(row: LogRow): DecodedEntry {
  const bytes = row.command;
  let payload = bytes;
  let session: DecodedEntry['session'];
  if (bytes.length >= 5 && MAGIC.every((b, i) => bytes[i] === b)) {
    const flags = bytes[4]!;
    if (flags & 1) {
      if (bytes.length < 5 + 32) return { index: row.index, undecodable: 'truncated session header' };
      session = { clientId: bytes.subarray(5, 21).toString('hex'), sequence: Number(bytes.readBigUInt64BE(21)) };
      payload = bytes.subarray(5 + 32);
    } else payload = bytes.subarray(5);
  }
  try {
    const command = JSON.parse(payload.toString('utf8')) as DecodedEntry['command'];
    return { index: row.index, ...(session ? { session } : {}), ...(command ? { command } : {}) };
  } catch {
    return { index: row.index, ...(session ? { session } : {}), undecodable: `not JSON: ${payload.subarray(0, 40).toString('hex')}` };
  }
}

// ------------------------------------------------------------------------------------ report

export interface ChaosChecks {
  ops: number;
  outcomes: { ok: number; fail: number; unknown: number };
  linearizable: boolean;
  linearizabilityTimedOut: boolean;
  linearizabilityExplanation?: string;
  lost: { id: number; key: string; value: string; kind: string; node: number }[];
  failedButCommitted: { id: number; key: string; value: string; index: number }[];
  duplicates: { key: string; value: string; indices: number[]; sessions: string[] }[];
  /** Log entries that repeat a (client, sequence) already applied: answered from the session table. */
  deduplicatedRetries: number;
  finalStateMismatches: string[];
  logAgreement: { committedIndex: number; lowestFinalCommit: number; incarnationsCompared: number; problems: string[] };
  votes: { termsChecked: number; problems: string[] };
  electionSafety: string[];
  undecodable: number;
  /** How often each answer (HTTP status and code, or network error) was seen. */
  statuses: Record<string, number>;
}

export interface CheckInput {
  history: RecordedOp[];
  states: StoredState[];
  /** The final members' incarnations and the commit index each reported at the end. */
  finalMembers: { database: string; commitIndex: number }[];
  leadersByTerm: Map<number, Set<number>>;
  checkTimeoutMs: number;
  /** Final reads (key → the read op) and the leader's commit index just before they were issued. */
  finalReads: Map<string, RecordedOp>;
  commitBeforeFinalReads: number;
}

function sameEntry(a: LogRow, b: LogRow): boolean {
  return a.term === b.term && a.type === b.type && a.command.equals(b.command) && JSON.stringify(a.config ?? null) === JSON.stringify(b.config ?? null);
}

export function runChecks(input: CheckInput): ChaosChecks {
  const { history, states } = input;
  const report: ChaosChecks = {
    ops: history.length,
    outcomes: { ok: 0, fail: 0, unknown: 0 },
    linearizable: false,
    linearizabilityTimedOut: false,
    lost: [],
    failedButCommitted: [],
    duplicates: [],
    deduplicatedRetries: 0,
    finalStateMismatches: [],
    logAgreement: { committedIndex: 0, lowestFinalCommit: 0, incarnationsCompared: 0, problems: [] },
    votes: { termsChecked: 0, problems: [] },
    electionSafety: [],
    undecodable: 0,
    statuses: {},
  };
  for (const op of history) {
    report.outcomes[op.outcome]++;
    const status = op.status.startsWith('500') && op.error ? `${op.status} (${op.error.replace(/[0-9a-f]{32}/g, '…').slice(0, 60)})` : op.status;
    report.statuses[status] = (report.statuses[status] ?? 0) + 1;
  }

  // 1. linearizability
  const ops: HistoryOp[] = history.map((op) => ({
    id: op.id,
    clientId: op.clientId,
    key: op.key,
    kind: op.kind,
    ...(op.value !== undefined ? { value: op.value } : {}),
    ...(op.kind === 'cas' ? { expected: op.expected ?? null } : {}),
    invoke: op.invoke,
    complete: op.outcome === 'ok' || op.outcome === 'fail' ? op.complete : Infinity,
    outcome: op.outcome,
    ...(op.outcome === 'ok' && op.result !== undefined ? { result: op.result } : {}),
  }));
  const lin = checkLinearizable(ops, { timeoutMs: input.checkTimeoutMs });
  report.linearizable = lin.ok;
  report.linearizabilityTimedOut = lin.timedOut;
  if (lin.explanation) report.linearizabilityExplanation = lin.explanation;
  else if (lin.timedOut) report.linearizabilityExplanation = `the check ran out of its ${input.checkTimeoutMs} ms budget (counted as a failure)`;

  // 4. log agreement: the authority is the final member that reported the highest commit index.
  const byDb = new Map(states.map((s) => [s.incarnation.database, s]));
  const finals = input.finalMembers.filter((f) => byDb.has(f.database)).sort((a, b) => b.commitIndex - a.commitIndex);
  const problems = report.logAgreement.problems;
  const authority = finals[0] ? byDb.get(finals[0].database)! : undefined;
  const committed = authority ? finals[0]!.commitIndex : 0;
  report.logAgreement.committedIndex = committed;
  report.logAgreement.lowestFinalCommit = finals.length ? Math.min(...finals.map((f) => f.commitIndex)) : 0;
  if (!authority) problems.push('no final member to take the committed log from');
  else if (authority.entries.length < committed || authority.entries[committed - 1]?.index !== committed) {
    problems.push(`node ${authority.incarnation.nodeId} reported commit index ${committed} but stores ${authority.entries.length} entries`);
  }
  const log = authority ? authority.entries.slice(0, committed) : [];
  for (const s of states) {
    if (s.error) {
      problems.push(`${s.incarnation.database}: unreadable: ${s.error}`);
      continue;
    }
    const final = input.finalMembers.find((f) => f.database === s.incarnation.database);
    let bound = final ? final.commitIndex : Math.max(s.incarnation.maxCommitSeen, s.hard?.commit ?? 0);
    if (final && s.entries.length < bound) problems.push(`${s.incarnation.database}: final member reported commit ${bound} but stores only ${s.entries.length} entries`);
    bound = Math.min(bound, s.entries.length, log.length);
    for (let i = 0; i < bound; i++) {
      const mine = s.entries[i]!;
      if (mine.index !== i + 1) {
        problems.push(`${s.incarnation.database}: gap in the stored log at index ${i + 1}`);
        break;
      }
      if (!sameEntry(mine, log[i]!)) {
        problems.push(
          `${s.incarnation.database} (node ${s.incarnation.nodeId}) differs from the committed log at index ${i + 1}: term ${mine.term} ${mine.type} vs term ${log[i]!.term} ${log[i]!.type}`,
        );
        break;
      }
    }
    report.logAgreement.incarnationsCompared++;
  }

  // 2 + 3. replay the committed log with session semantics
  const decoded = log.filter((e) => e.type === 'command').map(decodeEntry);
  const appliedSessions = new Set<string>();
  const writes = new Map<string, { indices: number[]; sessions: string[]; applied: number }>();
  const state = new Map<string, unknown>();
  const valuesSince = new Map<string, Set<string>>(); // key → JSON of every value it held at or after commitBeforeFinalReads
  const snapshot = (key: string) => {
    let set = valuesSince.get(key);
    if (!set) valuesSince.set(key, (set = new Set()));
    set.add(state.has(key) ? JSON.stringify(state.get(key)) : 'null');
  };
  let snapshotted = false;
  const takeSnapshotOfAll = () => {
    snapshotted = true;
    for (const key of input.finalReads.keys()) snapshot(key);
  };
  for (const entry of decoded) {
    if (!snapshotted && entry.index > input.commitBeforeFinalReads) takeSnapshotOfAll();
    if (entry.undecodable || !entry.command) {
      report.undecodable++;
      continue;
    }
    const c = entry.command;
    const sessionKey = entry.session ? `${entry.session.clientId}/${entry.session.sequence}` : undefined;
    const duplicate = sessionKey !== undefined && appliedSessions.has(sessionKey);
    if (sessionKey) appliedSessions.add(sessionKey);
    if ((c.op === 'put' || c.op === 'cas') && c.key !== undefined) {
      const id = `${c.key}\u0000${JSON.stringify(c.value)}`;
      let w = writes.get(id);
      if (!w) writes.set(id, (w = { indices: [], sessions: [], applied: 0 }));
      w.indices.push(entry.index);
      w.sessions.push(sessionKey ?? 'none');
      if (!duplicate) w.applied++;
    }
    if (duplicate) {
      report.deduplicatedRetries++;
      continue;
    }
    if (c.key === undefined) continue;
    if (c.op === 'put') state.set(c.key, c.value);
    else if (c.op === 'delete') state.delete(c.key);
    else if (c.op === 'cas') {
      const current = state.has(c.key) ? JSON.stringify(state.get(c.key)) : undefined;
      const expected = c.expected === undefined || c.expected === null ? undefined : JSON.stringify(c.expected);
      if (current === expected) state.set(c.key, c.value);
    }
    if (snapshotted && valuesSince.has(c.key)) snapshot(c.key);
  }
  if (!snapshotted) takeSnapshotOfAll();
  for (const [id, w] of writes) {
    if (w.applied > 1) {
      const [key, value] = id.split('\u0000') as [string, string];
      report.duplicates.push({ key, value: JSON.parse(value) as string, indices: w.indices, sessions: w.sessions });
    }
  }
  const inLog = (key: string, value: string) => writes.get(`${key}\u0000${JSON.stringify(value)}`);
  for (const op of history) {
    if (op.kind === 'read' || op.value === undefined) continue;
    const acked = op.outcome === 'ok' && (op.kind === 'write' || op.result === true);
    const found = inLog(op.key, op.value);
    if (acked && !found) report.lost.push({ id: op.id, key: op.key, value: op.value, kind: op.kind, node: op.node });
    if (op.outcome === 'fail' && found) report.failedButCommitted.push({ id: op.id, key: op.key, value: op.value, index: found.indices[0]! });
  }
  for (const [key, read] of input.finalReads) {
    if (read.outcome !== 'ok') {
      report.finalStateMismatches.push(`final read of ${key} did not answer (${read.status})`);
      continue;
    }
    const seen = JSON.stringify(read.result ?? null);
    const expected = valuesSince.get(key) ?? new Set<string>();
    if (!expected.has(seen)) report.finalStateMismatches.push(`${key}: the cluster answered ${seen}, the replay of the committed log holds ${[...expected].join(' or ')}`);
  }

  // 5. one vote per term
  for (const s of states) {
    let last: { term: number; vote: number } | undefined;
    const terms = new Set<number>();
    for (const a of s.audit) {
      terms.add(a.term);
      if (last) {
        if (a.term < last.term) report.votes.problems.push(`${s.incarnation.database}: term went back from ${last.term} to ${a.term}`);
        else if (a.term === last.term && last.vote !== 0 && a.vote !== last.vote) {
          report.votes.problems.push(`${s.incarnation.database} (node ${s.incarnation.nodeId}): voted for ${last.vote} and then ${a.vote === 0 ? 'forgot it' : `for ${a.vote}`} in term ${a.term}`);
        }
      }
      last = a;
    }
    report.votes.termsChecked += terms.size;
  }

  // 6. election safety
  for (const [term, leaders] of input.leadersByTerm) {
    if (leaders.size > 1) report.electionSafety.push(`term ${term} had leaders ${[...leaders].join(' and ')}`);
  }
  return report;
}
