import type { Configuration, Entry, EntryType } from '../../core/types.js';
import { decodeConfiguration, encodeConfiguration } from './configuration-codec.js';
import { toSafeInteger } from './safe-integer.js';

const ENTRY_TYPES: ReadonlySet<string> = new Set<EntryType>(['command', 'noop', 'config']);

/** A row of `raft_log_entries` as `pg` returns it (bigints as strings, bytea as Buffer, jsonb parsed). */
export interface LogEntryRow {
  readonly index: unknown;
  readonly term: unknown;
  readonly type: unknown;
  readonly command: unknown;
  readonly config: unknown;
}

/** A stored row that cannot be an {@link Entry}; `index` is the row's index as stored, for the message. */
export class InvalidLogEntryRow extends Error {
  constructor(
    readonly index: string,
    problem: string,
  ) {
    super(problem);
  }
}

/** Turns a stored row back into an {@link Entry}, or says exactly what is wrong with it. */
export function decodeLogEntryRow(row: LogEntryRow): Entry {
  const rawIndex = String(row.index);
  const fail = (problem: string): never => {
    throw new InvalidLogEntryRow(rawIndex, problem);
  };
  let index = 0;
  let term = 0;
  try {
    index = toSafeInteger(row.index);
  } catch (error) {
    fail(`its index: ${(error as Error).message}`);
  }
  try {
    term = toSafeInteger(row.term);
  } catch (error) {
    fail(`its term: ${(error as Error).message}`);
  }
  if (term < 1) fail(`its term is ${term}; entries have terms of at least 1`);
  if (typeof row.type !== 'string' || !ENTRY_TYPES.has(row.type)) fail(`it has the unknown type ${JSON.stringify(row.type)}`);
  const type = row.type as EntryType;
  if (!(row.command instanceof Uint8Array)) fail('its command is not a byte string');
  const command = row.command as Uint8Array;
  if (type !== 'command' && command.byteLength > 0) fail(`it is a ${type} entry carrying ${command.byteLength} command bytes`);
  if (type === 'config') {
    if (row.config === null || row.config === undefined) fail('it is a config entry without a configuration');
    let config;
    try {
      config = decodeConfiguration(row.config);
    } catch (error) {
      fail((error as Error).message);
    }
    return { index, term, type, command: asPlainBytes(command), config };
  }
  if (row.config !== null && row.config !== undefined) fail(`it is a ${type} entry carrying a configuration`);
  return { index, term, type, command: asPlainBytes(command) };
}

/**
 * The bytes as a plain Uint8Array of their own. `pg` parses a small bytea into a slice of Node's shared
 * Buffer pool, so a view of it would expose unrelated memory through `.buffer`.
 */
function asPlainBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/** The values of one entry's row, after the shared (cluster, node) parameters: index, term, type, command, config. */
export function encodeLogEntry(entry: Entry): [number, number, string, Buffer, string | null] {
  return [
    entry.index,
    entry.term,
    entry.type,
    Buffer.from(entry.command.buffer, entry.command.byteOffset, entry.command.byteLength),
    entry.type === 'config' && entry.config ? encodeConfiguration(entry.config) : null,
  ];
}

/** Checks an entry about to be written, so a bad one fails its batch instead of the next `load()`. */
export function checkEntryToWrite(entry: Entry): string | undefined {
  if (!Number.isSafeInteger(entry.index) || entry.index < 1) return `entry index ${String(entry.index)} is not a positive safe integer`;
  if (!Number.isSafeInteger(entry.term) || entry.term < 1) return `entry ${entry.index} has term ${String(entry.term)}, not a positive safe integer`;
  if (!ENTRY_TYPES.has(entry.type)) return `entry ${entry.index} has the unknown type ${JSON.stringify(entry.type)}`;
  if (!(entry.command instanceof Uint8Array)) return `entry ${entry.index}'s command is not a Uint8Array`;
  if (entry.type === 'config' && !entry.config) return `entry ${entry.index} is a config entry without a configuration`;
  if (entry.type !== 'config' && entry.config) return `entry ${entry.index} is a ${entry.type} entry carrying a configuration`;
  if (entry.type !== 'command' && entry.command.byteLength > 0) return `entry ${entry.index} is a ${entry.type} entry carrying command bytes`;
  if (entry.config) {
    const problem = checkConfigurationToWrite(entry.config);
    if (problem) return `entry ${entry.index}: ${problem}`;
  }
  return undefined;
}

/** Checks that a configuration will read back as written (see {@link decodeConfiguration}). */
export function checkConfigurationToWrite(config: Configuration): string | undefined {
  try {
    decodeConfiguration(encodeConfiguration(config));
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}
