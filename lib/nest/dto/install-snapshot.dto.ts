// class-transformer's @Type reads Reflect.getMetadata (undefined without emitted metadata, which is fine), so the polyfill must be loaded.
import 'reflect-metadata';
import { Type } from 'class-transformer';
import { ValidateNested } from 'class-validator';
import type { NodeId } from '../../core/types.js';
import type { InstallSnapshotBody } from '../../transport/wire.js';
import { WireConfigurationDto } from './append-entries.dto.js';
import { IsAbsentOr, IsBase64Bytes, IsIndex, IsNodeId, IsObject, IsSha256Hex, IsStrictBoolean } from './validators.js';

/** `POST {prefix}/installsnapshot`: one chunk of a snapshot (thesis §5.4.1, Figure 5.3). */
export class InstallSnapshotDto implements InstallSnapshotBody {
  @IsIndex()
  term!: number;

  @IsNodeId()
  leader_id!: NodeId;

  @IsIndex()
  last_included_index!: number;

  @IsIndex()
  last_included_term!: number;

  @IsObject()
  @ValidateNested()
  @Type(() => WireConfigurationDto)
  configuration!: WireConfigurationDto;

  @IsIndex()
  size!: number;

  @IsIndex()
  offset!: number;

  @IsBase64Bytes()
  data!: string;

  @IsStrictBoolean()
  done!: boolean;

  @IsAbsentOr()
  @IsSha256Hex()
  digest?: string;
}
