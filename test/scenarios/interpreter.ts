/**
 * A small interpreter for scenario files in the spirit of etcd-io/raft's data-driven tests.
 *
 * A scenario file (`test/scenarios/testdata/*.txt`) is a sequence of blocks
 *
 *     command arg key=value key=(1,2,3)
 *     ----
 *     expected output, one line per event
 *
 * separated by blank lines; lines starting with `#` are comments. The interpreter runs each command
 * on an in-process cluster of {@link RaftCore} engines and compares what it prints with the expected
 * output. Nothing happens behind the script's back: no message moves until a command delivers it, no
 * clock advances until a command ticks, and every engine's `random()` is a fixed number, so the same
 * file always produces the same trace.
 *
 * Commands (node ids are positive integers; `N...` means one or more):
 *
 * - `add-nodes K [voters=(1,2,3)] [election=10] [heartbeat=1] [prevote=true] [checkquorum=true]
 *   [max-entries=] [max-inflight=] [catch-up=] [random=0 | random=(r1,r2,...)] [log=(terms...) term= vote= commit=]`:
 *   K new nodes with the next ids. Without `voters` they join later (no configuration until a leader
 *   sends one). `random` is the node's fixed `random()`, so its election timeout is E + ⌊r·E⌋. `log=`
 *   etc. start the node from a prepared disk (entries are commands "x" of the given terms).
 * - `tick N [k]`, `tick-election N...` (the node's whole election timeout: a follower times out exactly
 *   once, a leader makes exactly one CheckQuorum check), `tick-heartbeat N...`;
 * - `campaign N`: ticks a follower until it becomes (pre-)candidate, or a candidate until its next term;
 * - `propose N data`, `propose-conf-change N voters=(...)` (an engine error is printed as `error: …`);
 * - `process-ready N...`: persist to the node's disk, queue the messages, apply, advance;
 * - `deliver-msgs [from=(..)] [to=(..)] [type=(..)] [reverse] [count=k] [drop]`: deliver (or drop) the
 *   queued messages that match, recipient by recipient in id order, oldest first unless `reverse`;
 * - `stabilize [N...]`: repeat process-ready and deliver-msgs on those nodes (default all) until quiet;
 * - `partition (1,2) (3)`: only nodes of one group can talk (nodes not listed are alone); queued
 *   messages across groups are dropped. `heal` undoes it;
 * - `crash N...` (everything not on the node's disk is lost, including its queued messages),
 *   `restart N...` (a new RaftCore from the disk);
 * - `status [N...]`, `raft-log N`, `log-level all|brief|none` (brief: no messages and persists).
 *
 * The trace notation (see {@link formatMessage} and friends):
 *
 * - `t/i` is "term t, index i" everywhere: an entry `2/5 cmd:foo`, a log position `prev=2/5`, `last=2/5`;
 * - `1->2 AppendEntries term=2 prev=1/3 commit=3 entries=[2/4 noop, 2/5 cmd:foo]` (no `entries` on a heartbeat);
 * - `2->1 AppendEntriesResponse term=2 ok match=5`, or `reject rejected=4 hint=1/3` where the hint is the
 *   follower's term at the rejected index and the first index it holds of that term (`0/i`: its log ends at
 *   i-1); no hint means the request came from a stale term;
 * - `1->2 RequestVote term=3 last=2/5 prevote`, `2->1 RequestVoteResponse term=3 granted prevote`;
 * - `1 became leader at term 2`, `2 moved to term 3`, `2 learned leader 1` (role, term, leader changes, as they happen);
 * - `1 persist hs term=2 vote=1 commit=0 ; truncate 4 ; append 2/4..2/5` (what reached the node's disk);
 * - `1 apply 1/1 noop, 1/2 cmd:foo` (committed entries handed to the state machine);
 * - a message that cannot be sent because of a partition or a crashed target is printed with `(dropped: …)`.
 *
 * The interpreter also checks a few safety properties on every step and prints `BUG: …` when one breaks
 * (two leaders in a term, two different entries applied at one index, a vote changed within a term,
 * a term going backwards, a gap in what a node applies or appends to its disk).
 */
import { RaftCore } from '../../lib/core/raft.js';
import { ConfigurationChangeError, RaftError } from '../../lib/core/errors.js';
import type { Configuration, Entry, HardState, Message, NodeId, RaftCoreOptions, Role } from '../../lib/core/types.js';

