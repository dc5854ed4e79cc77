/**
 * The class-validator decorators the RPC bodies are built from. Each message starts with the
 * property's name, which `parse-rpc-body.ts` replaces by the full path (`entries.0.term`).
 *
 * None of them relies on emitted decorator metadata.
 */
import { ValidateBy, ValidateIf, type ValidationArguments } from 'class-validator';
import { isIndex, isNodeId, isStrictBase64 } from '../../transport/wire.js';

/** Most members a configuration may name (a sanity bound, far above any real cluster). */
export const MAX_MEMBERS = 1024;

/** Longest URL accepted for a member. */
export const MAX_URL_LENGTH = 2048;

const missing = (args: ValidationArguments | undefined) => args?.value === undefined;

/** Validates the property only when present: `null` is not "absent" and fails the other checks. */
export function IsAbsentOr(): PropertyDecorator {
  return ValidateIf((_object, value) => value !== undefined);
}

/** A term or an index: a non-negative safe integer (no float, NaN, string or number above 2^53 − 1). */
export function IsIndex(): PropertyDecorator {
  return ValidateBy({
    name: 'isIndex',
    validator: {
      validate: (value) => isIndex(value),
      defaultMessage: (args) =>
        missing(args)
          ? `${args!.property} is required (a non-negative integer)`
          : typeof args!.value === 'number' && Number.isInteger(args!.value) && args!.value > 0
            ? `${args!.property} must be a non-negative integer no greater than ${Number.MAX_SAFE_INTEGER}`
            : `${args!.property} must be a non-negative integer`,
    },
  });
}

/** A node id: a positive safe integer. */
export function IsNodeId(): PropertyDecorator {
  return ValidateBy({
    name: 'isNodeId',
    validator: {
      validate: (value) => isNodeId(value),
      defaultMessage: (args) =>
        missing(args) ? `${args!.property} is required (a positive integer)` : `${args!.property} must be a positive integer no greater than ${Number.MAX_SAFE_INTEGER}`,
    },
  });
}

export function IsStrictBoolean(): PropertyDecorator {
  return ValidateBy({
    name: 'isStrictBoolean',
    validator: {
      validate: (value) => typeof value === 'boolean',
      defaultMessage: (args) => `${args!.property} must be true or false`,
    },
  });
}

/** Standard, padded, canonical base64 (see `isStrictBase64`). */
export function IsBase64Bytes(): PropertyDecorator {
  return ValidateBy({
    name: 'isBase64Bytes',
    validator: {
      validate: (value) => typeof value === 'string' && isStrictBase64(value),
      defaultMessage: (args) =>
        missing(args)
          ? `${args!.property} is required (base64 text)`
          : typeof args!.value !== 'string'
            ? `${args!.property} must be base64 text`
            : `${args!.property} must be standard base64 (A-Z a-z 0-9 + /, padded with = to a multiple of 4)`,
    },
  });
}

/** A SHA-256 digest: 64 lowercase hex digits. */
export function IsSha256Hex(): PropertyDecorator {
  return ValidateBy({
    name: 'isSha256Hex',
    validator: {
      validate: (value) => typeof value === 'string' && /^[0-9a-f]{64}$/.test(value),
      defaultMessage: (args) => `${args!.property} must be a SHA-256 digest (64 lowercase hex digits)`,
    },
  });
}

export function IsOneOf(values: readonly string[]): PropertyDecorator {
  return ValidateBy({
    name: 'isOneOf',
    constraints: [values],
    validator: {
      validate: (value) => typeof value === 'string' && values.includes(value),
      defaultMessage: (args) => `${args!.property} must be one of ${values.map((v) => `"${v}"`).join(', ')}`,
    },
  });
}

/** An array, with a readable message (class-validator's own mentions no path). */
export function IsArrayOf(what: string): PropertyDecorator {
  return ValidateBy({
    name: 'isArrayOf',
    validator: {
      validate: (value) => Array.isArray(value),
      defaultMessage: (args) => (missing(args) ? `${args!.property} is required (an array of ${what})` : `${args!.property} must be an array of ${what}`),
    },
  });
}

