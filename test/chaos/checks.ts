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
 * 4. Log agreement, with compaction: the committed log is put back together from what every node
 *    incarnation stores (raft_log_entries, from its log start on) and from a shadow of every entry it
 *    ever stored (a trigger, see postgres.ts: compaction deletes entries, not their shadow), taking an
 *    entry as committed where the incarnation is known to have committed it (the commit index it
 *    reported or stored, its own snapshots). Every such copy of an index must be the same entry (term,
 *    type, bytes, configuration), no committed index may be missing, and each incarnation's stored log
 *    must be gapless from its log start, with the compacted prefix covered by a stored snapshot whose
 *    index/term are the committed log's there, and whose contents (the key-value map) are what the
 *    replay of the committed log holds at that index.
 * 5. One vote per term: the audit of every (term, vote) a node stored (a trigger on raft_hard_state)
 *    never shows two different votes in one term, a forgotten vote, or a term going back.
 * 6. Election safety: no two nodes ever reported being leader of the same term.
 * 6b. Learners: an incarnation started empty to be added as a learner never voted for itself (the
 *    audit: a campaign persists its own vote) before the harness asked for its promotion.
 * 7. Bounded log: every final member stores at most SNAPSHOT_EVERY + the trailing entries kept after a
 *    snapshot + a little slack (compaction works), and the counts of snapshots taken and installed.
 */
import { createHash } from 'node:crypto';
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

export interface StoredSnapshot {
  index: number;
  term: number;
  /** The bytes put back together from the chunks (checked against size and SHA-256), or why not. */
  data?: Buffer;
  error?: string;
}

export interface SnapshotWrite {
  index: number;
  term: number;
  kind: 'taken' | 'installed';
  /** The stored log held (index, term) when the snapshot was written. */
  matched: boolean;
}

export interface StoredState {
  incarnation: Incarnation;
  /** What raft_log_entries still holds, in index order (from logStart.index + 1 on). */
  entries: LogRow[];
  /** Where the stored log starts: entries up to here were compacted (0: never). */
  logStart: { index: number; term: number };
  snapshot?: StoredSnapshot;
  /** Every entry this incarnation ever stored, last version per index (see postgres.ts). */
  shadow: LogRow[];
  /** The index of its latest own snapshot (0: none): shadow entries up to here are committed. */
  pinnedTo: number;
  /** Every snapshot it wrote, in order. */
  snapshotWrites: SnapshotWrite[];
  /** What the triggers found wrong while the node ran (a committed entry replaced). */
  violations: string[];
  hard?: { term: number; vote: number; commit: number };
  /** Every durable (term, vote), with when it was stored (wall clock, ms). */
  audit: { term: number; vote: number; at?: number }[];
  error?: string;
}

const ENTRY_COLUMNS = `e."index"::text AS "index", e."term"::text AS "term", e."type", e."command", e."config"`;

function toRows(rows: { index: string; term: string; type: string; command: Buffer; config: unknown }[]): LogRow[] {
  return rows.map((r) => ({ index: Number(r.index), term: Number(r.term), type: r.type, command: r.command, config: r.config }));
}