// ------------------------------------------------------------------------------------------ file format

/** A run of comment / blank lines, kept verbatim. */
interface TextSegment {
  readonly kind: 'text';
  readonly lines: string[];
}

/** One `command` / `----` / expected output block. */
interface BlockSegment {
  readonly kind: 'block';
  /** 1-based line number of the command. */
  readonly line: number;
  readonly command: string;
  readonly expected: string[];
}

type Segment = TextSegment | BlockSegment;

export class ScenarioSyntaxError extends Error {}

/** Splits a scenario file into comment text and command blocks. */
export function parseScenario(text: string): Segment[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const segments: Segment[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === '' || line.startsWith('#')) {
      const last = segments.at(-1);
      if (last?.kind === 'text') last.lines.push(line);
      else segments.push({ kind: 'text', lines: [line] });
      i++;
      continue;
    }
    if (lines[i + 1] !== '----') throw new ScenarioSyntaxError(`line ${i + 1}: expected "----" after the command "${line}"`);
    let j = i + 2;
    const expected: string[] = [];
    while (j < lines.length && lines[j]!.trim() !== '') expected.push(lines[j++]!);
    segments.push({ kind: 'block', line: i + 1, command: line, expected });
    i = j;
  }
  return segments;
}

function renderScenario(segments: readonly Segment[], outputs: ReadonlyMap<BlockSegment, readonly string[]>): string {
  const out: string[] = [];
  for (const segment of segments) {
    if (segment.kind === 'text') out.push(...segment.lines);
    else out.push(segment.command, '----', ...(outputs.get(segment) ?? segment.expected));
  }
  return out.join('\n') + '\n';
}

export interface ScenarioResult {
  /** The file as it would read with every expected output replaced by the actual one. */
  readonly actual: string;
  /** The blocks whose output differs, for a readable failure message. */
  readonly mismatches: readonly { line: number; command: string; expected: string; actual: string }[];
}

/** Runs every block of a scenario file on a fresh cluster. */
export function runScenario(text: string): ScenarioResult {
  const segments = parseScenario(text);
  const cluster = new Cluster();
  const outputs = new Map<BlockSegment, string[]>();
  const mismatches: { line: number; command: string; expected: string; actual: string }[] = [];
  for (const segment of segments) {
    if (segment.kind !== 'block') continue;
    let lines: string[];
    try {
      lines = cluster.run(parseCommand(segment.command));
    } catch (err) {
      if (err instanceof ScenarioSyntaxError) throw new ScenarioSyntaxError(`line ${segment.line}: ${err.message}`);
      throw err;
    }
    if (lines.length === 0) lines = ['ok'];
    outputs.set(segment, lines);
    if (lines.join('\n') !== segment.expected.join('\n')) {
      mismatches.push({ line: segment.line, command: segment.command, expected: segment.expected.join('\n'), actual: lines.join('\n') });
    }
  }
  return { actual: renderScenario(segments, outputs), mismatches };
}

// ------------------------------------------------------------------------------------------ commands

/** `name pos pos key=value key=(a,b)`: a positional `(a,b)` has an empty key. */
interface Arg {
  readonly key: string;
  readonly values: string[];
}

interface Command {
  readonly name: string;
  readonly args: Arg[];
}

function parseCommand(line: string): Command {
  const tokens = line.match(/[^\s=()]+=\([^)]*\)|\([^)]*\)|\S+/g) ?? [];
  const [name, ...rest] = tokens;
  const args = rest.map((token): Arg => {
    const eq = token.indexOf('=');
    const key = eq > 0 && !token.startsWith('(') ? token.slice(0, eq) : '';
    const value = key ? token.slice(eq + 1) : token;
    const values = value.startsWith('(') ? value.slice(1, -1).split(',').map((v) => v.trim()).filter((v) => v !== '') : [value];
    return { key, values };
  });
  return { name: name!, args };
}

