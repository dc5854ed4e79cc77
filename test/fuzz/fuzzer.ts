/**
 * `npm run fuzz`: hostile traffic against a live 3-node cluster of the sample (see cases.ts for the
 * requests, cluster.ts for the cluster and the state digest). Checks:
 *   - every answer is a 4xx (and the expected one, for signed requests); a 2xx is "accepted", a 5xx
 *     is counted — both are failures, as is a request that gets no answer;
 *   - no node process exits;
 *   - every node's persisted log, term and vote are the same after the traffic as before;
 *   - the cluster still commits commands afterwards, through every node.
 */
import { connect } from 'node:net';
import { DEFAULT_RPC_LIMITS } from '../../lib/nest/raft.constants.js';
import { MAX_ENVELOPE_OVERHEAD } from '../../lib/node/command-envelope.js';
import { http } from '../integration/helpers.js';
import { send, type Reply } from '../security/helpers.js';
import { generate, type FuzzContext, type FuzzRequest } from './cases.js';
import { FuzzCluster, type NodeDigest } from './cluster.js';
import { FuzzRandom } from './prng.js';

export interface FuzzOptions {
  readonly requests: number;
  readonly seed: number;
  readonly concurrency?: number;
  /** Where progress goes (a line at a time). */
  readonly log?: (line: string) => void;
}

export interface FuzzResult {
  readonly requests: number;
  readonly accepted: number;
  readonly serverErrors: number;
  readonly crashes: number;
  readonly noAnswer: number;
  readonly unexpected: number;
  readonly stateUnchanged: boolean;
  readonly committedAfter: boolean;
  readonly ok: boolean;
  /** The last line: `fuzz: N requests, 0 accepted, 0 5xx, 0 crashes, state unchanged: yes`. */
  readonly line: string;
  readonly statuses: Readonly<Record<string, number>>;
  readonly problems: readonly string[];
}

interface Outcome {
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly error?: string;
}

async function deliver(request: FuzzRequest): Promise<Outcome> {
  try {
    if (request.raw) return { ...(await sendRaw(request)), code: undefined };
    const reply: Reply = await send(request.url, {
      method: request.method,
      headers: request.headers,
      ...(request.body ? { body: request.body } : {}),
      ...(request.localAddress ? { localAddress: request.localAddress } : {}),
      ...(request.truncateTo !== undefined ? { truncateTo: request.truncateTo } : {}),
      ...(request.chunked ? { chunked: true } : {}),
      timeoutMs: 15_000,
    });
    return { status: reply.status, code: typeof reply.json?.code === 'string' ? reply.json.code : undefined };
  } catch (error) {
    return { status: undefined, code: undefined, error: (error as Error).message };
  }
}

/** Malformed HTTP on a raw connection: the status of whatever answer comes back. */
function sendRaw(request: FuzzRequest): Promise<{ status: number | undefined; error?: string }> {
  const url = new URL(request.url);
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname, port: Number(url.port), ...(request.localAddress ? { localAddress: request.localAddress } : {}) });
    let text = '';
    const done = (error?: string) => {
      socket.destroy();
      const match = /^HTTP\/1\.[01] ([0-9]{3})/.exec(text);
      resolve(match ? { status: Number(match[1]) } : { status: undefined, error: error ?? `no answer (${JSON.stringify(text.slice(0, 60))})` });
    };
    socket.setTimeout(10_000, () => done('timeout'));
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (/\r\n\r\n/.test(text)) done();
    });
    socket.on('end', () => done());
    socket.on('error', (e) => done(e.message));
    socket.on('connect', () => socket.write(request.raw!));
  });
}

function expected(request: FuzzRequest, outcome: Outcome): boolean {
  if (outcome.status === undefined) return false;
  const statusOk = request.expect === '4xx' ? outcome.status >= 400 && outcome.status < 500 : request.expect.includes(outcome.status);
  return statusOk && (request.expectCode === undefined || outcome.code === request.expectCode);
}

function sameDigests(before: readonly NodeDigest[], after: readonly NodeDigest[]): boolean {
  return before.length === after.length && before.every((b, i) => b.nodeId === after[i]!.nodeId && b.digest === after[i]!.digest);
}