export async function readStoredState(pg: PgServer, incarnation: Incarnation): Promise<StoredState> {
  const state: StoredState = { incarnation, entries: [], logStart: { index: 0, term: 0 }, shadow: [], pinnedTo: 0, snapshotWrites: [], violations: [], audit: [] };
  const db = incarnation.database;
  const id = [CLUSTER_ID, incarnation.nodeId];
  try {
    const tables = await pg.query<{ t: string | null; s: string | null }>(db, `SELECT to_regclass('raft_log_entries')::text AS t, to_regclass('raft_snapshots')::text AS s`);
    if (!tables[0]?.t) return state; // the node never got as far as creating its tables
    type Row = { index: string; term: string; type: string; command: Buffer; config: unknown };
    state.entries = toRows(await pg.query<Row>(db, `SELECT ${ENTRY_COLUMNS} FROM raft_log_entries e WHERE e.cluster_id = $1 AND e.node_id = $2 ORDER BY e."index"`, id));
    state.shadow = toRows(await pg.query<Row>(db, `SELECT ${ENTRY_COLUMNS} FROM chaos_log_shadow e WHERE e.node_id = $1 ORDER BY e."index"`, [incarnation.nodeId]));
    const pin = await pg.query<{ p: string }>(db, `SELECT pinned_to::text AS p FROM chaos_pin WHERE node_id = $1`, [incarnation.nodeId]);
    state.pinnedTo = pin[0] ? Number(pin[0].p) : 0;
    const writes = await pg.query<{ index: string; term: string; kind: string; matched: boolean }>(
      db,
      `SELECT a."index"::text AS "index", a.term::text AS term, a.kind, a.matched FROM chaos_snapshot_audit a WHERE a.node_id = $1 ORDER BY a.seq`,
      [incarnation.nodeId],
    );
    state.snapshotWrites = writes.map((w) => ({ index: Number(w.index), term: Number(w.term), kind: w.kind === 'installed' ? 'installed' : 'taken', matched: w.matched }));
    state.violations = (await pg.query<{ detail: string }>(db, `SELECT detail FROM chaos_violations WHERE node_id = $1 ORDER BY seq`, [incarnation.nodeId])).map((v) => v.detail);
    if (tables[0].s) {
      const start = await pg.query<{ i: string; t: string }>(db, `SELECT log_start_index::text AS i, log_start_term::text AS t FROM raft_base_configuration WHERE cluster_id = $1 AND node_id = $2`, id);
      if (start[0]) state.logStart = { index: Number(start[0].i), term: Number(start[0].t) };
      const snap = await pg.query<{ index: string; term: string; size: string; chunks: number; sha256: Buffer }>(
        db,
        `SELECT "index"::text AS "index", term::text AS term, size::text AS size, chunks, sha256 FROM raft_snapshots WHERE cluster_id = $1 AND node_id = $2`,
        id,
      );
      if (snap[0]) {
        const row = snap[0];
        const snapshot: StoredSnapshot = { index: Number(row.index), term: Number(row.term) };
        const chunks = await pg.query<{ chunk: number; data: Buffer }>(db, `SELECT chunk, data FROM raft_snapshot_chunks WHERE cluster_id = $1 AND node_id = $2 ORDER BY chunk`, id);
        const data = Buffer.concat(chunks.map((c) => c.data));
        if (chunks.length !== row.chunks || chunks.some((c, i) => c.chunk !== i)) snapshot.error = `${chunks.length} chunk rows where the metadata says ${row.chunks}`;
        else if (data.length !== Number(row.size)) snapshot.error = `${data.length} bytes where the metadata says ${row.size}`;
        else if (!createHash('sha256').update(data).digest().equals(row.sha256)) snapshot.error = 'SHA-256 mismatch';
        else snapshot.data = data;
        state.snapshot = snapshot;
      }
    }
    const hard = await pg.query<{ term: string; vote: string; commit_index: string }>(db, `SELECT term::text, vote::text, commit_index::text FROM raft_hard_state WHERE cluster_id = $1 AND node_id = $2`, id);
    if (hard[0]) state.hard = { term: Number(hard[0].term), vote: Number(hard[0].vote), commit: Number(hard[0].commit_index) };
    const audit = await pg.query<{ term: string; vote: string; at_ms: string }>(
      db,
      `SELECT term::text, vote::text, (extract(epoch FROM at) * 1000)::text AS at_ms FROM chaos_vote_audit WHERE node_id = $1 ORDER BY seq`,
      [incarnation.nodeId],
    );
    state.audit = audit.map((a) => ({ term: Number(a.term), vote: Number(a.vote), at: Number(a.at_ms) }));
  } catch (error) {
    state.error = (error as Error).message;
  }
  return state;
}

