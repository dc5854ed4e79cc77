/**
 * Linearizability checker for a key-value store whose keys behave as
 * independent registers supporting read, write and compare-and-set.
 *
 * The search is Wing & Gong's algorithm as refined by Lowe ("Testing for
 * linearizability", 2017): a depth-first search over an ordered list of
 * call/return entries, where linearizing an operation "lifts" its two entries
 * out of the list and backtracking "unlifts" them, and where every
 * (set of linearized operations, register value) configuration already
 * explored is cached so it is never explored twice. Keys are checked one at a
 * time: linearizability is compositional over independent objects, so a
 * history is linearizable exactly when each key's subhistory is, and checking
 * keys separately shrinks the state space from a product to a sum.
 *
 * @module
 */

/** The kinds of operation a client can issue against a key. */
export type OpKind = 'read' | 'write' | 'cas';

/**
 * What the client learned about an operation.
 *
 * - `ok`: it took effect and its result is known.
 * - `fail`: it definitely did not take effect.
 * - `unknown`: it may or may not have taken effect (e.g. the request timed
 *   out or the server crashed before replying).
 */
export type Outcome = 'ok' | 'fail' | 'unknown';

/** One client operation, as recorded by the test harness. */
export interface HistoryOp {
  /** Unique per operation. */
  id: number;
  clientId: number;
  key: string;
  kind: OpKind;
  /** write: the value written; cas: the new value. */
  value?: string;
  /** cas: the expected current value (null = key absent). */
  expected?: string | null;
  /** Time the client invoked it (any monotonic unit, e.g. virtual ms). */
  invoke: number;
  /**
   * Time the client saw the outcome; for 'unknown' use Infinity (it may take
   * effect at any time after invoke). The checker treats every 'unknown'
   * operation as completing at Infinity whatever is recorded here.
   */
  complete: number;
  /** ok: took effect, result known; fail: definitely did NOT take effect; unknown: may or may not have. */
  outcome: Outcome;
  /** read+ok: the value read (null = absent). cas+ok: whether it swapped (true/false). */
  result?: string | null | boolean;
}

/** Tuning for {@link checkLinearizable}. */
export interface CheckOptions {
  /**
   * Wall-clock budget in ms for the whole check; exceeding it is a FAILURE
   * (timedOut: true, ok: false), never a pass. Default 10000.
   */
  timeoutMs?: number;
  /** Initial value of every key; default null (absent). */
  initialValue?: string | null;
}

/** The verdict for one key's subhistory. */
export interface KeyResult {
  key: string;
  ok: boolean;
  timedOut: boolean;
  /**
   * Operations actually checked for this key: 'fail' operations and
   * 'unknown' reads are excluded because they cannot affect the verdict.
   */
  ops: number;
  /**
   * When not ok: a short human explanation. For a violation it names the
   * smallest prefix of the key's history (the operations invoked up to some
   * completion time t, with those still running at t free to have taken
   * effect or not) that cannot be linearized, the operation(s) completing at
   * t, the operations concurrent with them and the few just before.
   */
  explanation?: string;
}

