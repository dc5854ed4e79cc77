import {
  BadRequestException,
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  NotFoundException,
  Param,
  Post,
  Put,
  ValidationPipe,
} from '@nestjs/common';
import { Allow, IsDefined } from 'class-validator';
import { RaftService } from '../../lib/index.js';
import type { KvAnswer, KvCommand } from './kv.state-machine.js';

const MAX_KEY_LENGTH = 256;
const MAX_VALUE_BYTES = 64 * 1024;

class PutDto {
  @IsDefined({ message: 'value is required' })
  value!: unknown;
}

class CasDto {
  /** The value expected now; null (or absent) means "the key does not exist". */
  @Allow()
  expected?: unknown;
  @IsDefined({ message: 'value is required' })
  value!: unknown;
}

function checkKey(key: string): string {
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) throw new BadRequestException(`key must be 1 to ${MAX_KEY_LENGTH} characters`);
  return key;
}

function checkValue(value: unknown): unknown {
  if (Buffer.byteLength(JSON.stringify(value)) > MAX_VALUE_BYTES) throw new BadRequestException(`value must be at most ${MAX_VALUE_BYTES} bytes of JSON`);
  return value;
}

/**
 * The sample's public API: a replicated key-value store. Any node accepts any request; writes and
 * reads go through the Raft log, so a read sees every write acknowledged before it (linearizable).
 */
@Controller('kv')
export class KvController {
  constructor(@Inject(RaftService) private readonly raft: RaftService) {}

  private run(command: KvCommand): Promise<KvAnswer> {
    return this.raft.command<KvAnswer>(JSON.stringify(command));
  }

  @Get(':key')
  async get(@Param('key') key: string): Promise<{ key: string; value: unknown }> {
    const answer = await this.run({ op: 'get', key: checkKey(key) });
    if (!('found' in answer) || !answer.found) throw new NotFoundException(`key ${JSON.stringify(key)} not found`);
    return { key, value: answer.value };
  }

  @Put(':key')
  async put(@Param('key') key: string, @Body(new ValidationPipe({ expectedType: PutDto, whitelist: true, forbidNonWhitelisted: true })) body: PutDto): Promise<{ ok: boolean }> {
    return (await this.run({ op: 'put', key: checkKey(key), value: checkValue(body.value) })) as { ok: boolean };
  }

  @Delete(':key')
  async delete(@Param('key') key: string): Promise<{ ok: boolean }> {
    return (await this.run({ op: 'delete', key: checkKey(key) })) as { ok: boolean };
  }

  @Post(':key/cas')
  @HttpCode(200)
  async cas(@Param('key') key: string, @Body(new ValidationPipe({ expectedType: CasDto, whitelist: true, forbidNonWhitelisted: true })) body: CasDto): Promise<{ ok: boolean }> {
    return (await this.run({ op: 'cas', key: checkKey(key), expected: body.expected ?? null, value: checkValue(body.value) })) as { ok: boolean };
  }
}
