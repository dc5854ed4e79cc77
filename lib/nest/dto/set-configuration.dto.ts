// class-transformer's @Type reads Reflect.getMetadata (undefined without emitted metadata, which is fine), so the polyfill must be loaded.
import 'reflect-metadata';
import { Type } from 'class-transformer';
import { ValidateNested } from 'class-validator';
import type { NodeId } from '../../core/types.js';
import type { SetConfigurationBody, WirePeer } from '../../transport/wire.js';
import { EachIsObject, IsAbsentOr, IsArrayOf, IsHttpUrl, IsNodeId } from './validators.js';

/** One member: its id, its base URL, or both (an id alone is asked from the URL, `GET {prefix}/id`). */
export class WirePeerDto implements WirePeer {
  @IsAbsentOr()
  @IsNodeId()
  id?: NodeId;

  @IsAbsentOr()
  @IsHttpUrl()
  url?: string;
}

/** `POST {prefix}/setconfiguration`: the complete new set of voters, and of learners when given. */
export class SetConfigurationDto implements SetConfigurationBody {
  @IsArrayOf('peers')
  @EachIsObject()
  @ValidateNested({ each: true })
  @Type(() => WirePeerDto)
  peers!: WirePeerDto[];

  @IsAbsentOr()
  @IsArrayOf('learners')
  @EachIsObject()
  @ValidateNested({ each: true })
  @Type(() => WirePeerDto)
  learners?: WirePeerDto[];
}
