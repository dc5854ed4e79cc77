// class-transformer's @Type reads Reflect.getMetadata (undefined without emitted metadata, which is fine), so the polyfill must be loaded.
import 'reflect-metadata';
import { Type } from 'class-transformer';
import { ValidateNested } from 'class-validator';
import type { EntryType, NodeId } from '../../core/types.js';
import type { AppendEntriesBody, WireConfiguration, WireEntry } from '../../transport/wire.js';
import { EachIsObject, IsAbsentOr, IsAddressMap, IsArrayOf, IsBase64Bytes, IsIndex, IsLearnerSet, IsNodeId, IsObject, IsOneOf, IsVoterSet } from './validators.js';

export const ENTRY_TYPES: readonly EntryType[] = ['command', 'noop', 'config'];

/** A configuration carried by an entry of type `config`. */
export class WireConfigurationDto implements WireConfiguration {
  @IsVoterSet()
  voters!: NodeId[];

  @IsAbsentOr()
  @IsVoterSet()
  outgoing?: NodeId[];

  @IsAbsentOr()
  @IsLearnerSet()
  learners?: NodeId[];

  @IsAbsentOr()
  @IsAddressMap()
  addresses?: Record<string, string>;
}

/** One log entry of an AppendEntries. */
export class WireEntryDto implements WireEntry {
  @IsIndex()
  index!: number;

  @IsIndex()
  term!: number;

  @IsBase64Bytes()
  command!: string;

  @IsAbsentOr()
  @IsOneOf(ENTRY_TYPES)
  type?: EntryType;

  @IsAbsentOr()
  @IsObject()
  @ValidateNested()
  @Type(() => WireConfigurationDto)
  config?: WireConfigurationDto;
}

/** `POST {prefix}/appendentries` (§5.3). */
export class AppendEntriesDto implements AppendEntriesBody {
  @IsIndex()
  term!: number;

  @IsNodeId()
  leader_id!: NodeId;

  @IsIndex()
  prev_log_index!: number;

  @IsIndex()
  prev_log_term!: number;

  @IsArrayOf('entries')
  @EachIsObject()
  @ValidateNested({ each: true })
  @Type(() => WireEntryDto)
  entries!: WireEntryDto[];

  @IsIndex()
  commit_index!: number;
}