function describeDigests(digests: readonly NodeDigest[], database: boolean): string {
  return digests.map((d) => (database ? `node ${d.nodeId}: ${d.entries} entries, term ${d.term}, vote ${d.vote}, ${d.digest.slice(0, 12)}` : `node ${d.nodeId}: term ${d.term}, commit ${d.entries}`)).join('; ');
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzResult> {
  const log = options.log ?? (() => undefined);
  const concurrency = options.concurrency ?? 16;
  const cluster = new FuzzCluster();
  const problems: string[] = [];
  const statuses: Record<string, number> = {};
  let accepted = 0;
  let serverErrors = 0;
  let noAnswer = 0;
  let unexpected = 0;
  let sent = 0;
  let stateUnchanged = false;
  let committedAfter = false;
  const started = Date.now();
  try {
    log(`fuzz: starting a 3-node cluster of the sample (${cluster.databaseDigest ? 'PostgreSQL: the digest reads every node\'s log, term and vote' : 'embedded PostgreSQL: the digest compares term, commit index and leader from /cluster'})`);
    await cluster.start();
    // Some state worth protecting.
    for (let i = 0; i < 6; i++) {
      const node = cluster.nodes[i % cluster.nodes.length]!;
      const reply = await http('PUT', `${node.url}/kv/seed-${i}`, { value: { i, text: `value ${i}` } });
      if (reply.status !== 200) throw new Error(`seeding the cluster failed: ${reply.status} ${JSON.stringify(reply.body)}`);
    }
    const before = await cluster.settle();
    const views = await cluster.views();
    log(`fuzz: cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s, leader node ${views[0]!.leaderId}, term ${views[0]!.term}; before: ${describeDigests(before, cluster.databaseDigest)}`);

    const ctx: FuzzContext = {
      nodes: cluster.nodes,
      clusterId: cluster.clusterId,
      secret: cluster.secret,
      adminToken: cluster.adminToken,
      term: Math.max(1, views[0]!.term),
      bodyLimitBytes: DEFAULT_RPC_LIMITS.bodyLimitBytes,
      // What the nodes accept on the wire: the command limit plus the session envelope around it.
      maxCommandBytes: DEFAULT_RPC_LIMITS.maxCommandBytes + MAX_ENVELOPE_OVERHEAD,
      maxEntriesPerAppend: DEFAULT_RPC_LIMITS.maxEntriesPerAppend,
    };
    const every = Math.max(100, Math.ceil(options.requests / 10));
    let nextReport = every;
    const fuzzStarted = Date.now();
    const record = (request: FuzzRequest, outcome: Outcome) => {
      sent++;
      const key = outcome.status === undefined ? 'no answer' : String(outcome.status);
      statuses[key] = (statuses[key] ?? 0) + 1;
      if (outcome.status === undefined) noAnswer++;
      else if (outcome.status >= 200 && outcome.status < 300) accepted++;
      else if (outcome.status >= 500) serverErrors++;
      if (!expected(request, outcome)) {
        unexpected++;
        if (problems.length < 20) {
          problems.push(`${request.kind}: ${request.method} ${request.url.slice(0, 120)} answered ${outcome.status ?? outcome.error}${outcome.code ? ` (${outcome.code})` : ''}, expected ${request.expect === '4xx' ? '4xx' : request.expect.join('/')}${request.expectCode ? ` (${request.expectCode})` : ''}`);
        }
      }
      if (sent >= nextReport) {
        nextReport += every;
        const seconds = (Date.now() - fuzzStarted) / 1000;
        log(`fuzz: ${sent}/${options.requests} requests in ${seconds.toFixed(1)} s — ${Object.entries(statuses).map(([s, n]) => `${s}×${n}`).join(' ')}${cluster.alive ? '' : ' — A NODE EXITED'}`);
      }
    };
    let issued = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, worker) => {
        const rng = new FuzzRandom(options.seed, worker);
        while (issued < options.requests) {
          const request = generate(rng, ctx);
          const times = request.repeat ?? 1;
          issued += times + (request.then ? 1 : 0);
          for (let i = 0; i < times; i++) record(request, await deliver(request));
          if (request.then) record(request.then, await deliver(request.then));
        }
      }),
    );

    await new Promise((r) => setTimeout(r, 500));
    const after = await cluster.digests();
    stateUnchanged = sameDigests(before, after);
    if (!stateUnchanged) problems.push(`state changed: before ${describeDigests(before, cluster.databaseDigest)}; after ${describeDigests(after, cluster.databaseDigest)}`);
    else log(`fuzz: state unchanged: ${describeDigests(after, cluster.databaseDigest)}`);

    // The cluster still commits, through every node.
    committedAfter = true;
    for (const [i, node] of cluster.nodes.entries()) {
      const put = await http('PUT', `${node.url}/kv/after-fuzz-${i}`, { value: i });
      const reader = cluster.nodes[(i + 1) % cluster.nodes.length]!;
      const got = await http('GET', `${reader.url}/kv/after-fuzz-${i}`);
      if (put.status !== 200 || got.status !== 200 || got.body?.value !== i) {
        committedAfter = false;
        problems.push(`the cluster did not commit after the fuzzing: PUT via node ${node.id} → ${put.status}, GET via node ${reader.id} → ${got.status} ${JSON.stringify(got.body)}`);
      }
    }
    if (committedAfter) log('fuzz: the cluster still commits commands through every node');
    const errors = cluster.errorLines();
    if (errors.length > 0) problems.push(`the nodes logged errors: ${errors.slice(0, 5).join(' | ')}`);
  } catch (error) {
    problems.push(`fuzz run failed: ${(error as Error).stack ?? String(error)}`);
  } finally {
    if (!cluster.alive && cluster.crashes.length === 0) cluster.crashes.push('a node is not running');
    await cluster.stop();
  }
  const crashes = cluster.crashes.length;
  problems.push(...cluster.crashes);
  const ok = accepted === 0 && serverErrors === 0 && crashes === 0 && noAnswer === 0 && unexpected === 0 && stateUnchanged && committedAfter && problems.length === 0;
  const line = `fuzz: ${sent} requests, ${accepted} accepted, ${serverErrors} 5xx, ${crashes} crashes, state unchanged: ${stateUnchanged ? 'yes' : 'no'}`;
  return { requests: sent, accepted, serverErrors, crashes, noAnswer, unexpected, stateUnchanged, committedAfter, ok, line, statuses, problems };
}