/** The verdict for a whole history. */
export interface CheckResult {
  /** True only if every key was checked within the budget and is linearizable. */
  ok: boolean;
  /** True if the budget ran out before every key got a verdict. */
  timedOut: boolean;
  /** One entry per key that appears in the history, sorted by key. */
  keys: KeyResult[];
  /** First failing key's explanation, if any. */
  explanation?: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** Steps between clock reads: performance.now() is too slow to call per step. */
const CLOCK_CHECK_MASK = 1023;
const MAX_LISTED_CONCURRENT = 10;
const MAX_LISTED_BEFORE = 5;

// Step codes: each op's effect on the register is precomputed so the hot
// loop is integer comparisons on interned values.
const STEP_WRITE = 0;
const STEP_READ = 1;
const STEP_CAS_SWAPPED = 2;
const STEP_CAS_NOT_SWAPPED = 3;
/** An unknown cas: swaps if the value matches, and its result was never seen. */
const STEP_CAS_MAYBE = 4;

/**
 * Checks whether `history` is linearizable with respect to a map of
 * independent registers (one per key), each starting at
 * `options.initialValue` (default null, meaning absent).
 *
 * Model: `read` returns the current value; `write` sets it; `cas(expected,
 * value)` sets it to `value` and returns true if the current value equals
 * `expected`, otherwise returns false and changes nothing.
 *
 * Outcomes: 'fail' operations never took effect and are ignored; 'unknown'
 * reads are ignored (they change nothing); 'unknown' writes and cas may take
 * effect at any point after their invocation, or never. "Never" needs no
 * special case: because an unknown operation completes at Infinity it can
 * always be linearized after every observed operation, where its effect is
 * invisible, so the search only has to place all 'ok' operations.
 *
 * Operations whose timestamps tie (one completing at the instant another is
 * invoked) are treated as concurrent, so equal timestamps never produce a
 * spurious violation.
 *
 * The result is deterministic for a given history except for whether the
 * time budget runs out; running out is reported as a failure.
 *
 * @throws {TypeError} if an operation is malformed (missing value, wrong
 *   result type for its kind, duplicate id, non-numeric times).
 * @throws {RangeError} if an 'ok' operation completes before it is invoked,
 *   or `timeoutMs` is negative or NaN.
 */
export function checkLinearizable(history: readonly HistoryOp[], options: CheckOptions = {}): CheckResult {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (Number.isNaN(timeoutMs) || timeoutMs < 0) {
    throw new RangeError(`timeoutMs must be >= 0, got ${timeoutMs}`);
  }
  const initialValue = options.initialValue ?? null;
  const deadline = performance.now() + timeoutMs;

  const byKey = new Map<string, HistoryOp[]>();
  const seenIds = new Set<number>();
  for (const op of history) {
    validateOp(op, seenIds);
    let ops = byKey.get(op.key);
    if (ops === undefined) {
      ops = [];
      byKey.set(op.key, ops);
    }
    if (op.outcome === 'fail') continue;
    if (op.outcome === 'unknown' && op.kind === 'read') continue;
    ops.push(op);
  }

  const keys: KeyResult[] = [];
  // Code-unit order rather than localeCompare so output does not depend on the host locale.
  const sortedKeys = [...byKey.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const key of sortedKeys) {
    keys.push(checkKey(key, byKey.get(key) ?? [], initialValue, deadline, timeoutMs));
  }

  const firstBad = keys.find((k) => !k.ok);
  const result: CheckResult = {
    ok: firstBad === undefined,
    timedOut: keys.some((k) => k.timedOut),
    keys,
  };
  if (firstBad?.explanation !== undefined) result.explanation = firstBad.explanation;
  return result;
}

function validateOp(op: HistoryOp, seenIds: Set<number>): void {
  const where = `op #${String(op.id)}`;
  if (!Number.isFinite(op.id)) throw new TypeError(`${where}: id must be a finite number`);
  if (seenIds.has(op.id)) throw new TypeError(`${where}: duplicate id`);
  seenIds.add(op.id);
  if (typeof op.key !== 'string') throw new TypeError(`${where}: key must be a string`);
  if (op.outcome !== 'ok' && op.outcome !== 'fail' && op.outcome !== 'unknown') {
    throw new TypeError(`${where}: unknown outcome ${String(op.outcome)}`);
  }
  if (!Number.isFinite(op.invoke)) throw new TypeError(`${where}: invoke must be a finite number`);
  if (op.outcome === 'ok') {
    if (typeof op.complete !== 'number' || Number.isNaN(op.complete)) {
      throw new TypeError(`${where}: complete must be a number`);
    }
    if (op.complete < op.invoke) {
      throw new RangeError(`${where}: completes (${op.complete}) before it is invoked (${op.invoke})`);
    }
  }
  // Fail ops are discarded, but a malformed one still signals a harness bug worth surfacing.
  switch (op.kind) {
    case 'read':
      if (op.outcome === 'ok' && op.result !== null && typeof op.result !== 'string') {
        throw new TypeError(`${where}: an ok read needs a string or null result`);
      }
      break;
    case 'write':
      if (typeof op.value !== 'string') throw new TypeError(`${where}: a write needs a string value`);
      break;
    case 'cas':
      if (typeof op.value !== 'string') throw new TypeError(`${where}: a cas needs a string value`);
      if (op.expected !== null && typeof op.expected !== 'string') {
        throw new TypeError(`${where}: a cas needs expected to be a string or null`);
      }
      if (op.outcome === 'ok' && typeof op.result !== 'boolean') {
        throw new TypeError(`${where}: an ok cas needs a boolean result`);
      }
      break;
    default:
      throw new TypeError(`${where}: unknown kind ${String((op as { kind: unknown }).kind)}`);
  }
}

/**
 * An operation as the search sees it. Optional operations may be left out
 * of the linearization: 'unknown' ones, and, when checking a prefix of the
 * history, 'ok' ones still running at the cut.
 */
interface SearchOp {
  id: number;
  invoke: number;
  /** Infinity for optional ops: nothing forces them to take effect by any time. */
  complete: number;
  optional: boolean;
  step: number;
  /** read: the value seen; cas: the expected value. */
  a: string | null;
  /** write/cas: the value written. */
  b: string | null;
}

/**
 * The key's operations as invoked up to `cutoff`, with the ones still
 * running then made optional. Linearizability is prefix-closed, and a
 * running op may or may not have taken effect yet, so this is exactly the
 * history the clients could have observed at `cutoff`.
 */
function toSearchOps(ops: readonly HistoryOp[], cutoff: number): SearchOp[] {
  const out: SearchOp[] = [];
  for (const op of ops) {
    if (op.invoke > cutoff) continue;
    const running = op.outcome === 'unknown' || op.complete > cutoff;
    let step: number;
    switch (op.kind) {
      case 'write':
        step = STEP_WRITE;
        break;
      case 'read':
        // A read that may be left out never constrains anything.
        if (running) continue;
        step = STEP_READ;
        break;
      case 'cas':
        if (op.outcome === 'unknown') step = STEP_CAS_MAYBE;
        else if (op.result === true) step = STEP_CAS_SWAPPED;
        else if (running) continue;
        else step = STEP_CAS_NOT_SWAPPED;
        break;
    }
    out.push({
      id: op.id,
      invoke: op.invoke,
      complete: running ? Infinity : op.complete,
      optional: running,
      step,
      a: op.kind === 'read' ? (op.result as string | null) : (op.expected ?? null),
      b: op.value ?? null,
    });
  }
  return out;
}

type Verdict = 'ok' | 'fail' | 'timeout';

/**
 * Decides whether the ops can be linearized from `initialValue`, giving up
 * at `deadline`.
 *
 * Beyond plain WGL (entry list, lift/unlift, cache of configurations) the
 * search uses three reductions, each of which only skips configurations that
 * provably cannot lead to a linearization the unreduced search would find:
 *
 * - Forcing: a read-only op ('ok' read, or cas that did not swap) that is a
 *   candidate and consistent with the current value can be moved to the
 *   front of any valid completion (it changes nothing, and being a
 *   candidate means no unlinearized op must precede it), so it is
 *   linearized without trying alternatives.
 * - Optional ops: because they complete at Infinity and may be left out, any
 *   valid linearization can be rewritten so that each optional op is
 *   immediately followed by an op that depends on it (see `enabledBy`): one
 *   followed by a blind write, or by nothing, or that changes nothing, can
 *   be left out, and one followed by an op that does not depend on it can
 *   swap places with that op. So an optional op is only linearized if it
 *   changes the value to one a candidate needs, and the next node
 *   (constrained by the value before it) only considers ops it enables.
 *   Without this every unobserved unknown op splits the search in two, and
 *   a chaos test's many timed-out requests make it blow up exponentially.
 * - Starvation: if some unlinearized required op needs value v (a read of
 *   v, or a cas that swapped from v), the register is not v, and no
 *   unlinearized op can write v, that op can never be linearized. Checking
 *   this on every lift (in O(1), via per-value counters) cuts off a wrong
 *   choice between concurrent writes as soon as it is made, instead of
 *   after exhausting every ordering of the ops behind it.
 */
function search(sops: readonly SearchOp[], initialValue: string | null, deadline: number): Verdict {
  const n = sops.length;

  // Interning values turns register states into small integers; 0 is null.
  const valueIds = new Map<string, number>();
  let valueCount = 1;
  const intern = (v: string | null): number => {
    if (v === null) return 0;
    let id = valueIds.get(v);
    if (id === undefined) {
      id = valueCount++;
      valueIds.set(v, id);
    }
    return id;
  };

  const stepKind = new Uint8Array(n);
  const argA = new Int32Array(n);
  const argB = new Int32Array(n);
  const optional = new Uint8Array(n);
  let requiredCount = 0;
  for (let i = 0; i < n; i++) {
    const s = sops[i]!;
    stepKind[i] = s.step;
    argA[i] = intern(s.a);
    argB[i] = intern(s.b);
    optional[i] = s.optional ? 1 : 0;
    if (!s.optional) requiredCount++;
  }
  const initialState = intern(initialValue);
  if (requiredCount === 0) return 'ok';
  const hasOptional = requiredCount < n;

  // Entry 2i is op i's call, 2i+1 its return. Ties put calls before returns
  // so ops touching at an instant count as concurrent; ids break remaining
  // ties so the search order is deterministic.
  const order = Array.from({ length: 2 * n }, (_, e) => e);
  order.sort((x, y) => {
    const sx = sops[x >> 1]!;
    const sy = sops[y >> 1]!;
    const tx = x & 1 ? sx.complete : sx.invoke;
    const ty = y & 1 ? sy.complete : sy.invoke;
    if (tx !== ty) return tx < ty ? -1 : 1;
    if ((x & 1) !== (y & 1)) return (x & 1) - (y & 1);
    return sx.id - sy.id;
  });
  const head = 2 * n;
  const next = new Int32Array(2 * n + 1);
  const prev = new Int32Array(2 * n + 1);
  let last = head;
  for (const e of order) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  next[last] = -1;

  const lift = (call: number): void => {
    const ret = call + 1;
    next[prev[call]!] = next[call]!;
    if (next[call] !== -1) prev[next[call]!] = prev[call]!;
    next[prev[ret]!] = next[ret]!;
    if (next[ret] !== -1) prev[next[ret]!] = prev[ret]!;
  };
  // Exact reverse of lift, so the neighbours' links are restored even when the call and return were adjacent.
  const unlift = (call: number): void => {
    const ret = call + 1;
    if (next[ret] !== -1) prev[next[ret]!] = ret;
    next[prev[ret]!] = ret;
    if (next[call] !== -1) prev[next[call]!] = call;
    next[prev[call]!] = call;
  };

  // Zobrist hashing keeps the cache key up to date in O(1) per lift/unlift;
  // a fixed seed keeps runs reproducible.
  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const zobrist = new Int32Array(n);
  let seed = 0x2545f491;
  for (let i = 0; i < n; i++) {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    zobrist[i] = t ^ (t >>> 14);
  }
  let hash = 0;
  const cache = new Map<number, { state: number; constraint: number; bits: Uint32Array }[]>();
  /**
   * Records the configuration; false if it was already explored (and so led
   * nowhere). The constraint is part of the key because a node explored under
   * the "must use the optional op just linearized" restriction was explored
   * only partially, so it proves nothing about the same node reached freely.
   */
  const cacheAdd = (state: number, constraint: number): boolean => {
    const slot = (hash ^ Math.imul(state + 1, 0x9e3779b1) ^ Math.imul(constraint + 2, 0x85ebca6b)) | 0;
    let bucket = cache.get(slot);
    if (bucket === undefined) {
      bucket = [];
      cache.set(slot, bucket);
    } else {
      outer: for (const seen of bucket) {
        if (seen.state !== state || seen.constraint !== constraint) continue;
        for (let w = 0; w < words; w++) if (seen.bits[w] !== bits[w]) continue outer;
        return false;
      }
    }
    bucket.push({ state, constraint, bits: bits.slice() });
    return true;
  };

  /** The register value after applying op to state, or -1 if op's observed result is impossible there. */
  const stepFrom = (op: number, state: number): number => {
    switch (stepKind[op]) {
      case STEP_WRITE:
        return argB[op]!;
      case STEP_READ:
        return state === argA[op] ? state : -1;
      case STEP_CAS_SWAPPED:
        return state === argA[op] ? argB[op]! : -1;
      case STEP_CAS_NOT_SWAPPED:
        return state !== argA[op] ? state : -1;
      default:
        return state === argA[op] ? argB[op]! : state;
    }
  };
  const isReadOnly = (op: number): boolean => stepKind[op] === STEP_READ || stepKind[op] === STEP_CAS_NOT_SWAPPED;
  /**
   * Whether op, applied right after an optional op moved the register from
   * `before` to `after`, depends on that move: it is impossible from
   * `before`, or it is an unknown cas that swaps only thanks to it.
   */
  const enabledBy = (op: number, before: number, after: number): boolean =>
    stepFrom(op, after) !== -1 &&
    (stepFrom(op, before) === -1 || (stepKind[op] === STEP_CAS_MAYBE && argA[op] === after && argB[op] !== after));

  // Which values an optional op would have to produce to enable some current
  // candidate, so that the optional pass skips the (usually many) useless
  // optional ops in O(1) each instead of lifting them into a dead node.
  const wantStamp = new Int32Array(valueCount);
  let stamp = 0;
  let wantAnyChange = false;
  const computeWants = (): void => {
    stamp++;
    wantAnyChange = false;
    for (let e = next[head]!; e !== -1 && (e & 1) === 0; e = next[e]!) {
      const op = e >> 1;
      const k = stepKind[op];
      if (optional[op] === 0) {
        if ((k === STEP_READ || k === STEP_CAS_SWAPPED) && state !== argA[op]) wantStamp[argA[op]!] = stamp;
        else if (k === STEP_CAS_NOT_SWAPPED && state === argA[op]) wantAnyChange = true;
      } else if ((k === STEP_CAS_MAYBE || k === STEP_CAS_SWAPPED) && state !== argA[op] && argB[op] !== argA[op]) {
        wantStamp[argA[op]!] = stamp;
      }
    }
  };

  // Starvation bookkeeping over the unlinearized ops: who still needs each
  // value, who can still produce it, and how many values are needed but
  // unproducible.
  const consumers = new Int32Array(valueCount);
  const producers = new Int32Array(valueCount);
  const consumes = (op: number): boolean =>
    optional[op] === 0 && (stepKind[op] === STEP_READ || stepKind[op] === STEP_CAS_SWAPPED);
  const produces = (op: number): boolean => stepKind[op] !== STEP_READ && stepKind[op] !== STEP_CAS_NOT_SWAPPED;
  const isStarved = (v: number): boolean => consumers[v]! > 0 && producers[v] === 0;
  for (let i = 0; i < n; i++) {
    if (consumes(i)) consumers[argA[i]!]++;
    if (produces(i)) producers[argB[i]!]++;
  }
  let starved = 0;
  for (let v = 0; v < valueCount; v++) if (isStarved(v)) starved++;
  /** Adds d (±1) to op's contribution to the counters. */
  const account = (op: number, d: number): void => {
    if (consumes(op)) {
      const v = argA[op]!;
      const was = isStarved(v);
      consumers[v] += d;
      starved += Number(isStarved(v)) - Number(was);
    }
    if (produces(op)) {
      const v = argB[op]!;
      const was = isStarved(v);
      producers[v] += d;
      starved += Number(isStarved(v)) - Number(was);
    }
  };
  // The current value needs no producer, so it alone may be starved.
  const isDead = (state: number): boolean => starved > (isStarved(state) ? 1 : 0);

  // Depth-first search. Candidates at each node are the call entries before
  // the first unlinearized return, tried in two passes, required ops first
  // and optional ones after, because optional ops are rarely needed.
  const stackEntry = new Int32Array(n);
  const stackState = new Int32Array(n);
  const stackConstraint = new Int32Array(n);
  const stackPass = new Uint8Array(n);
  const stackForced = new Uint8Array(n);
  let depth = 0;
  let state = initialState;
  /** -1 at an unconstrained node; after an optional op, the value before it. */
  let constraint = -1;
  let pass = 0;
  let linearizedRequired = 0;
  let entry = -1;
  let steps = 0;
  let enteringNode = true;

  /** Linearizes the op whose call entry is e, if the resulting configuration is live and new. */
  const tryLift = (e: number, newState: number, forced: boolean): boolean => {
    const op = e >> 1;
    const childConstraint = optional[op] === 1 ? state : -1;
    account(op, -1);
    if (isDead(newState)) {
      account(op, 1);
      return false;
    }
    bits[op >>> 5] |= 1 << (op & 31);
    hash ^= zobrist[op]!;
    if (!cacheAdd(newState, childConstraint)) {
      bits[op >>> 5] &= ~(1 << (op & 31));
      hash ^= zobrist[op]!;
      account(op, 1);
      return false;
    }
    stackEntry[depth] = e;
    stackState[depth] = state;
    stackConstraint[depth] = constraint;
    stackPass[depth] = pass;
    stackForced[depth] = forced ? 1 : 0;
    depth++;
    state = newState;
    constraint = childConstraint;
    if (optional[op] === 0) linearizedRequired++;
    lift(e);
    return true;
  };

  /** Undoes lifts until one that still has untried siblings; false if the root is exhausted. */
  const backtrack = (): boolean => {
    for (;;) {
      if (depth === 0) return false;
      depth--;
      const e = stackEntry[depth]!;
      const op = e >> 1;
      state = stackState[depth]!;
      constraint = stackConstraint[depth]!;
      pass = stackPass[depth]!;
      bits[op >>> 5] &= ~(1 << (op & 31));
      hash ^= zobrist[op]!;
      if (optional[op] === 0) linearizedRequired--;
      account(op, 1);
      unlift(e);
      // A forced op was the node's only option, so its failure is the node's.
      if (stackForced[depth] === 0) {
        entry = next[e]!;
        return true;
      }
    }
  };

  for (;;) {
    if ((steps++ & CLOCK_CHECK_MASK) === 0 && performance.now() >= deadline) return 'timeout';

    if (enteringNode) {
      enteringNode = false;
      // Whatever optional ops remain can all be left out.
      if (linearizedRequired === requiredCount) return 'ok';
      let forced = -1;
      for (let e = next[head]!; e !== -1 && (e & 1) === 0; e = next[e]!) {
        const op = e >> 1;
        if (optional[op] === 1 || !isReadOnly(op) || stepFrom(op, state) === -1) continue;
        if (constraint !== -1 && !enabledBy(op, constraint, state)) continue;
        forced = e;
        break;
      }
      if (forced !== -1) {
        if (tryLift(forced, state, true)) enteringNode = true;
        else if (!backtrack()) return 'fail';
        else if (pass === 1) computeWants();
        continue;
      }
      entry = next[head]!;
      pass = 0;
    }

    if (entry === -1) {
      // Unreachable while a required op remains (its return is still listed), but never loop on it.
      throw new Error('linearizability search ran off the end of the entry list');
    }
    if ((entry & 1) === 0) {
      const op = entry >> 1;
      if (optional[op] === pass) {
        const newState = stepFrom(op, state);
        const eligible =
          newState !== -1 &&
          (optional[op] === 0 || (newState !== state && (wantAnyChange || wantStamp[newState] === stamp))) &&
          (constraint === -1 || enabledBy(op, constraint, state));
        if (eligible && tryLift(entry, newState, false)) {
          enteringNode = true;
          continue;
        }
      }
      entry = next[entry]!;
      continue;
    }
    // A return entry still listed means its op has not been linearized, and it cannot be postponed past here.
    if (pass === 0 && hasOptional) {
      pass = 1;
      computeWants();
      entry = next[head]!;
      continue;
    }
    if (!backtrack()) return 'fail';
    if (pass === 1) computeWants();
  }
}

function checkKey(
  key: string,
  ops: readonly HistoryOp[],
  initialValue: string | null,
  deadline: number,
  timeoutMs: number,
): KeyResult {
  const verdict = search(toSearchOps(ops, Infinity), initialValue, deadline);
  if (verdict === 'ok') return { key, ok: true, timedOut: false, ops: ops.length };
  if (verdict === 'timeout') {
    return {
      key,
      ok: false,
      timedOut: true,
      ops: ops.length,
      explanation:
        `key ${JSON.stringify(key)}: no verdict, the ${timeoutMs} ms budget ran out ` +
        `while checking ${ops.length} ops (treated as a failure)`,
    };
  }
  return {
    key,
    ok: false,
    timedOut: false,
    ops: ops.length,
    explanation: explainViolation(key, ops, initialValue, deadline),
  };
}

/**
 * Describes a violation by its smallest non-linearizable prefix, found by
 * binary search over completion times. That is sound because
 * linearizability is prefix-closed (a failing prefix stays failing as the
 * cut moves later), and it is needed because the search's own dead ends say
 * little: starvation pruning abandons a branch at the choice that dooms it,
 * which can be long before the op it dooms.
 */
function explainViolation(
  key: string,
  ops: readonly HistoryOp[],
  initialValue: string | null,
  deadline: number,
): string {
  // Only completions of required ops can turn a linearizable prefix into a non-linearizable one.
  const times = [...new Set(ops.filter((op) => op.outcome === 'ok').map((op) => op.complete))].sort((a, b) => a - b);
  // Invariant: the prefix cut at times[hi] fails; the one cut at times[lo] (if lo >= 0) does not.
  let lo = -1;
  let hi = times.length - 1;
  let minimal = true;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    const verdict = search(toSearchOps(ops, times[mid]!), initialValue, deadline);
    if (verdict === 'timeout') {
      minimal = false;
      break;
    }
    if (verdict === 'fail') hi = mid;
    else lo = mid;
  }
  const cutoff = times[hi]!;

