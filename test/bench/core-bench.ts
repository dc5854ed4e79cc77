/**
 * `npm run bench:core`: how many commands per second the protocol engine commits when it is not
 * waiting on anything — three engines in one process, in-memory "disks", messages handed over
 * directly. The figure bounds what the engine can ever cost a real node.
 *
 * Options: --seconds S (default 5), --batch B proposals between two Ready rounds (default 256),
 * --size N command bytes (default 100).
 */
import { RaftCore } from '../../lib/core/raft.js';
import type { Entry, Message, NodeId } from '../../lib/core/types.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const seconds = flag('seconds', 5);
const batch = flag('batch', 256);
const size = flag('size', 100);
const ids: NodeId[] = [1, 2, 3];

let seed = 42;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const nodes = new Map<NodeId, RaftCore>();
const disks = new Map<NodeId, Entry[]>();
for (const id of ids) {
  nodes.set(id, new RaftCore({ id, electionTimeoutTicks: 10, heartbeatTicks: 1, random }, { hardState: { term: 0, vote: 0, commit: 0 }, entries: [], baseConfiguration: { voters: ids } }));
  disks.set(id, []);
}

let applied = 0;
function round(): number {
  let moved = 0;
  const inbox: Message[] = [];
  for (const [id, node] of nodes) {
    if (!node.hasReady()) continue;
    const ready = node.ready();
    const disk = disks.get(id)!;
    if (ready.truncateFrom !== undefined) disk.length = ready.truncateFrom - 1;
    for (const e of ready.entries) disk.push(e);
    inbox.push(...ready.messages);
    if (id === leaderId()) for (const e of ready.committedEntries) if (e.type === 'command') applied++;
    node.advance(ready);
    moved++;
  }
  for (const m of inbox) nodes.get(m.to)!.step(m);
  return moved + inbox.length;
}
function leaderId(): NodeId {
  for (const [id, n] of nodes) if (n.role === 'leader') return id;
  return 0;
}

for (let i = 0; i < 200 && !leaderId(); i++) {
  nodes.get(1)!.tick();
  while (round() > 0);
}
const leader = nodes.get(leaderId())!;
const command = new Uint8Array(size).fill(7);

const started = performance.now();
const cpuStart = process.cpuUsage();
let lastReport = started;
let proposed = 0;
while (performance.now() - started < seconds * 1000) {
  for (let i = 0; i < batch; i++) leader.propose(command);
  proposed += batch;
  while (round() > 0);
  // Drop persisted history now and then so memory stays flat over a long run.
  if (proposed % (batch * 64) === 0) for (const d of disks.values()) if (d.length > 1_000_000) d.length = 0;
  const now = performance.now();
  if (now - lastReport >= 1000) {
    lastReport = now;
    process.stderr.write(`  ${((now - started) / 1000).toFixed(0)} s: ${applied} committed, ${Math.round(applied / ((now - started) / 1000))}/s\n`);
  }
}
const elapsed = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuStart);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
console.log(
  `bench:core: ${Math.round(applied / elapsed)} commands/s committed (3 nodes, batch ${batch}, ${size} B commands, ${applied} in ${elapsed.toFixed(1)} s, ${cpuSeconds.toFixed(1)} CPU s, one thread)`,
);
