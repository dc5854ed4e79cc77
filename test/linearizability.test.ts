import { describe, it, expect } from 'vitest';
import { checkLinearizable, type HistoryOp } from './sim/linearizability.js';

// Builders keep each history readable as a timeline; ids are assigned in
// creation order so explanations can be asserted against them.
let nextId = 1;
function resetIds(): void {
  nextId = 1;
}
function write(clientId: number, value: string, invoke: number, complete: number, key = 'k'): HistoryOp {
  return { id: nextId++, clientId, key, kind: 'write', value, invoke, complete, outcome: 'ok' };
}
function read(clientId: number, result: string | null, invoke: number, complete: number, key = 'k'): HistoryOp {
  return { id: nextId++, clientId, key, kind: 'read', result, invoke, complete, outcome: 'ok' };
}
function cas(
  clientId: number,
  expected: string | null,
  value: string,
  result: boolean,
  invoke: number,
  complete: number,
  key = 'k',
): HistoryOp {
  return { id: nextId++, clientId, key, kind: 'cas', expected, value, result, invoke, complete, outcome: 'ok' };
}
function unknownWrite(clientId: number, value: string, invoke: number, key = 'k'): HistoryOp {
  return { id: nextId++, clientId, key, kind: 'write', value, invoke, complete: Infinity, outcome: 'unknown' };
}
function unknownCas(clientId: number, expected: string | null, value: string, invoke: number, key = 'k'): HistoryOp {
  return { id: nextId++, clientId, key, kind: 'cas', expected, value, invoke, complete: Infinity, outcome: 'unknown' };
}
function failedWrite(clientId: number, value: string, invoke: number, complete: number, key = 'k'): HistoryOp {
  return { id: nextId++, clientId, key, kind: 'write', value, invoke, complete, outcome: 'fail' };
}

/** mulberry32: a tiny seeded PRNG so the generated histories are reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A history that is linearizable by construction: each op gets a random
 * interval and a linearization point inside it, and results come from
 * replaying a sequential register in linearization-point order. Some ops are
 * marked 'unknown' (they took effect, or not, at random) or 'fail' (never
 * took effect), as a flaky network would produce.
 */
function generateValidHistory(seed: number, opCount: number, clients: number, keyCount: number): HistoryOp[] {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const keys = Array.from({ length: keyCount }, (_, i) => `key${i}`);
  const clientFree = new Array<number>(clients).fill(0);

  interface Planned {
    op: HistoryOp;
    point: number;
    appliesIfUnknown: boolean;
  }
  const planned: Planned[] = [];
  for (let i = 0; i < opCount; i++) {
    const clientId = i % clients;
    const invoke = clientFree[clientId]! + Math.floor(rand() * 5);
    const duration = 1 + Math.floor(rand() * 20);
    const complete = invoke + duration;
    clientFree[clientId] = complete + 1;
    const r = rand();
    const kind = r < 0.45 ? 'read' : r < 0.8 ? 'write' : 'cas';
    const o = rand();
    const outcome = kind !== 'read' && o < 0.03 ? 'unknown' : kind !== 'read' && o < 0.06 ? 'fail' : 'ok';
    const op: HistoryOp = {
      id: i + 1,
      clientId,
      key: pick(keys),
      kind,
      invoke,
      complete: outcome === 'unknown' ? Infinity : complete,
      outcome,
    };
    if (kind !== 'read') op.value = `c${clientId}-${i}`;
    planned.push({ op, point: invoke + rand() * duration, appliesIfUnknown: rand() < 0.5 });
  }

  const registers = new Map<string, string | null>();
  for (const p of [...planned].sort((a, b) => a.point - b.point)) {
    const { op } = p;
    const current = registers.get(op.key) ?? null;
    const applies = op.outcome === 'ok' || (op.outcome === 'unknown' && p.appliesIfUnknown);
    switch (op.kind) {
      case 'read':
        op.result = current;
        break;
      case 'write':
        if (applies) registers.set(op.key, op.value!);
        break;
      case 'cas': {
        // Usually expect the right value so plenty of swaps succeed.
        op.expected = rand() < 0.6 ? current : pick([null, 'nope', `c0-${Math.floor(rand() * opCount)}`]);
        const swapped = current === op.expected;
        if (op.outcome === 'ok') op.result = swapped;
        if (applies && swapped) registers.set(op.key, op.value!);
        break;
      }
    }
  }
  return planned.map((p) => p.op);
}