  const prefix = ops.filter((op) => op.invoke <= cutoff);
  // Everything listed is sorted, so the explanation does not depend on the input order.
  const byTime = (a: HistoryOp, b: HistoryOp): number => a.invoke - b.invoke || a.id - b.id;
  const last = prefix.filter((op) => op.outcome === 'ok' && op.complete === cutoff).sort(byTime);
  const windowStart = Math.min(...last.map((op) => op.invoke));
  const concurrent = prefix
    .filter((op) => !last.includes(op) && op.invoke >= windowStart)
    .concat(prefix.filter((op) => op.outcome === 'ok' && op.invoke < windowStart && op.complete >= windowStart))
    .sort(byTime);
  const inWindow = new Set([...last, ...concurrent]);
  const effectiveEnd = (op: HistoryOp): number => (op.outcome === 'unknown' ? op.invoke : op.complete);
  const before = prefix
    .filter((op) => !inWindow.has(op))
    .sort((a, b) => effectiveEnd(a) - effectiveEnd(b) || a.id - b.id)
    .slice(-MAX_LISTED_BEFORE);

  // The write a failing read expected is often far back, so name the latest one explicitly.
  const listed = new Set([...inWindow, ...before]);
  const sources: HistoryOp[] = [];
  for (const op of last) {
    if (!(op.kind === 'read' || (op.kind === 'cas' && op.result === true))) continue;
    const wanted = op.kind === 'read' ? (op.result as string | null) : (op.expected ?? null);
    let source: HistoryOp | undefined;
    for (const w of prefix) {
      const writes = w.kind === 'write' || (w.kind === 'cas' && w.result !== false);
      if (writes && w.value === wanted && (source === undefined || byTime(source, w) < 0)) source = w;
    }
    if (source !== undefined && !listed.has(source)) {
      listed.add(source);
      sources.push(source);
    }
  }