class Args {
  private readonly used = new Set<Arg>();
  constructor(
    private readonly command: Command,
    private readonly allowed: readonly string[],
  ) {
    for (const arg of command.args) {
      if (arg.key && !allowed.includes(arg.key)) {
        throw new ScenarioSyntaxError(`${command.name}: unknown argument "${arg.key}" (allowed: ${allowed.join(', ') || 'none'})`);
      }
    }
  }
  positional(): string[][] {
    return this.command.args.filter((a) => a.key === '').map((a) => a.values);
  }
  /** Positional words (not parenthesised groups). */
  words(): string[] {
    return this.positional().flat();
  }
  flag(name: string): boolean {
    return this.command.args.some((a) => a.key === '' && a.values.length === 1 && a.values[0] === name);
  }
  get(key: string): string[] | undefined {
    return this.command.args.find((a) => a.key === key)?.values;
  }
  int(key: string, fallback?: number): number | undefined {
    const v = this.get(key);
    if (!v) return fallback;
    return toInt(v[0]!, `${this.command.name} ${key}`);
  }
  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key);
    if (!v) return fallback;
    if (v[0] === 'true') return true;
    if (v[0] === 'false') return false;
    throw new ScenarioSyntaxError(`${this.command.name}: ${key} must be true or false`);
  }
  ids(key: string): NodeId[] | undefined {
    return this.get(key)?.map((v) => toInt(v, `${this.command.name} ${key}`));
  }
}

function toInt(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new ScenarioSyntaxError(`${what}: "${text}" is not an integer`);
  return n;
}

// ------------------------------------------------------------------------------------------ formatting

const decoder = new TextDecoder();
const encoder = new TextEncoder();

export function formatConfig(config: Configuration | undefined): string {
  if (!config) return 'none';
  return config.outgoing ? `new(${config.voters.join(',')})+old(${config.outgoing.join(',')})` : `(${config.voters.join(',')})`;
}

export function formatEntry(e: Entry): string {
  const head = `${e.term}/${e.index}`;
  if (e.type === 'noop') return `${head} noop`;
  if (e.type === 'config') return `${head} conf ${formatConfig(e.config)}`;
  return `${head} cmd:${decoder.decode(e.command)}`;
}

function formatRange(entries: readonly Entry[]): string {
  const first = entries[0]!;
  const last = entries.at(-1)!;
  return entries.length === 1 ? `${first.term}/${first.index}` : `${first.term}/${first.index}..${last.term}/${last.index}`;
}

export function formatMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case 'AppendEntries':
      return `${head} prev=${m.prevLogTerm}/${m.prevLogIndex} commit=${m.leaderCommit}` + (m.entries.length ? ` entries=[${m.entries.map(formatEntry).join(', ')}]` : '');
    case 'AppendEntriesResponse':
      if (m.success) return `${head} ok match=${m.matchIndex}`;
      // A rejection without a hint (conflictIndex 0) answers a request from a stale term.
      return `${head} reject rejected=${m.rejectedIndex}` + (m.conflictIndex > 0 ? ` hint=${m.conflictTerm}/${m.conflictIndex}` : '');
    case 'RequestVote':
      return `${head} last=${m.lastLogTerm}/${m.lastLogIndex}` + (m.preVote ? ' prevote' : '') + (m.transfer ? ' transfer' : '');
    case 'RequestVoteResponse':
      return `${head} ${m.voteGranted ? 'granted' : 'rejected'}` + (m.preVote ? ' prevote' : '');
    case 'TimeoutNow':
      return head;
    case 'InstallSnapshot':
      return `${head} snapshot=${m.snapshot.term}/${m.snapshot.index} conf ${formatConfig(m.snapshot.configuration)}`;
    case 'InstallSnapshotResponse':
      return `${head} match=${m.matchIndex}`;
  }
}

function formatHardState(hs: HardState): string {
  return `term=${hs.term} vote=${hs.vote} commit=${hs.commit}`;
}

function formatLast(entries: readonly Entry[]): string {
  const last = entries.at(-1);
  return last ? `${last.term}/${last.index}` : '0/0';
}

function describeError(err: unknown): string {
  if (err instanceof ConfigurationChangeError) return `error: ConfigurationChangeError reason=${err.reason}: ${err.message}`;
  if (err instanceof RaftError) return `error: ${err.name}: ${err.message}`;
  throw err;
}

// ------------------------------------------------------------------------------------------ trace

/** What a trace line is about; `log-level` decides which kinds are printed. */
type Kind = 'result' | 'error' | 'bug' | 'role' | 'apply' | 'config' | 'persist' | 'msg' | 'node';

