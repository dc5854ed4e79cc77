/**
 * The replicated state machine (hashicorp/raft's FSM, the Go model's ApplyFunc).
 *
 * `apply` is called for every committed command, serially, in index order, with no gap, exactly once
 * per index in the life of a process. It must be deterministic: every server applies the same
 * commands in the same order and must reach the same state. What it returns (or throws) is the
 * answer of the `command()` call that proposed the command.
 */
export interface RaftStateMachine<TAnswer = unknown> {
  apply(command: Uint8Array, index: number): TAnswer | Promise<TAnswer>;
  /**
   * For a state machine that keeps its state durably: the highest index it has already applied, so
   * that a restart does not apply those entries again. Leave it out for an in-memory state machine:
   * then the log is applied from the start on every restart.
   */
  appliedIndex?(): number | Promise<number>;
  /**
   * Log compaction (thesis §5): the state as bytes, reflecting exactly the commands applied so far
   * (the node calls it between two `apply` calls, never during one). With `snapshot` and `restore`
   * the node compacts its log every `snapshotEvery` applied entries and can bring a follower that is
   * too far behind, or a new server, up to date with InstallSnapshot. Leave both out and the log is
   * kept whole.
   */
  snapshot?(): Uint8Array | Promise<Uint8Array>;
  /**
   * Replaces the whole state with what `snapshot()` produced on some server at `index`: on restart
   * (before the log after the snapshot is applied) and when the leader installs a snapshot. A durable
   * state machine must make `appliedIndex()` report `index` afterwards.
   */
  restore?(data: Uint8Array, index: number): void | Promise<void>;
}

/** The Go model's `ApplyFunc(commitIndex, cmd) → response`, accepted wherever a state machine is. */
export type RaftApplyFunction<TAnswer = unknown> = (index: number, command: Uint8Array) => TAnswer | Promise<TAnswer>;

export type RaftStateMachineLike = RaftStateMachine | RaftApplyFunction;

/** Turns an apply function into a {@link RaftStateMachine}. */
export function toStateMachine(machine: RaftStateMachineLike): RaftStateMachine {
  if (typeof machine === 'function') return { apply: (command, index) => machine(index, command) };
  if (!machine || typeof machine.apply !== 'function') throw new TypeError('stateMachine must be a function or an object with apply()');
  return machine;
}