/** Every element is a JSON object (checked before the nested validation, which would only say "nested property"). */
export function EachIsObject(): PropertyDecorator {
  return ValidateBy({
    name: 'eachIsObject',
    validator: {
      validate: (value) => !Array.isArray(value) || firstNonObject(value) < 0,
      defaultMessage: (args) => `${args!.property}.${firstNonObject(args!.value as unknown[])} must be an object`,
    },
  });
}

/** Index of the first item that is not an object (holes included, which `every` would skip), or -1. */
function firstNonObject(items: readonly unknown[]): number {
  for (let i = 0; i < items.length; i++) if (!isPlainObject(items[i])) return i;
  return -1;
}

/** A JSON object (for a nested DTO property). */
export function IsObject(): PropertyDecorator {
  return ValidateBy({
    name: 'isObject',
    validator: {
      validate: (value) => isPlainObject(value),
      defaultMessage: (args) => (missing(args) ? `${args!.property} is required (an object)` : `${args!.property} must be an object`),
    },
  });
}

/** A set of voters: 1 to {@link MAX_MEMBERS} distinct positive integers. */
export function IsVoterSet(): PropertyDecorator {
  return ValidateBy({
    name: 'isVoterSet',
    validator: {
      validate: (value) => voterSetProblem(value) === undefined,
      defaultMessage: (args) => `${args!.property} ${voterSetProblem(args!.value) ?? ''}`,
    },
  });
}

/** Learners of a configuration: a node-id set disjoint from the object's `voters` and `outgoing`. */
export function IsLearnerSet(): PropertyDecorator {
  return ValidateBy({
    name: 'isLearnerSet',
    validator: {
      validate: (value, args) => learnerSetProblem(value, args!.object as Record<string, unknown>) === undefined,
      defaultMessage: (args) => `${args!.property} ${learnerSetProblem(args!.value, args!.object as Record<string, unknown>) ?? ''}`,
    },
  });
}

export function learnerSetProblem(value: unknown, config: Record<string, unknown>): string | undefined {
  const problem = voterSetProblem(value);
  if (problem) return problem;
  const voters = [...(Array.isArray(config.voters) ? config.voters : []), ...(Array.isArray(config.outgoing) ? config.outgoing : [])] as unknown[];
  const both = (value as unknown[]).find((id) => voters.includes(id));
  return both === undefined ? undefined : `must not name a voter (node ${String(both)} is one)`;
}

export function voterSetProblem(value: unknown): string | undefined {
  if (value === undefined) return 'is required (an array of node ids)';
  if (!Array.isArray(value)) return 'must be an array of node ids';
  if (value.length === 0) return 'must name at least one node';
  if (value.length > MAX_MEMBERS) return `must name at most ${MAX_MEMBERS} nodes`;
  const bad = value.findIndex((id) => !isNodeId(id));
  if (bad >= 0) return `must hold positive integers (item ${bad} is not)`;
  if (new Set(value).size !== value.length) return 'must not name a node twice';
  return undefined;
}

/** Member id (canonical decimal) → http(s) URL, at most {@link MAX_MEMBERS} of them. */
export function IsAddressMap(): PropertyDecorator {
  return ValidateBy({
    name: 'isAddressMap',
    validator: {
      validate: (value) => addressMapProblem(value) === undefined,
      defaultMessage: (args) => `${args!.property}${addressMapProblem(args!.value) ?? ''}`,
    },
  });
}

export function addressMapProblem(value: unknown): string | undefined {
  if (!isPlainObject(value)) return ' must be an object mapping node ids to URLs';
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_MEMBERS) return ` must hold at most ${MAX_MEMBERS} addresses`;
  for (const [key, url] of entries) {
    if (!/^[1-9][0-9]{0,15}$/.test(key) || !isNodeId(Number(key))) return ` has key "${key.slice(0, 20)}", which is not a node id`;
    if (!isHttpUrl(url)) return `.${key} must be an http or https URL`;
  }
  return undefined;
}

export function IsHttpUrl(): PropertyDecorator {
  return ValidateBy({
    name: 'isHttpUrl',
    validator: {
      validate: (value) => isHttpUrl(value),
      defaultMessage: (args) => `${args!.property} must be an http or https URL of at most ${MAX_URL_LENGTH} characters`,
    },
  });
}

export function isHttpUrl(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > MAX_URL_LENGTH) return false;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