const LEVELS = {
  /** Everything. */
  all: new Set<Kind>(['result', 'error', 'bug', 'role', 'apply', 'config', 'persist', 'msg', 'node']),
  /** Role changes, applied entries, membership outcomes, crashes; no messages or persists. */
  brief: new Set<Kind>(['result', 'error', 'bug', 'role', 'apply', 'config', 'node']),
  /** Only what a command prints by itself (status, raft-log, errors). */
  none: new Set<Kind>(['result', 'error', 'bug']),
} as const;

type Level = keyof typeof LEVELS;

class Trace {
  lines: string[] = [];
  level: Level = 'all';
  private header: string | undefined;
  private indent = '';

  emit(kind: Kind, text: string): void {
    if (!LEVELS[this.level].has(kind)) return;
    if (this.header !== undefined) {
      this.lines.push(this.header);
      this.header = undefined;
    }
    this.lines.push(this.indent + text);
  }

  /** Lines emitted by `body` are indented under `header`, which is printed only if one of them is. */
  section(header: string, body: () => void): void {
    this.header = header;
    this.indent = '  ';
    try {
      body();
    } finally {
      this.header = undefined;
      this.indent = '';
    }
  }

  take(): string[] {
    const lines = this.lines;
    this.lines = [];
    return lines;
  }
}

// ------------------------------------------------------------------------------------------ cluster

/** What survives a crash. */
interface Disk {
  hardState: HardState;
  entries: Entry[];
  /** The bootstrap configuration, or undefined for a server that joins later. */
  readonly base: Configuration | undefined;
}

interface SimNode {
  readonly id: NodeId;
  readonly options: RaftCoreOptions;
  /** The node's fixed `random()` value, so its election timeout is E + ⌊r·E⌋. */
  readonly random: number;
  /** The checkers' state, shared by the nodes of one cluster (a file may run several clusters). */
  readonly checks: ClusterChecks;
  readonly disk: Disk;
  /** Undefined while crashed. */
  core: RaftCore | undefined;
  /** Messages sent to this node and not yet delivered, oldest first. */
  inbox: Message[];
  /** Highest index handed to this node's state machine since it (re)started. */
  lastApplied: number;
}

interface ClusterChecks {
  readonly ids: Set<NodeId>;
  /** Election Safety: the one leader of each term. */
  readonly leaderOfTerm: Map<number, NodeId>;
  /** State Machine Safety: what was applied at each index. */
  readonly appliedAt: Map<number, string>;
}

interface Seen {
  readonly role: Role;
  readonly term: number;
  readonly leader: NodeId;
}

const MESSAGE_TYPES: readonly Message['type'][] = ['AppendEntries', 'AppendEntriesResponse', 'RequestVote', 'RequestVoteResponse'];

class Cluster {
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly trace = new Trace();
  /** Partition group of each node; empty when the network is whole. */
  private groups = new Map<NodeId, number>();
  /** Checkers. */
  private readonly clusters: ClusterChecks[] = [];

  run(command: Command): string[] {
    const handler = this.handlers[command.name];
    if (!handler) throw new ScenarioSyntaxError(`unknown command "${command.name}" (known: ${Object.keys(this.handlers).join(', ')})`);
    try {
      handler(command);
    } catch (err) {
      if (err instanceof ScenarioSyntaxError) throw err;
      this.trace.emit('error', describeError(err));
    }
    return this.trace.take();
  }