/**
 * Linearizability straight from the definition, by exhaustive search: some
 * order of all required ops plus any subset of the optional ones, respecting
 * real time, that a sequential register accepts. Only for tiny histories.
 * With `cutoff`, checks the prefix of ops invoked by then, where ops still
 * running may or may not have taken effect (with their recorded results).
 */
function referenceLinearizable(history: readonly HistoryOp[], initial: string | null = null, cutoff = Infinity): boolean {
  const byKey = new Map<string, HistoryOp[]>();
  for (const op of history) {
    if (op.outcome === 'fail' || op.invoke > cutoff) continue;
    byKey.set(op.key, [...(byKey.get(op.key) ?? []), op]);
  }
  for (const ops of byKey.values()) {
    const required = ops.map((op) => op.outcome === 'ok' && op.complete <= cutoff);
    const used = ops.map(() => false);
    const extend = (state: string | null, remaining: number): boolean => {
      if (remaining === 0) return true;
      for (let i = 0; i < ops.length; i++) {
        const op = ops[i]!;
        if (used[i]) continue;
        if (ops.some((p, j) => !used[j] && required[j] && p.complete < op.invoke)) continue;
        let next: string | null;
        if (op.kind === 'read') {
          if (op.outcome === 'unknown' || op.result !== state) continue;
          next = state;
        } else if (op.kind === 'write') {
          next = op.value!;
        } else if (op.outcome === 'unknown') {
          next = state === op.expected ? op.value! : state;
        } else if (op.result === true) {
          if (state !== op.expected) continue;
          next = op.value!;
        } else {
          if (state === op.expected) continue;
          next = state;
        }
        used[i] = true;
        const found = extend(next, remaining - (required[i] ? 1 : 0));
        used[i] = false;
        if (found) return true;
      }
      return false;
    };
    if (!extend(initial, required.filter(Boolean).length)) return false;
  }
  return true;
}

/**
 * A tiny history over few values and small integer times, so that ties,
 * repeated values and every outcome are common; half of them are then
 * corrupted so that both verdicts are well represented.
 */
function randomTinyHistory(rand: () => number): HistoryOp[] {
  const values = ['a', 'b', 'c'];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const size = 2 + Math.floor(rand() * 8);
  const planned: { op: HistoryOp; point: number; appliesIfUnknown: boolean }[] = [];
  for (let i = 0; i < size; i++) {
    const invoke = Math.floor(rand() * 10);
    const complete = invoke + Math.floor(rand() * 6);
    const r = rand();
    const kind = r < 0.4 ? 'read' : r < 0.7 ? 'write' : 'cas';
    const o = rand();
    const outcome = o < 0.2 ? 'unknown' : o < 0.27 ? 'fail' : 'ok';
    const op: HistoryOp = {
      id: 3 + 7 * i,
      clientId: i,
      key: rand() < 0.85 ? 'k' : 'j',
      kind,
      invoke,
      complete: outcome === 'unknown' ? Infinity : complete,
      outcome,
    };
    if (kind !== 'read') op.value = pick(values);
    if (kind === 'cas') op.expected = pick([null, ...values]);
    planned.push({ op, point: invoke + rand() * (complete - invoke), appliesIfUnknown: rand() < 0.5 });
  }
  const registers = new Map<string, string | null>();
  for (const { op, appliesIfUnknown } of [...planned].sort((x, y) => x.point - y.point)) {
    const current = registers.get(op.key) ?? null;
    const applies = op.outcome === 'ok' || (op.outcome === 'unknown' && appliesIfUnknown);
    if (op.kind === 'read') op.result = current;
    else if (op.kind === 'write' && applies) registers.set(op.key, op.value!);
    else if (op.kind === 'cas') {
      if (op.outcome === 'ok') op.result = current === op.expected;
      if (applies && current === op.expected) registers.set(op.key, op.value!);
    }
  }
  const ops = planned.map((p) => p.op);
  if (rand() < 0.5) {
    const victim = pick(ops);
    if (victim.kind === 'read') victim.result = pick([null, ...values]);
    else if (victim.kind === 'cas') victim.result = !victim.result;
    else victim.outcome = pick(['ok', 'fail'] as const);
    if (victim.outcome === 'ok' && victim.complete === Infinity) victim.complete = victim.invoke + 1;
  }
  return ops;
}

