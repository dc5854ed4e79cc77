import type { ValueTransformer } from 'typeorm';

/**
 * Reads a PostgreSQL `bigint` as a JavaScript number, and refuses the ones a number cannot hold.
 *
 * `pg` returns `bigint` (int8) columns as strings, because a double holds integers exactly only up to
 * 2^53 - 1. Terms and indexes never get there in practice, but a value that did (or a corrupted one)
 * must be an error, never a silently rounded index. Numbers and bigints are accepted too, for a `pg`
 * configured with `parseInt8` or a custom type parser.
 *
 * @throws RangeError when the value is not an integer or is beyond `Number.MAX_SAFE_INTEGER`.
 */
export function toSafeInteger(value: unknown): number {
  let parsed: number;
  if (typeof value === 'number') parsed = value;
  else if (typeof value === 'bigint') parsed = Number(value);
  else if (typeof value === 'string' && /^-?\d+$/.test(value)) parsed = Number(value);
  else throw new RangeError(`${describe(value)} is not an integer`);
  if (!Number.isInteger(parsed) && typeof value === 'number') throw new RangeError(`${describe(value)} is not an integer`);
  if (!Number.isSafeInteger(parsed) || (typeof value === 'bigint' && BigInt(parsed) !== value)) {
    throw new RangeError(`${describe(value)} is beyond Number.MAX_SAFE_INTEGER (2^53 - 1)`);
  }
  return parsed;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `'${value.length > 40 ? `${value.slice(0, 40)}…` : value}'`;
  if (typeof value === 'bigint') return `${value}n`;
  return String(value);
}

/**
 * The column transformer of every `bigint` column of the Raft entities: {@link toSafeInteger} on the
 * way in and out, so an entity read through TypeORM gets numbers, never strings or rounded values.
 */
export const safeIntegerTransformer: ValueTransformer = {
  to(value: unknown): unknown {
    // TypeORM also passes FindOperators (e.g. `MoreThan(5)`) through `to`; those are not values.
    if (value === null || value === undefined || typeof value === 'object') return value;
    return toSafeInteger(value);
  },
  from(value: unknown): unknown {
    if (value === null || value === undefined) return value;
    return toSafeInteger(value);
  },
};