  private readonly handlers: Record<string, (c: Command) => void> = {
    'add-nodes': (c) => this.addNodes(c),
    campaign: (c) => this.campaign(c),
    tick: (c) => {
      const a = new Args(c, []);
      const [id, count] = a.words();
      this.tick(this.alive(id), count === undefined ? 1 : toInt(count, 'tick count'));
    },
    'tick-election': (c) => {
      for (const id of new Args(c, []).words()) {
        const node = this.alive(id);
        this.tick(node, this.electionTimeoutOf(node));
      }
    },
    'tick-heartbeat': (c) => {
      for (const id of new Args(c, []).words()) {
        const node = this.alive(id);
        this.tick(node, node.options.heartbeatTicks);
      }
    },
    propose: (c) => {
      const [id, ...data] = new Args(c, []).words();
      const node = this.alive(id);
      const { index, term } = this.observe(node, () => node.core!.propose(encoder.encode(data.join(' '))));
      this.trace.emit('result', `${node.id} proposed ${term}/${index} cmd:${data.join(' ')}`);
    },
    'propose-conf-change': (c) => {
      const a = new Args(c, ['voters']);
      const node = this.alive(a.words()[0]);
      const voters = a.ids('voters');
      if (!voters) throw new ScenarioSyntaxError('propose-conf-change needs voters=(...)');
      const id = this.observe(node, () => node.core!.proposeConfiguration(voters));
      this.trace.emit('result', `${node.id} accepted config change #${id} to (${voters.join(',')})`);
    },
    'process-ready': (c) => {
      const ids = new Args(c, []).words();
      const many = ids.length > 1;
      for (const id of ids) {
        const node = this.alive(id);
        if (many) this.trace.section(`> ${node.id} handling Ready`, () => this.processReady(node));
        else this.processReady(node);
      }
    },
    'deliver-msgs': (c) => this.deliverMsgs(c),
    stabilize: (c) => this.stabilize(c),
    partition: (c) => this.partition(c),
    heal: (c) => {
      new Args(c, []);
      this.groups = new Map();
    },
    crash: (c) => {
      for (const id of new Args(c, []).words()) this.crash(this.alive(id));
    },
    restart: (c) => {
      for (const id of new Args(c, []).words()) this.restart(this.node(id));
    },
    status: (c) => {
      const ids = new Args(c, []).words();
      for (const node of ids.length ? ids.map((id) => this.node(id)) : [...this.nodes.values()]) this.trace.emit('result', this.status(node));
    },
    'raft-log': (c) => {
      const node = this.alive(new Args(c, []).words()[0]);
      const core = node.core!;
      const log = core.log();
      if (log.length === 0) this.trace.emit('result', 'empty log');
      for (const entry of log) this.trace.emit('result', formatEntry(entry) + (entry.index <= core.commitIndex ? '' : '  (uncommitted here)'));
    },
    'log-level': (c) => {
      const [level] = new Args(c, []).words();
      if (!level || !(level in LEVELS)) throw new ScenarioSyntaxError(`log-level must be one of ${Object.keys(LEVELS).join(', ')}`);
      this.trace.level = level as Level;
    },
  };

  // ---------------------------------------------------------------- setup

  private addNodes(c: Command): void {
    const a = new Args(c, ['voters', 'election', 'heartbeat', 'prevote', 'checkquorum', 'max-entries', 'max-inflight', 'catch-up', 'random', 'log', 'term', 'vote', 'commit']);
    const count = toInt(a.words()[0] ?? '', 'add-nodes count');
    const voters = a.ids('voters');
    const randoms = (a.get('random') ?? ['0']).map(Number);
    const firstId = Math.max(0, ...this.nodes.keys()) + 1;
    // Nodes bootstrapped with voters of an existing cluster, or joining (no voters), belong to it;
    // otherwise they start a new, independent cluster.
    let checks = voters ? this.clusters.find((k) => voters.some((v) => k.ids.has(v))) : this.clusters.at(-1);
    if (!checks) {
      checks = { ids: new Set(), leaderOfTerm: new Map(), appliedAt: new Map() };
      this.clusters.push(checks);
    }
    for (let k = 0; k < count; k++) {
      const id = firstId + k;
      const random = randoms[Math.min(k, randoms.length - 1)]!;
      if (!(random >= 0 && random < 1)) throw new ScenarioSyntaxError('random must be in [0, 1)');
      const options: RaftCoreOptions = {
        id,
        electionTimeoutTicks: a.int('election', 10)!,
        heartbeatTicks: a.int('heartbeat', 1)!,
        preVote: a.bool('prevote', true),
        checkQuorum: a.bool('checkquorum', true),
        ...(a.get('max-entries') ? { maxEntriesPerAppend: a.int('max-entries') } : {}),
        ...(a.get('max-inflight') ? { maxInflightAppends: a.int('max-inflight') } : {}),
        ...(a.get('catch-up') ? { catchUpTimeoutTicks: a.int('catch-up') } : {}),
        random: () => random,
      };
      // A pre-existing disk (log=(terms of index 1, 2, ...) term= vote= commit=) sets up a history
      // that would take many steps to produce; its entries are commands "x".
      const entries: Entry[] = (a.get('log') ?? []).map((t, i) => ({ index: i + 1, term: toInt(t, 'log term'), type: 'command', command: encoder.encode('x') }));
      const hardState: HardState = { term: a.int('term', entries.at(-1)?.term ?? 0)!, vote: a.int('vote', 0)!, commit: a.int('commit', 0)! };
      const disk: Disk = { hardState, entries, base: voters ? { voters: [...voters].sort((x, y) => x - y) } : undefined };
      checks.ids.add(id);
      const node: SimNode = { id, options, random, checks, disk, core: undefined, inbox: [], lastApplied: 0 };
      this.nodes.set(id, node);
      node.core = this.boot(node);
      const stored = entries.length || hardState.term ? ` disk: ${formatHardState(hardState)} log=[${entries.map((e) => `${e.term}/${e.index}`).join(' ')}]` : '';
      this.trace.emit('result', `${id} started: config=${formatConfig(disk.base)} election=${this.electionTimeoutOf(node)} heartbeat=${options.heartbeatTicks}${stored}`);
    }
  }

