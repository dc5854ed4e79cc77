import { afterEach, describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, isEnvelope } from '../../lib/node/command-envelope.js';
import { SessionExpiredError, SessionTable } from '../../lib/node/session-table.js';
import { MemoryCluster } from './memory-cluster.js';

const text = (s: string) => new TextEncoder().encode(s);
const client = 'ab'.repeat(16);

describe('command envelope', () => {
  it('round-trips a command with and without a session', () => {
    const withSession = encodeCommand(text('set a 1'), { clientId: client, sequence: 7, lowestUnanswered: 5 });
    expect(isEnvelope(withSession)).toBe(true);
    expect(decodeCommand(withSession)).toEqual({ session: { clientId: client, sequence: 7, lowestUnanswered: 5 }, payload: text('set a 1') });
    expect(decodeCommand(encodeCommand(text('x')))).toEqual({ payload: text('x') });
    expect(decodeCommand(text('bare'))).toEqual({ payload: text('bare') });
  });

  it('rejects a damaged header', () => {
    const bytes = encodeCommand(text('x'), { clientId: client, sequence: 1, lowestUnanswered: 1 });
    expect(() => decodeCommand(bytes.subarray(0, 12))).toThrow(/truncated/);
  });
});

describe('session table', () => {
  it('answers a duplicate with the first outcome, and forgets answers the client has seen', () => {
    const table = new SessionTable(100_000);
    const s1 = { clientId: client, sequence: 1, lowestUnanswered: 1 };
    expect(table.decide(s1, 10)).toEqual({ kind: 'apply' });
    table.record(s1, { ok: true, value: 'first' });
    expect(table.decide(s1, 11)).toEqual({ kind: 'duplicate', outcome: { ok: true, value: 'first' } });
    // The client has seen answer 1 (lowest unanswered is now 3): a late copy of 1 is refused, not re-applied.
    expect(table.decide({ clientId: client, sequence: 2, lowestUnanswered: 2 }, 12)).toEqual({ kind: 'apply' });
    const late = table.decide({ clientId: client, sequence: 1, lowestUnanswered: 3 }, 13);
    expect(late.kind).toBe('reject');
  });

  it('takes a client whose first commands never reached the log as new', () => {
    const table = new SessionTable(100_000);
    // Sequences 1-4 failed before being proposed; the client has seen no answer below 5.
    expect(table.decide({ clientId: client, sequence: 5, lowestUnanswered: 5 }, 1)).toEqual({ kind: 'apply' });
  });

  it('expires idle sessions by log index, the same on every server', () => {
    const a = new SessionTable(2000);
    const b = new SessionTable(2000);
    for (const table of [a, b]) {
      table.decide({ clientId: client, sequence: 1, lowestUnanswered: 1 }, 1);
      table.decide({ clientId: 'cd'.repeat(16), sequence: 1, lowestUnanswered: 1 }, 5000);
    }
    expect(a.size).toBe(1);
    expect(b.size).toBe(1);
    const decision = a.decide({ clientId: client, sequence: 2, lowestUnanswered: 2 }, 5001);
    expect(decision).toMatchObject({ kind: 'reject' });
    expect((decision as { error: unknown }).error).toBeInstanceOf(SessionExpiredError);
  });
});

let cluster: MemoryCluster | undefined;
afterEach(async () => {
  await cluster?.stopAll();
  cluster = undefined;
});

describe('exactly-once commands', () => {
  it('applies a command proposed twice once, and answers both with the first answer', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    const bytes = encodeCommand(text('set k v1'), { clientId: client, sequence: 1, lowestUnanswered: 1 });
    const first = await leader.rpcHandler.command(bytes);
    const again = await leader.rpcHandler.command(bytes);
    expect([first, again]).toEqual(['v1', 'v1']);
    expect(cluster.machines.get(leader.id)!.appliedIndexes).toHaveLength(1);
  });

  it('retries on its own when the answer is lost, without applying twice', async () => {
    cluster = new MemoryCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    const follower = [...cluster.nodes.values()].find((n) => n !== leader)!;
    const machine = cluster.machines.get(leader.id)!;
    const apply = machine.apply.bind(machine);
    let cut = false;
    machine.apply = (command: Uint8Array, index: number) => {
      if (!cut && new TextDecoder().decode(command) === 'set once 1') {
        cut = true; // the answer to the follower is lost; heal shortly after
        cluster!.network.disconnect(leader.id, follower.id);
        setTimeout(() => cluster!.network.heal(), 30);
      }
      return apply(command, index);
    };
    expect(await follower.command('set once 1', { timeoutMs: 5000 })).toBe('1');
    expect(cut).toBe(true);
    await follower.waitForApplied(leader.commitIndex);
    // One application on every node, although the retry may have put the command in the log twice.
    expect(machine.appliedIndexes).toHaveLength(1);
    expect(cluster.machines.get(follower.id)!.appliedIndexes).toHaveLength(1);
  });
});