  const list = (xs: readonly HistoryOp[], max: number): string => {
    if (xs.length === 0) return 'none';
    const shown = xs.slice(0, max).map(describeOp).join('; ');
    return xs.length > max ? `${shown}; … and ${xs.length - max} more` : shown;
  };
  const opsWord = (k: number): string => `${k} op${k === 1 ? '' : 's'}`;
  const lastIds = last.map((op) => `#${op.id}`).join(', ');
  const head = minimal
    ? `The smallest non-linearizable prefix is the ${opsWord(prefix.length)} invoked by t=${formatTime(cutoff)}, when ${lastIds} completed`
    : `The ${opsWord(prefix.length)} invoked by t=${formatTime(cutoff)}, when ${lastIds} completed, are already not linearizable ` +
      `(the budget ran out before a smaller failing prefix could be ruled out)`;
  return (
    `key ${JSON.stringify(key)}: not linearizable. ${head}; ` +
    `initial value ${formatValue(initialValue)}. ` +
    `Completing at t=${formatTime(cutoff)}: ${list(last, MAX_LISTED_CONCURRENT)}. ` +
    `Concurrent with ${last.length === 1 ? 'it' : 'them'}: ${list(concurrent, MAX_LISTED_CONCURRENT)}. ` +
    `Just before: ${before.length < prefix.length - inWindow.size ? '…; ' : ''}${list(before, MAX_LISTED_BEFORE)}.` +
    (sources.length > 0 ? ` Latest write of the value expected: ${list(sources, MAX_LISTED_CONCURRENT)}.` : '')
  );
}

function describeOp(op: HistoryOp): string {
  const unknown = op.outcome === 'unknown';
  let what: string;
  switch (op.kind) {
    case 'read':
      what = `read → ${formatValue(op.result as string | null)}`;
      break;
    case 'write':
      what = `write(${formatValue(op.value ?? null)})${unknown ? ' → ?' : ''}`;
      break;
    case 'cas':
      what =
        `cas(${formatValue(op.expected ?? null)} → ${formatValue(op.value ?? null)}) → ` +
        `${unknown ? '?' : String(op.result)}`;
      break;
  }
  const interval = unknown ? `[${formatTime(op.invoke)}, ∞)` : `[${formatTime(op.invoke)}, ${formatTime(op.complete)}]`;
  return `#${op.id} c${op.clientId} ${what} ${interval}`;
}

function formatValue(v: string | null): string {
  return v === null ? 'null' : JSON.stringify(v);
}

function formatTime(t: number): string {
  return t === Infinity ? '∞' : String(t);
}