  private boot(node: SimNode): RaftCore {
    const { disk } = node;
    return new RaftCore(node.options, {
      hardState: disk.hardState,
      entries: [...disk.entries],
      ...(disk.base ? { baseConfiguration: disk.base } : {}),
      appliedIndex: 0, // the state machine is in memory: a restarted node applies everything again
    });
  }

  private node(text: string | undefined): SimNode {
    const id = toInt(text ?? '', 'node id');
    const node = this.nodes.get(id);
    if (!node) throw new ScenarioSyntaxError(`no node ${id}`);
    return node;
  }

  /** A node that is up; commands on a crashed node are script mistakes. */
  private alive(text: string | undefined): SimNode {
    const node = this.node(text);
    if (!node.core) throw new ScenarioSyntaxError(`node ${node.id} is crashed`);
    return node;
  }

  private electionTimeoutOf(node: SimNode): number {
    const e = node.options.electionTimeoutTicks;
    return e + Math.floor(node.random * e);
  }

  // ---------------------------------------------------------------- engine calls

  /** Runs one call into a node's engine and prints any change of role, term or leader it caused. */
  private observe<T>(node: SimNode, call: () => T): T {
    const core = node.core!;
    const before: Seen = { role: core.role, term: core.term, leader: core.leaderId };
    try {
      return call();
    } finally {
      this.reportChange(node, before);
    }
  }

  private reportChange(node: SimNode, before: Seen): void {
    const core = node.core!;
    const now: Seen = { role: core.role, term: core.term, leader: core.leaderId };
    const leader = now.leader && now.role !== 'leader' ? ` (leader ${now.leader})` : '';
    if (now.role !== before.role) this.trace.emit('role', `${node.id} became ${now.role} at term ${now.term}${leader}`);
    else if (now.term !== before.term) this.trace.emit('role', `${node.id} moved to term ${now.term}${leader}`);
    else if (now.leader !== before.leader) this.trace.emit('role', now.leader ? `${node.id} learned leader ${now.leader}` : `${node.id} forgot leader ${before.leader}`);
    if (now.role === 'leader') {
      const known = node.checks.leaderOfTerm.get(now.term);
      if (known !== undefined && known !== node.id) this.trace.emit('bug', `BUG: election safety: ${node.id} and ${known} are both leaders of term ${now.term}`);
      node.checks.leaderOfTerm.set(now.term, node.id);
    }
  }

  private tick(node: SimNode, count: number): void {
    for (let k = 0; k < count; k++) this.observe(node, () => node.core!.tick());
  }

  /**
   * Ticks a node until it starts an election: a follower until it becomes (pre-)candidate, a
   * candidate until it moves to the next term.
   */
  private campaign(c: Command): void {
    const node = this.alive(new Args(c, []).words()[0]);
    const core = node.core!;
    const start = { role: core.role, term: core.term };
    if (start.role !== 'follower' && start.role !== 'candidate') {
      throw new ScenarioSyntaxError(`campaign: node ${node.id} is ${core.role}; use tick-election`);
    }
    const started = () => core.role !== start.role || core.term !== start.term;
    const limit = 2 * this.electionTimeoutOf(node);
    for (let k = 0; k < limit && !started(); k++) this.observe(node, () => core.tick());
    if (!started()) this.trace.emit('result', `${node.id} did not campaign within ${limit} ticks`);
  }