describe('checkLinearizable: basic register semantics', () => {
  it('accepts an empty history', () => {
    const result = checkLinearizable([]);
    expect(result).toEqual({ ok: true, timedOut: false, keys: [] });
  });

  it('accepts a sequential valid history', () => {
    resetIds();
    const history = [
      read(1, null, 0, 1),
      write(1, 'a', 2, 3),
      read(2, 'a', 4, 5),
      write(2, 'b', 6, 7),
      read(1, 'b', 8, 9),
      read(3, 'b', 10, 11),
    ];
    const result = checkLinearizable(history);
    expect(result.ok).toBe(true);
    expect(result.timedOut).toBe(false);
    expect(result.keys).toEqual([{ key: 'k', ok: true, timedOut: false, ops: 6 }]);
    expect(result.explanation).toBeUndefined();
  });

  it('rejects a read of the initial value after a completed write', () => {
    resetIds();
    const result = checkLinearizable([write(1, 'a', 0, 1), read(2, null, 2, 3)]);
    expect(result.ok).toBe(false);
    expect(result.timedOut).toBe(false);
  });

  it('rejects a stale read after a completed overwrite', () => {
    resetIds();
    const history = [write(1, 'a', 0, 1), write(1, 'b', 2, 3), read(2, 'a', 4, 5)];
    const result = checkLinearizable(history);
    expect(result.ok).toBe(false);
    expect(result.keys[0]!.ok).toBe(false);
  });

  it('rejects a lost acknowledged write: a later read returns the older value', () => {
    resetIds();
    const history = [
      write(1, 'v1', 0, 1),
      read(2, 'v1', 2, 3),
      write(1, 'v2', 4, 5), // acknowledged...
      read(2, 'v1', 6, 7), // ...yet gone
      read(3, 'v1', 8, 9),
    ];
    expect(checkLinearizable(history).ok).toBe(false);
  });

  it('rejects a read of a value nobody wrote', () => {
    resetIds();
    expect(checkLinearizable([write(1, 'a', 0, 1), read(2, 'zzz', 2, 3)]).ok).toBe(false);
  });

  it('accepts either order for an overlapping write and read', () => {
    resetIds();
    const sawOld = [write(1, 'x', 0, 10), read(2, null, 5, 15)];
    const sawNew = [write(1, 'x', 0, 10), read(2, 'x', 5, 15)];
    expect(checkLinearizable(sawOld).ok).toBe(true);
    expect(checkLinearizable(sawNew).ok).toBe(true);
  });

  it('treats ops whose timestamps touch as concurrent', () => {
    resetIds();
    // The read is invoked at the instant the write completes, so it may precede it.
    expect(checkLinearizable([write(1, 'x', 0, 5), read(2, null, 5, 6)]).ok).toBe(true);
    // One unit later it may not.
    expect(checkLinearizable([write(1, 'x', 0, 5), read(2, null, 6, 7)]).ok).toBe(false);
  });

  it('rejects a read that goes back to the old value once the new one was seen', () => {
    resetIds();
    // The write is still in flight, but once a later-starting read saw 'x' the write took effect.
    const history = [write(1, 'x', 0, 100), read(2, 'x', 10, 20), read(3, null, 30, 40)];
    expect(checkLinearizable(history).ok).toBe(false);
  });

  it('rejects readers that imply a cycle between two concurrent writes', () => {
    resetIds();
    const writes = [write(1, '1', 0, 100), write(2, '2', 0, 100)];
    const readerA = [read(3, '2', 10, 20), read(3, '1', 30, 40)]; // implies w2 before w1
    const readerB = [read(4, '1', 10, 20), read(4, '2', 30, 40)]; // implies w1 before w2
    // Each reader's view is fine on its own; only together are they contradictory.
    expect(checkLinearizable([...writes, ...readerA]).ok).toBe(true);
    expect(checkLinearizable([...writes, ...readerB]).ok).toBe(true);
    const both = checkLinearizable([...writes, ...readerA, ...readerB]);
    expect(both.ok).toBe(false);
    expect(both.timedOut).toBe(false);
  });

  it('honours initialValue', () => {
    resetIds();
    const history = [read(1, 'init', 0, 1), cas(1, 'init', 'next', true, 2, 3)];
    expect(checkLinearizable(history).ok).toBe(false);
    expect(checkLinearizable(history, { initialValue: 'init' }).ok).toBe(true);
  });
});

