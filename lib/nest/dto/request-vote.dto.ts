import type { NodeId } from '../../core/types.js';
import type { RequestVoteBody } from '../../transport/wire.js';
import { IsAbsentOr, IsIndex, IsNodeId, IsStrictBoolean } from './validators.js';

/** `POST {prefix}/requestvote` (§5.2; `pre_vote`: thesis §9.6; `transfer`: thesis §3.10). */
export class RequestVoteDto implements RequestVoteBody {
  @IsIndex()
  term!: number;

  @IsNodeId()
  candidate_id!: NodeId;

  @IsIndex()
  last_log_index!: number;

  @IsIndex()
  last_log_term!: number;

  @IsAbsentOr()
  @IsStrictBoolean()
  pre_vote?: boolean;

  @IsAbsentOr()
  @IsStrictBoolean()
  transfer?: boolean;
}