  // ---------------------------------------------------------------- the driver loop

  /** One Ready, carried out in the documented order: persist, send, apply, advance. */
  private processReady(node: SimNode): void {
    const core = node.core!;
    if (!core.hasReady()) return;
    const rd = core.ready();
    const { disk } = node;

    // 1. persist, atomically
    const parts: string[] = [];
    if (rd.hardState) {
      const old = disk.hardState;
      if (rd.hardState.term < old.term) this.trace.emit('bug', `BUG: ${node.id} persists term ${rd.hardState.term} below its stored term ${old.term}`);
      if (rd.hardState.term === old.term && old.vote !== 0 && rd.hardState.vote !== old.vote) {
        this.trace.emit('bug', `BUG: ${node.id} changes its vote in term ${old.term} from ${old.vote} to ${rd.hardState.vote}`);
      }
      disk.hardState = rd.hardState;
      parts.push(`hs ${formatHardState(rd.hardState)}`);
    }
    if (rd.truncateFrom !== undefined) {
      disk.entries.length = Math.min(disk.entries.length, rd.truncateFrom - 1);
      parts.push(`truncate ${rd.truncateFrom}`);
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!;
      if (first.index !== disk.entries.length + 1) {
        this.trace.emit('bug', `BUG: ${node.id} appends ${first.term}/${first.index} to a disk whose log ends at ${formatLast(disk.entries)}`);
      }
      disk.entries.length = Math.min(disk.entries.length, first.index - 1);
      disk.entries.push(...rd.entries);
      parts.push(`append ${formatRange(rd.entries)}`);
    }
    if (parts.length) this.trace.emit('persist', `${node.id} persist ${parts.join(' ; ')}`);

    // 2. send
    for (const m of rd.messages) this.send(m);

    // 3. apply
    if (rd.committedEntries.length > 0) {
      const first = rd.committedEntries[0]!;
      if (first.index !== node.lastApplied + 1) this.trace.emit('bug', `BUG: ${node.id} applies ${first.index} after ${node.lastApplied}`);
      for (const entry of rd.committedEntries) {
        const text = formatEntry(entry);
        const known = node.checks.appliedAt.get(entry.index);
        if (known !== undefined && known !== text) this.trace.emit('bug', `BUG: state machine safety: ${node.id} applies ${text} where another node applied ${known}`);
        node.checks.appliedAt.set(entry.index, text);
      }
      node.lastApplied = rd.committedEntries.at(-1)!.index;
      this.trace.emit('apply', `${node.id} apply ${rd.committedEntries.map(formatEntry).join(', ')}`);
    }
    for (const o of rd.configurationChanges) {
      this.trace.emit('config', `${node.id} config change #${o.id} ${o.status}${o.reason ? ` (${o.reason})` : ''}: config=${formatConfig(o.configuration)}`);
    }

    // 4. advance
    this.observe(node, () => core.advance(rd));
  }

  private reachable(from: NodeId, to: NodeId): boolean {
    return this.groups.size === 0 || this.groups.get(from) === this.groups.get(to);
  }

  private send(m: Message): void {
    const target = this.nodes.get(m.to);
    const why = !target ? `no node ${m.to}` : !target.core ? `${m.to} is down` : !this.reachable(m.from, m.to) ? 'partition' : undefined;
    if (why) {
      this.trace.emit('msg', `${formatMessage(m)} (dropped: ${why})`);
      return;
    }
    this.trace.emit('msg', formatMessage(m));
    target!.inbox.push(m);
  }

  private deliverMsgs(c: Command): void {
    const a = new Args(c, ['from', 'to', 'type', 'count']);
    const from = a.ids('from');
    const to = a.ids('to');
    const types = a.get('type');
    for (const t of types ?? []) if (!MESSAGE_TYPES.includes(t as Message['type'])) throw new ScenarioSyntaxError(`unknown message type ${t}`);
    const drop = a.flag('drop');
    const reverse = a.flag('reverse');
    for (const w of a.words()) if (w !== 'drop' && w !== 'reverse') throw new ScenarioSyntaxError(`deliver-msgs: unknown flag ${w}`);
    let picked: Message[] = [];
    for (const node of this.nodes.values()) {
      if (to && !to.includes(node.id)) continue;
      for (const m of node.inbox) if ((!from || from.includes(m.from)) && (!types || types.includes(m.type))) picked.push(m);
    }
    if (reverse) picked.reverse();
    const count = a.int('count');
    if (count !== undefined) picked = picked.slice(0, count);
    for (const m of picked) {
      const node = this.nodes.get(m.to)!;
      node.inbox.splice(node.inbox.indexOf(m), 1);
      if (drop) this.trace.emit('msg', `dropped ${formatMessage(m)}`);
      else this.deliver(node, m);
    }
  }

