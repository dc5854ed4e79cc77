import { RaftError } from '../../core/errors.js';

/**
 * Another process (or another storage in this process) already acts as this node: two servers with
 * one identity could cast two votes in one term (§5.2), so the second one must not start.
 */
export class StorageLockedError extends RaftError {}

/**
 * The database would acknowledge a commit before it is on disk, so a vote or an appended entry could
 * be forgotten after a crash, which Raft forbids (§5, Figure 2: "updated on stable storage before
 * responding to RPCs"). Refused unless the storage is told explicitly that this is acceptable.
 */
export class UnsafeDurabilityError extends RaftError {
  constructor(
    /** The PostgreSQL setting at fault: `synchronous_commit` or `fsync`. */
    readonly setting: string,
    /** Its value for the storage's connection. */
    readonly value: string,
    detail: string,
  ) {
    super(`${setting} is '${value}' for this connection: ${detail}`);
  }
}