describe('checkLinearizable: compare-and-set', () => {
  it('accepts a successful cas from the current value', () => {
    resetIds();
    const history = [write(1, 'a', 0, 1), cas(2, 'a', 'b', true, 2, 3), read(3, 'b', 4, 5)];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  it('accepts a cas on an absent key that expects null', () => {
    resetIds();
    const history = [cas(1, null, 'a', true, 0, 1), read(2, 'a', 2, 3), cas(2, null, 'b', false, 4, 5)];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  it('rejects a cas that reports success although the value did not match', () => {
    resetIds();
    const history = [write(1, 'a', 0, 1), cas(2, 'z', 'b', true, 2, 3)];
    const result = checkLinearizable(history);
    expect(result.ok).toBe(false);
  });

  it('rejects a cas that reports failure although the value matched', () => {
    resetIds();
    expect(checkLinearizable([write(1, 'a', 0, 1), cas(2, 'a', 'b', false, 2, 3)]).ok).toBe(false);
  });

  it('accepts a failed cas that leaves the value unchanged, and rejects one that changed it', () => {
    resetIds();
    const unchanged = [write(1, 'a', 0, 1), cas(2, 'z', 'b', false, 2, 3), read(3, 'a', 4, 5)];
    expect(checkLinearizable(unchanged).ok).toBe(true);
    resetIds();
    const changed = [write(1, 'a', 0, 1), cas(2, 'z', 'b', false, 2, 3), read(3, 'b', 4, 5)];
    expect(checkLinearizable(changed).ok).toBe(false);
  });

  it('allows only one of two concurrent cas from the same value to win', () => {
    resetIds();
    const base = write(1, 'a', 0, 1);
    const oneWins = [base, cas(2, 'a', 'b', true, 2, 10), cas(3, 'a', 'c', false, 2, 10), read(4, 'b', 11, 12)];
    expect(checkLinearizable(oneWins).ok).toBe(true);
    resetIds();
    const bothWin = [write(1, 'a', 0, 1), cas(2, 'a', 'b', true, 2, 10), cas(3, 'a', 'c', true, 2, 10)];
    expect(checkLinearizable(bothWin).ok).toBe(false);
  });

  it('lets an unknown cas either take effect or not', () => {
    resetIds();
    const tookEffect = [write(1, 'a', 0, 1), unknownCas(2, 'a', 'b', 2), read(3, 'b', 10, 11)];
    const didNot = [write(1, 'a', 0, 1), unknownCas(2, 'a', 'b', 2), read(3, 'a', 10, 11)];
    const impossible = [write(1, 'a', 0, 1), unknownCas(2, 'z', 'b', 2), read(3, 'b', 10, 11)];
    expect(checkLinearizable(tookEffect).ok).toBe(true);
    expect(checkLinearizable(didNot).ok).toBe(true);
    // It could never have swapped: the value was never 'z'.
    expect(checkLinearizable(impossible).ok).toBe(false);
  });
});

describe('checkLinearizable: unknown and failed outcomes', () => {
  it('accepts an unknown write whose value is later read', () => {
    resetIds();
    const history = [write(1, 'a', 0, 1), unknownWrite(2, 'x', 2), read(3, 'x', 50, 51), read(1, 'x', 60, 61)];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  it('accepts an unknown write that is never observed', () => {
    resetIds();
    const history = [write(1, 'a', 0, 1), unknownWrite(2, 'x', 2), read(3, 'a', 50, 51), read(1, 'a', 60, 61)];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  it('accepts many unobserved unknown writes without blowing up', () => {
    resetIds();
    const history: HistoryOp[] = [];
    for (let i = 0; i < 40; i++) history.push(unknownWrite(100 + i, `lost${i}`, i));
    for (let i = 0; i < 200; i++) history.push(read(1, null, 100 + 2 * i, 101 + 2 * i));
    const result = checkLinearizable(history, { timeoutMs: 2000 });
    expect(result).toMatchObject({ ok: true, timedOut: false });
  });

  it('treats an unknown op as open-ended even if a finite completion time was recorded', () => {
    resetIds();
    const history: HistoryOp[] = [write(1, 'a', 0, 1), { ...unknownWrite(2, 'x', 2), complete: 5 }, read(3, 'a', 10, 11)];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  it('takes effect at most once: an unknown write seen and then unseen fails', () => {
    resetIds();
    const history = [unknownWrite(1, 'x', 0), read(2, 'x', 10, 11), read(2, null, 12, 13)];
    expect(checkLinearizable(history).ok).toBe(false);
  });

  it('cannot take effect before it was invoked', () => {
    resetIds();
    const history = [read(2, 'x', 0, 5), unknownWrite(1, 'x', 10)];
    expect(checkLinearizable(history).ok).toBe(false);
  });

  it('ignores unknown reads, whatever they claim to have seen', () => {
    resetIds();
    const history: HistoryOp[] = [
      write(1, 'a', 0, 1),
      { id: nextId++, clientId: 2, key: 'k', kind: 'read', result: 'bogus', invoke: 2, complete: Infinity, outcome: 'unknown' },
      read(3, 'a', 5, 6),
    ];
    const result = checkLinearizable(history);
    expect(result.ok).toBe(true);
    expect(result.keys[0]!.ops).toBe(2);
  });

  it('rejects a read of a value whose write definitely failed', () => {
    resetIds();
    const history = [write(1, 'a', 0, 1), failedWrite(2, 'x', 2, 3), read(3, 'x', 4, 5)];
    const result = checkLinearizable(history);
    expect(result.ok).toBe(false);
    expect(result.keys[0]!.ops).toBe(2);
  });

  it('accepts a failed write that is never observed', () => {
    resetIds();
    const history = [write(1, 'a', 0, 1), failedWrite(2, 'x', 2, 3), read(3, 'a', 4, 5)];
    expect(checkLinearizable(history).ok).toBe(true);
  });
});

describe('checkLinearizable: per-key partitioning', () => {
  it('keeps keys independent', () => {
    resetIds();
    // Conflated into one register this would be a stale read; per key it is fine.
    const history = [write(1, 'a', 0, 1, 'x'), read(2, null, 2, 3, 'y'), read(2, 'a', 4, 5, 'x')];
    const result = checkLinearizable(history);
    expect(result.ok).toBe(true);
    expect(result.keys.map((k) => [k.key, k.ops])).toEqual([
      ['x', 2],
      ['y', 1],
    ]);
  });

  it('reports only the violating key as failed, and its explanation', () => {
    resetIds();
    const history = [
      write(1, 'a', 0, 1, 'good'),
      read(2, 'a', 2, 3, 'good'),
      write(1, 'b', 0, 1, 'bad'),
      read(2, null, 2, 3, 'bad'),
    ];
    const result = checkLinearizable(history);
    expect(result.ok).toBe(false);
    expect(result.keys.map((k) => [k.key, k.ok])).toEqual([
      ['bad', false],
      ['good', true],
    ]);
    expect(result.keys[0]!.explanation).toContain('"bad"');
    expect(result.explanation).toBe(result.keys[0]!.explanation);
    expect(result.keys[1]!.explanation).toBeUndefined();
  });

  it('lists a key whose ops all failed as trivially ok', () => {
    resetIds();
    const result = checkLinearizable([failedWrite(1, 'x', 0, 1, 'z')]);
    expect(result.keys).toEqual([{ key: 'z', ok: true, timedOut: false, ops: 0 }]);
  });
});

describe('checkLinearizable: explanations and determinism', () => {
  it('explains a violation by its smallest failing prefix', () => {
    resetIds();
    const history = [
      write(1, 'a', 0, 1), // #1
      read(2, null, 2, 3), // #2: stale, impossible
      write(1, 'b', 4, 5), // #3
      read(2, 'b', 6, 7), // #4
    ];
    const result = checkLinearizable(history);
    expect(result.ok).toBe(false);
    const explanation = result.explanation!;
    expect(explanation).toContain('key "k"');
    expect(explanation).toContain('smallest non-linearizable prefix is the 2 ops invoked by t=3, when #2 completed');
    expect(explanation).toContain('Completing at t=3: #2 c2 read → null [2, 3]');
    expect(explanation).toContain('Just before: #1 c1 write("a") [0, 1]');
    // Ops after the violation are not part of the minimal prefix.
    expect(explanation).not.toContain('#3');
    expect(explanation).not.toContain('#4');
  });

  it('names the failing reads, their concurrent ops and the write they expected', () => {
    resetIds();
    const history: HistoryOp[] = [];
    for (let i = 0; i < 20; i++) history.push(write(1, `v${i}`, 10 * i, 10 * i + 5)); // #1..#20
    history.push(read(2, 'v3', 300, 301)); // #21: v3 was overwritten long ago
    history.push(write(3, 'late', 299, 400)); // #22
    const explanation = checkLinearizable(history).explanation!;
    // #22 was invoked by t=301, so it belongs to the prefix (free to have taken effect or not).
    expect(explanation).toContain('22 ops invoked by t=301, when #21 completed');
    expect(explanation).toContain('Concurrent with it: #22 c3 write("late") [299, 400]');
    expect(explanation).toContain('Latest write of the value expected: #4 c1 write("v3") [30, 35]');
    expect(explanation).toContain('#20 c1 write("v19")');
  });

  it('counts ops still running at the cut, and what they enable, when minimizing the prefix', () => {
    resetIds();
    const history = [
      unknownWrite(1, 'a', 0), // #1
      cas(2, 'a', 'b', true, 1, 100), // #2: still running at t=11, but must have swapped by then
      read(3, 'b', 10, 11), // #3: only possible via #1 then #2
      read(3, 'zzz', 20, 21), // #4: the actual violation
    ];
    const result = checkLinearizable(history);
    expect(result.ok).toBe(false);
    expect(result.explanation).toContain('4 ops invoked by t=21, when #4 completed');
  });

  it('gives identical results regardless of input order', () => {
    resetIds();
    const writes = [write(1, '1', 0, 100), write(2, '2', 0, 100)];
    const readers = [read(3, '2', 10, 20), read(3, '1', 30, 40), read(4, '1', 10, 20), read(4, '2', 30, 40)];
    const history = [...writes, ...readers];
    const a = checkLinearizable(history);
    const b = checkLinearizable([...history].reverse());
    expect(a.ok).toBe(false);
    expect(b).toEqual(a);
  });

  it('rejects malformed operations instead of guessing', () => {
    resetIds();
    const w = write(1, 'a', 0, 1);
    expect(() => checkLinearizable([w, { ...w }])).toThrow(/duplicate id/);
    expect(() => checkLinearizable([write(1, 'a', 5, 1)])).toThrow(RangeError);
    expect(() =>
      checkLinearizable([{ id: 99, clientId: 1, key: 'k', kind: 'cas', value: 'x', expected: null, invoke: 0, complete: 1, outcome: 'ok' }]),
    ).toThrow(/boolean result/);
  });
});

describe('checkLinearizable: agreement with a brute-force reference', () => {
  it('gives the same verdict as exhaustive search on thousands of tiny random histories', () => {
    let valid = 0;
    let invalid = 0;
    for (let seed = 1; seed <= 3000; seed++) {
      const rand = rng(seed);
      const history = randomTinyHistory(rand);
      const initialValue = rand() < 0.2 ? 'a' : null;
      const expected = referenceLinearizable(history, initialValue);
      const result = checkLinearizable(history, { initialValue });
      expect({ seed, ok: result.ok, timedOut: result.timedOut }).toEqual({ seed, ok: expected, timedOut: false });
      if (expected) valid++;
      else invalid++;
    }
    // Guard against a generator that stopped exercising one side.
    expect(valid).toBeGreaterThan(1000);
    expect(invalid).toBeGreaterThan(500);
  });

  it('names a prefix that fails while every earlier cut passes', () => {
    let failures = 0;
    for (let seed = 1; failures < 300; seed++) {
      const rand = rng(seed);
      const history = randomTinyHistory(rand).map((op) => ({ ...op, key: 'k' }));
      const result = checkLinearizable(history);
      if (result.ok) continue;
      failures++;
      const cutoff = Number(/invoked by t=(\d+)/.exec(result.explanation!)![1]);
      expect({ seed, prefixLinearizable: referenceLinearizable(history, null, cutoff) }).toEqual({ seed, prefixLinearizable: false });
      // Times are integers, so half a unit earlier excludes exactly the completions at the cutoff.
      expect({ seed, earlierLinearizable: referenceLinearizable(history, null, cutoff - 0.5) }).toEqual({ seed, earlierLinearizable: true });
    }
  });
});

describe('checkLinearizable: scale and time budget', () => {
  it('accepts a large random valid history (2000 ops, 10 clients, 5 keys) quickly', () => {
    const history = generateValidHistory(12345, 2000, 10, 5);
    expect(history.some((op) => op.outcome === 'unknown')).toBe(true);
    expect(history.some((op) => op.outcome === 'fail')).toBe(true);
    const started = performance.now();
    const result = checkLinearizable(history, { timeoutMs: 5000 });
    const elapsed = performance.now() - started;
    expect(result.explanation).toBeUndefined();
    expect(result).toMatchObject({ ok: true, timedOut: false });
    expect(result.keys).toHaveLength(5);
    expect(elapsed).toBeLessThan(5000);
  });

  it('accepts many random valid histories and rejects each once a read is corrupted', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const history = generateValidHistory(seed, 300, 6, 2);
      expect(checkLinearizable(history, { timeoutMs: 5000 }).ok, `seed ${seed}`).toBe(true);
      const victim = history.findIndex((op) => op.kind === 'read' && op.outcome === 'ok');
      const corrupted = history.map((op, i) => (i === victim ? { ...op, result: 'never-written' } : op));
      const result = checkLinearizable(corrupted, { timeoutMs: 5000 });
      expect(result.ok, `seed ${seed}`).toBe(false);
      expect(result.timedOut, `seed ${seed}`).toBe(false);
      expect(result.explanation, `seed ${seed}`).toContain(`#${history[victim]!.id} `);
    }
  });

  it('accepts a long single-key history (5000 ops, 10 clients)', () => {
    const history = generateValidHistory(777, 5000, 10, 1);
    const result = checkLinearizable(history, { timeoutMs: 5000 });
    expect(result).toMatchObject({ ok: true, timedOut: false });
  });

  it('reports a zero budget as a timeout failure, never a pass', () => {
    const history = generateValidHistory(12345, 2000, 10, 5);
    const result = checkLinearizable(history, { timeoutMs: 0 });
    expect(result.ok).toBe(false);
    expect(result.timedOut).toBe(true);
    expect(result.keys.every((k) => k.timedOut && !k.ok)).toBe(true);
    expect(result.explanation).toMatch(/budget ran out/);
  });

  it('gives up on a pathological history within roughly its budget', () => {
    resetIds();
    // 24 concurrent writes of just two values, then 25 sequential reads
    // alternating between them: that needs 25 changes of value but only 24
    // writes exist. Duplicate values defeat the pruning, so refuting it means
    // trying ~2^24 combinations of writes, far beyond the budget.
    const history: HistoryOp[] = [];
    for (let i = 0; i < 24; i++) history.push(write(i, i % 2 === 0 ? 'a' : 'b', 0, 1000));
    for (let i = 0; i < 25; i++) history.push(read(99, i % 2 === 0 ? 'a' : 'b', 10 + 2 * i, 11 + 2 * i));
    const started = performance.now();
    const result = checkLinearizable(history, { timeoutMs: 100 });
    const elapsed = performance.now() - started;
    expect(result).toMatchObject({ ok: false, timedOut: true });
    expect(result.keys[0]).toMatchObject({ key: 'k', ok: false, timedOut: true, ops: 49 });
    expect(result.explanation).toMatch(/budget ran out/);
    expect(elapsed).toBeLessThan(2000);
  });

  it('refutes a small instance of the same shape when given time', () => {
    resetIds();
    const history: HistoryOp[] = [];
    for (let i = 0; i < 6; i++) history.push(write(i, i % 2 === 0 ? 'a' : 'b', 0, 1000));
    for (let i = 0; i < 7; i++) history.push(read(99, i % 2 === 0 ? 'a' : 'b', 10 + 2 * i, 11 + 2 * i));
    const result = checkLinearizable(history);
    expect(result).toMatchObject({ ok: false, timedOut: false });
    expect(result.explanation).toContain(`when #${history.at(-1)!.id} completed`);
    // One write fewer than reads is the only problem: drop the last read and it passes.
    expect(checkLinearizable(history.slice(0, -1)).ok).toBe(true);
  });
});
