import { validateVoterIds } from '../../core/configuration.js';
import type { Configuration, NodeId } from '../../core/types.js';

/**
 * A {@link Configuration} as stored in a `jsonb` column: exactly `{ voters, outgoing?, learners?, addresses? }`,
 * whatever else the object carries at run time.
 */
export function encodeConfiguration(config: Configuration): string {
  return JSON.stringify({
    voters: config.voters,
    ...(config.outgoing !== undefined ? { outgoing: config.outgoing } : {}),
    ...(config.learners !== undefined && config.learners.length > 0 ? { learners: config.learners } : {}),
    ...(config.addresses !== undefined ? { addresses: config.addresses } : {}),
  });
}

const FIELDS = new Set(['voters', 'outgoing', 'learners', 'addresses']);

/**
 * Reads back a stored configuration, checking its shape. A field this version does not know (written
 * by a newer one) is an error: dropping it would silently change the membership.
 *
 * @throws Error saying what is wrong.
 */
export function decodeConfiguration(value: unknown): Configuration {
  if (typeof value === 'string') value = JSON.parse(value) as unknown;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`the configuration is ${JSON.stringify(value)}, not an object`);
  const record = value as Record<string, unknown>;
  const unknown = Object.keys(record).filter((key) => !FIELDS.has(key));
  if (unknown.length > 0) throw new Error(`the configuration has unknown field(s) ${unknown.join(', ')}`);
  const voters = decodeIds(record.voters, 'voters');
  const outgoing = record.outgoing === undefined || record.outgoing === null ? undefined : decodeIds(record.outgoing, 'outgoing');
  const learners = record.learners === undefined || record.learners === null ? undefined : decodeIds(record.learners, 'learners');
  const overlap = learners?.find((id) => voters.includes(id) || (outgoing?.includes(id) ?? false));
  if (overlap !== undefined) throw new Error(`the configuration names node ${overlap} both as a voter and as a learner`);
  let addresses: Record<string, string> | undefined;
  if (record.addresses !== undefined && record.addresses !== null) {
    if (typeof record.addresses !== 'object' || Array.isArray(record.addresses)) throw new Error('the configuration\'s addresses are not an object');
    addresses = {};
    for (const [id, address] of Object.entries(record.addresses as Record<string, unknown>)) {
      if (typeof address !== 'string') throw new Error(`the configuration's address of node ${id} is not a string`);
      addresses[id] = address;
    }
  }
  return { voters, ...(outgoing ? { outgoing } : {}), ...(learners?.length ? { learners } : {}), ...(addresses ? { addresses } : {}) };
}

function decodeIds(value: unknown, field: string): NodeId[] {
  if (!Array.isArray(value)) throw new Error(`the configuration's ${field} is not an array`);
  const ids = value as NodeId[];
  const problem = validateVoterIds(ids);
  if (problem) throw new Error(`the configuration's ${field} ${JSON.stringify(ids)} are invalid: ${problem}`);
  if (ids.some((id, i) => i > 0 && id < ids[i - 1]!)) throw new Error(`the configuration's ${field} ${JSON.stringify(ids)} are not sorted`);
  return ids;
}
