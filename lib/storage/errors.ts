import { RaftError } from '../core/errors.js';

/** What a storage found wrong with its own contents on load: the server must not start on it. */
export class StorageCorruptionError extends RaftError {}

/** A storage was used after {@link RaftStorage.close}, or after its owner crashed. */
export class StorageClosedError extends RaftError {}