/** The key-value map in a snapshot's bytes (lib/node/snapshot-envelope.ts + the sample's JSON, decoded independently), as sorted JSON. */
export function snapshotKv(data: Buffer): string {
  const magic = [0x52, 0x53, 0x4e, 0x50];
  if (data.length < 9 || magic.some((b, i) => data[i] !== b)) throw new Error('not a snapshot envelope (bad magic)');
  if (data[4] !== 1) throw new Error(`unknown snapshot envelope version ${data[4]}`);
  const sessionsLength = data.readUInt32BE(5);
  const state = data.subarray(9 + sessionsLength);
  const entries = JSON.parse(state.toString('utf8')) as [string, unknown][];
  return kvJson(new Map(entries));
}

function kvJson(map: Map<string, unknown>): string {
  return JSON.stringify([...map].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
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
  logAgreement: {
    committedIndex: number;
    lowestFinalCommit: number;
    incarnationsCompared: number;
    /** Committed indices that only the shadows still hold (compacted in every store). */
    fromShadowsOnly: number;
    /** Copies of committed entries compared (stored and shadowed, every incarnation). */
    copiesCompared: number;
    problems: string[];
  };
  snapshots: {
    /** Snapshots written by the nodes themselves / installed from a leader (every incarnation, from the triggers). */
    taken: number;
    installed: number;
    /** Stored snapshots whose contents were checked against the replay of the committed log. */
    verified: number;
    /** Final members: the most entries one stores, and the bound it must stay under (0: not checked). */
    maxStoredEntries: number;
    storedBound: number;
    problems: string[];
  };
  votes: { termsChecked: number; problems: string[] };
  /**
   * Learner incarnations (started empty to be added as learners): how many, the durable votes they
   * stored before their promotion was asked for (a vote for another candidate is allowed: one whose
   * configuration still lists the id as a voter may ask; for itself it is a campaign, a problem).
   */
  learners: { incarnations: number; votesForOthers: number; problems: string[] };
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
  /** SNAPSHOT_EVERY of the nodes (0: no snapshots) and the entries they keep after one, for the bounded-log check. */
  snapshotEvery: number;
  trailingEntries: number;
}

/** How many entries a final member may store: SNAPSHOT_EVERY + the trailing entries + slack (a batch applied past the threshold, uncommitted entries). */
export function storedEntriesBound(snapshotEvery: number, trailingEntries: number): number {
  return snapshotEvery > 0 ? snapshotEvery + trailingEntries + Math.max(100, Math.ceil(snapshotEvery / 2)) : 0;
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
    logAgreement: { committedIndex: 0, lowestFinalCommit: 0, incarnationsCompared: 0, fromShadowsOnly: 0, copiesCompared: 0, problems: [] },
    snapshots: { taken: 0, installed: 0, verified: 0, maxStoredEntries: 0, storedBound: storedEntriesBound(input.snapshotEvery, input.trailingEntries), problems: [] },
    votes: { termsChecked: 0, problems: [] },
    learners: { incarnations: 0, votesForOthers: 0, problems: [] },
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

  // 4. log agreement. The committed index is the highest a final member reported at the end. Each
  // incarnation vouches for the entries it stores or shadows up to what it is known to have committed
  // (the commit index it reported or stored, its own latest snapshot); every copy of one index must be
  // the same entry, and every committed index must have one.
  const byDb = new Map(states.map((s) => [s.incarnation.database, s]));
  const finals = input.finalMembers.filter((f) => byDb.has(f.database)).sort((a, b) => b.commitIndex - a.commitIndex);
  const problems = report.logAgreement.problems;
  const authority = finals[0] ? byDb.get(finals[0].database)! : undefined;
  const committed = authority ? finals[0]!.commitIndex : 0;
  report.logAgreement.committedIndex = committed;
  report.logAgreement.lowestFinalCommit = finals.length ? Math.min(...finals.map((f) => f.commitIndex)) : 0;
  const finalCommitOf = new Map(input.finalMembers.map((f) => [f.database, f.commitIndex]));
  const who = (s: StoredState) => `${s.incarnation.database} (node ${s.incarnation.nodeId})`;
  if (!authority) problems.push('no final member to take the committed log from');
  else {
    const last = authority.entries.length ? authority.entries[authority.entries.length - 1]!.index : authority.logStart.index;
    if (committed < authority.logStart.index || committed > last) problems.push(`${who(authority)} reported commit index ${committed} but stores ${authority.logStart.index + 1}..${last}`);
  }
  const chosen: (LogRow | undefined)[] = new Array<LogRow | undefined>(committed + 1);
  const chosenFrom: string[] = new Array<string>(committed + 1);
  const fromStore = new Set<number>();
  let disagreements = 0;
  const ordered = authority ? [authority, ...states.filter((s) => s !== authority)] : states;
  for (const s of ordered) {
    if (s.error) {
      problems.push(`${s.incarnation.database}: unreadable: ${s.error}`);
      continue;
    }
    report.logAgreement.incarnationsCompared++;
    for (const v of s.violations) problems.push(`${who(s)}: ${v}`);
    // The stored log: gapless from its start, the compacted prefix covered by a snapshot.
    let expect = s.logStart.index + 1;
    for (const e of s.entries) {
      if (e.index !== expect) {
        problems.push(`${who(s)}: the stored log has ${e.index} where ${expect} was expected (log start ${s.logStart.index})`);
        break;
      }
      expect++;
    }
    if (s.logStart.index > 0 && !s.snapshot) problems.push(`${who(s)}: compacted up to ${s.logStart.index} but holds no snapshot`);
    if (s.snapshot) {
      const last = s.entries.length ? s.entries[s.entries.length - 1]!.index : s.logStart.index;
      if (s.snapshot.index < s.logStart.index || s.snapshot.index > last) problems.push(`${who(s)}: its snapshot at ${s.snapshot.index} is outside its log (${s.logStart.index}..${last})`);
      if (s.snapshot.error) problems.push(`${who(s)}: its snapshot at ${s.snapshot.index} is unreadable: ${s.snapshot.error}`);
    }
    const witness = Math.min(committed, Math.max(finalCommitOf.get(s.incarnation.database) ?? 0, s.incarnation.maxCommitSeen, s.hard?.commit ?? 0, s.pinnedTo));
    const vouch = (row: LogRow, stored: boolean) => {
      if (row.index < 1 || row.index > witness) return;
      report.logAgreement.copiesCompared++;
      if (stored) fromStore.add(row.index);
      const known = chosen[row.index];
      if (!known) {
        chosen[row.index] = row;
        chosenFrom[row.index] = who(s);
      } else if (!sameEntry(known, row) && ++disagreements <= 5) {
        problems.push(`${who(s)} ${stored ? 'stores' : 'stored'} term ${row.term} ${row.type} at committed index ${row.index}, ${chosenFrom[row.index]} term ${known.term} ${known.type}`);
      }
    };
    for (const e of s.entries) vouch(e, true);
    for (const e of s.shadow) vouch(e, false);
  }
  if (disagreements > 5) problems.push(`… ${disagreements} copies of committed entries disagree in all`);
  const missing: number[] = [];
  for (let i = 1; i <= committed; i++) {
    if (!chosen[i]) missing.push(i);
    else if (!fromStore.has(i)) report.logAgreement.fromShadowsOnly++;
  }
  if (missing.length) problems.push(`${missing.length} committed entries are in no store or shadow, e.g. ${missing.slice(0, 5).join(', ')}`);
  const log = chosen.slice(1).filter((e): e is LogRow => e !== undefined);
  // Where each incarnation's log starts and its snapshot: the committed log's terms there.
  const snapshotsToVerify = new Map<number, StoredState[]>();
  for (const s of states) {
    if (s.error) continue;
    if (s.logStart.index > 0 && s.logStart.index <= committed && chosen[s.logStart.index] && chosen[s.logStart.index]!.term !== s.logStart.term) {
      problems.push(`${who(s)}: its log starts after ${s.logStart.index}/term ${s.logStart.term}, the committed log has term ${chosen[s.logStart.index]!.term} there`);
    }
    if (s.snapshot && s.snapshot.index <= committed && chosen[s.snapshot.index]) {
      if (chosen[s.snapshot.index]!.term !== s.snapshot.term) problems.push(`${who(s)}: its snapshot is at ${s.snapshot.index}/term ${s.snapshot.term}, the committed log has term ${chosen[s.snapshot.index]!.term} there`);
      else if (s.snapshot.data) {
        const list = snapshotsToVerify.get(s.snapshot.index) ?? [];
        list.push(s);
        snapshotsToVerify.set(s.snapshot.index, list);
      }
    }
  }

  // 7. snapshots: counts, bounded logs
  for (const s of states) {
    const seen = new Set<string>();
    for (const w of s.snapshotWrites) {
      const key = `${w.kind}/${w.index}`;
      if (seen.has(key)) continue;
      seen.add(key);
      report.snapshots[w.kind]++;
    }
  }
  if (report.snapshots.storedBound > 0) {
    for (const f of input.finalMembers) {
      const s = byDb.get(f.database);
      if (!s || s.error) continue;
      report.snapshots.maxStoredEntries = Math.max(report.snapshots.maxStoredEntries, s.entries.length);
      if (s.entries.length > report.snapshots.storedBound) {
        report.snapshots.problems.push(`${who(s)} stores ${s.entries.length} entries (${s.logStart.index + 1}..), more than ${report.snapshots.storedBound}: its log is not compacted`);
      }
    }
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
  const verifyUpTo = (index: number) => {
    for (const [at, list] of snapshotsToVerify) {
      if (at > index) continue;
      snapshotsToVerify.delete(at);
      const replayed = kvJson(state);
      for (const s of list) {
        try {
          const held = snapshotKv(s.snapshot!.data!);
          report.snapshots.verified++;
          if (held !== replayed) report.snapshots.problems.push(`${who(s)}: its snapshot at ${at} holds ${held.slice(0, 200)}, the replay of the committed log ${replayed.slice(0, 200)}`);
        } catch (error) {
          report.snapshots.problems.push(`${who(s)}: its snapshot at ${at} does not decode: ${(error as Error).message}`);
        }
      }
    }
  };
  for (const entry of decoded) {
    verifyUpTo(entry.index - 1);
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
  verifyUpTo(Infinity);
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

  // 6b. a learner never campaigned: no vote for itself stored before its promotion was asked for
  for (const s of states) {
    const learner = s.incarnation.learner;
    if (!learner) continue;
    report.learners.incarnations++;
    const until = learner.promoteRequestedAt ?? Infinity;
    for (const a of s.audit) {
      if (a.vote === 0 || (a.at !== undefined && a.at >= until)) continue;
      if (a.vote === s.incarnation.nodeId) {
        report.learners.problems.push(
          `${who(s)}: a learner voted for itself in term ${a.term}${a.at !== undefined ? ` ${((a.at - learner.since) / 1000).toFixed(2)} s after it was started to be added as a learner` : ''}${
            learner.promoteRequestedAt === undefined ? ' (never promoted)' : `, ${((until - (a.at ?? 0)) / 1000).toFixed(2)} s before its promotion was asked for`
          }`,
        );
      } else report.learners.votesForOthers++;
    }
  }

  // 6. election safety
  for (const [term, leaders] of input.leadersByTerm) {
    if (leaders.size > 1) report.electionSafety.push(`term ${term} had leaders ${[...leaders].join(' and ')}`);
  }
  return report;
}