  private deliver(node: SimNode, m: Message): void {
    this.trace.emit('msg', formatMessage(m));
    this.observe(node, () => node.core!.step(m));
  }

  private stabilize(c: Command): void {
    const ids = new Args(c, []).words().map((id) => this.node(id).id);
    const chosen = [...this.nodes.values()].filter((n) => ids.length === 0 || ids.includes(n.id));
    for (let round = 0; ; round++) {
      if (round === 1000) throw new ScenarioSyntaxError('stabilize: still busy after 1000 rounds');
      let busy = false;
      for (const node of chosen) {
        if (!node.core?.hasReady()) continue;
        busy = true;
        this.trace.section(`> ${node.id} handling Ready`, () => this.processReady(node));
      }
      for (const node of chosen) {
        if (!node.core || node.inbox.length === 0) continue;
        busy = true;
        const inbox = node.inbox;
        node.inbox = [];
        this.trace.section(`> ${node.id} receiving messages`, () => {
          for (const m of inbox) this.deliver(node, m);
        });
      }
      if (!busy) return;
    }
  }

  // ---------------------------------------------------------------- faults

  private partition(c: Command): void {
    const groups = new Args(c, []).positional();
    this.groups = new Map();
    groups.forEach((group, g) => {
      for (const id of group) this.groups.set(this.node(id).id, g);
    });
    let next = groups.length;
    for (const id of this.nodes.keys()) if (!this.groups.has(id)) this.groups.set(id, next++);
    for (const node of this.nodes.values()) {
      const kept: Message[] = [];
      for (const m of node.inbox) {
        if (this.reachable(m.from, m.to)) kept.push(m);
        else this.trace.emit('msg', `dropped ${formatMessage(m)}`);
      }
      node.inbox = kept;
    }
  }

  private crash(node: SimNode): void {
    const core = node.core!;
    const lost: string[] = [];
    if (core.hasReady()) {
      const rd = core.ready();
      if (rd.hardState) lost.push(`hs ${formatHardState(rd.hardState)}`);
      if (rd.entries.length) lost.push(`entries ${formatRange(rd.entries)}`);
      if (rd.messages.length) lost.push(`${rd.messages.length} unsent message${rd.messages.length > 1 ? 's' : ''}`);
    }
    if (node.inbox.length) lost.push(`${node.inbox.length} undelivered message${node.inbox.length > 1 ? 's' : ''}`);
    node.core = undefined;
    node.inbox = [];
    this.trace.emit('node', `${node.id} crashed` + (lost.length ? `; lost ${lost.join(', ')}` : ''));
  }

  private restart(node: SimNode): void {
    if (node.core) throw new ScenarioSyntaxError(`node ${node.id} is running; crash it first`);
    node.core = this.boot(node);
    node.lastApplied = 0;
    const hs = node.disk.hardState;
    this.trace.emit('node', `${node.id} restarted from disk: ${formatHardState(hs)} last=${formatLast(node.disk.entries)}`);
  }

  // ---------------------------------------------------------------- inspection

  private status(node: SimNode): string {
    const core = node.core;
    if (!core) return `${node.id}: down (disk ${formatHardState(node.disk.hardState)} last=${formatLast(node.disk.entries)})`;
    const log = core.log();
    const parts = [`${node.id}: ${core.role} term=${core.term} vote=${core.vote}`];
    if (core.role !== 'leader') parts.push(`leader=${core.leaderId}`);
    parts.push(`commit=${core.commitIndex} last=${formatLast(log)} config=${formatConfig(core.configuration)}`);
    if (core.role === 'leader') {
      parts.push(`match=(${[...core.matchIndexes()].sort(([x], [y]) => x - y).map(([id, m]) => `${id}:${m}`).join(',')})`);
    }
    return parts.join(' ');
  }
}
