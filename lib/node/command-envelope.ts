import { RaftError } from '../core/errors.js';

/**
 * How a command travels through the log: the user's bytes behind a small header that names the
 * client session it belongs to (Raft thesis §6.3), so that a retried command is recognised and
 * answered from the session table instead of being applied twice.
 *
 * Layout: magic (4 bytes) · flags (1) · [client id (16) · sequence (8, big-endian) · lowest
 * unanswered sequence (8)] · the command. Flag bit 0: the session fields are present.
 */
const MAGIC = [0x89, 0x52, 0x46, 0x01] as const; // \x89 "RF" v1: never the start of UTF-8 text
const HEADER = MAGIC.length + 1;
const SESSION_FIELDS = 16 + 8 + 8;

/** The most bytes the envelope adds to a command. */
export const MAX_ENVELOPE_OVERHEAD = HEADER + SESSION_FIELDS;

/** The session of one command: who sent it, its number, and what the client still waits for. */
export interface CommandSession {
  /** 32 hex characters: 16 random bytes chosen by the client. */
  readonly clientId: string;
  /** 1, 2, 3 … per client. */
  readonly sequence: number;
  /** The lowest sequence the client has not yet seen answered: every answer below it may be forgotten. */
  readonly lowestUnanswered: number;
}

export interface DecodedCommand {
  readonly session?: CommandSession;
  readonly payload: Uint8Array;
}

/** A command's framing is damaged (only possible for bytes that did not come from a RaftNode). */
export class CommandEnvelopeError extends RaftError {}

export function encodeCommand(payload: Uint8Array, session?: CommandSession): Uint8Array {
  const out = new Uint8Array(HEADER + (session ? SESSION_FIELDS : 0) + payload.byteLength);
  out.set(MAGIC, 0);
  out[MAGIC.length] = session ? 1 : 0;
  let offset = HEADER;
  if (session) {
    out.set(hexToBytes(session.clientId), offset);
    offset += 16;
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    view.setBigUint64(offset, BigInt(session.sequence));
    view.setBigUint64(offset + 8, BigInt(session.lowestUnanswered));
    offset += 16;
  }
  out.set(payload, offset);
  return out;
}

/** True when `bytes` carry the envelope (anything else is a bare command from an older or foreign client). */
export function isEnvelope(bytes: Uint8Array): boolean {
  return bytes.byteLength >= HEADER && MAGIC.every((b, i) => bytes[i] === b);
}

export function decodeCommand(bytes: Uint8Array): DecodedCommand {
  if (!isEnvelope(bytes)) return { payload: bytes };
  const flags = bytes[MAGIC.length]!;
  if (flags & ~1) throw new CommandEnvelopeError(`unknown command flags ${flags}`);
  if (!(flags & 1)) return { payload: bytes.subarray(HEADER) };
  if (bytes.byteLength < HEADER + SESSION_FIELDS) throw new CommandEnvelopeError('truncated command session header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const clientId = bytesToHex(bytes.subarray(HEADER, HEADER + 16));
  const sequence = Number(view.getBigUint64(HEADER + 16));
  const lowestUnanswered = Number(view.getBigUint64(HEADER + 24));
  if (!Number.isSafeInteger(sequence) || sequence < 1 || !Number.isSafeInteger(lowestUnanswered) || lowestUnanswered < 1) {
    throw new CommandEnvelopeError('command session numbers out of range');
  }
  return { session: { clientId, sequence, lowestUnanswered }, payload: bytes.subarray(HEADER + SESSION_FIELDS) };
}

/** The last client id converted (a node encodes every command with its one id): parsing it each time showed in profiles. */
let lastHex = '';
let lastBytes = new Uint8Array(16);

function hexToBytes(hex: string): Uint8Array {
  if (hex === lastHex) return lastBytes;
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new CommandEnvelopeError(`client id must be 32 lowercase hex characters`);
  const out = new Uint8Array(Buffer.from(hex, 'hex'));
  lastHex = hex;
  lastBytes = out;
  return out;
}

function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
