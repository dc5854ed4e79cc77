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
  type PipeTransform,
} from '@nestjs/common';
import { Allow, IsDefined } from 'class-validator';
import { RaftService } from '../../lib/index.js';
import { KvStateMachine, type KvAnswer, type KvCommand } from './kv.state-machine.js';

/** Longest key, in UTF-16 code units after URL decoding. */
export const MAX_KEY_LENGTH = 256;
const MAX_VALUE_BYTES = 64 * 1024;
/** Deepest nesting of a request body (the body object is level 1). */
const MAX_BODY_DEPTH = 32;
/** Names of Object.prototype's members: never a field of a body. */
const OBJECT_PROTOTYPE_KEYS: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));
/** Most values (objects, arrays and scalars together) in one body. */
const MAX_BODY_NODES = 10_000;

/**
 * Checks a body's JSON shape before anything recursive sees it (class-transformer, JSON.stringify and
 * the state machine recurse; a deeply nested value would overflow their stacks and answer 500): a JSON
 * object — not an array, a string or nothing — nested at most {@link MAX_BODY_DEPTH} deep, with at most
 * {@link MAX_BODY_NODES} values, and no key named `__proto__` or like another member of Object.prototype
 * (`constructor`, `toString` …). Iterative, so any input is safe.
 */
class JsonObjectPipe implements PipeTransform {
  transform(body: unknown): unknown {
    // No body, or one the JSON parser skipped (another content type): the DTO's checks name what is missing.
    if (body === undefined) return {};
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new BadRequestException(`the body must be a JSON object, not ${body === null ? 'null' : Array.isArray(body) ? 'an array' : `a ${typeof body}`}`);
    }
    const stack: Array<{ value: unknown; depth: number }> = [{ value: body, depth: 1 }];
    let nodes = 0;
    while (stack.length > 0) {
      const { value, depth } = stack.pop()!;
      if (++nodes > MAX_BODY_NODES) throw new BadRequestException(`the body holds more than ${MAX_BODY_NODES} values`);
      if (typeof value !== 'object' || value === null) continue;
      if (depth > MAX_BODY_DEPTH) throw new BadRequestException(`the body is nested more than ${MAX_BODY_DEPTH} levels deep`);
      for (const key of Object.keys(value)) {
        if (key === '__proto__') throw new BadRequestException('property __proto__ is not allowed');
        // Keys named like Object.prototype's members (constructor, toString …): class-validator's
        // whitelist misses them as fields, and Nest's ValidationPipe silently drops them inside values.
        // Refused, rather than stored differently from what was sent.
        if (!Array.isArray(value) && OBJECT_PROTOTYPE_KEYS.has(key)) throw new BadRequestException(`property ${key} is not allowed`);
        stack.push({ value: (value as Record<string, unknown>)[key], depth: depth + 1 });
      }
    }
    return body;
  }
}

/** Body pipes of a DTO: the shape check first, then class-validator (unknown properties refused). */
function bodyPipes(expectedType: new () => object): PipeTransform[] {
  return [new JsonObjectPipe(), new ValidationPipe({ expectedType, whitelist: true, forbidNonWhitelisted: true })];
}

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
  if (/[\u0000-\u001f\u007f]/.test(key)) throw new BadRequestException('key must not contain control characters');
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
  constructor(
    @Inject(RaftService) private readonly raft: RaftService,
    @Inject(KvStateMachine) private readonly store: KvStateMachine,
  ) {}

  private run(command: KvCommand): Promise<KvAnswer> {
    return this.raft.command<KvAnswer>(JSON.stringify(command));
  }

  /**
   * Linearizable without a log write (ReadIndex): once this node has applied every write committed
   * before the request, the answer comes from its own copy — on a follower too.
   */
  @Get(':key')
  async get(@Param('key') key: string): Promise<{ key: string; value: unknown }> {
    checkKey(key);
    const answer = await this.raft.read(() => this.store.read(key));
    if (!answer.found) throw new NotFoundException(`key ${JSON.stringify(key)} not found`);
    return { key, value: answer.value };
  }

  @Put(':key')
  async put(@Param('key') key: string, @Body(...bodyPipes(PutDto)) body: PutDto): Promise<{ ok: boolean }> {
    return (await this.run({ op: 'put', key: checkKey(key), value: checkValue(body.value) })) as { ok: boolean };
  }

  @Delete(':key')
  async delete(@Param('key') key: string): Promise<{ ok: boolean }> {
    return (await this.run({ op: 'delete', key: checkKey(key) })) as { ok: boolean };
  }

  @Post(':key/cas')
  @HttpCode(200)
  async cas(@Param('key') key: string, @Body(...bodyPipes(CasDto)) body: CasDto): Promise<{ ok: boolean }> {
    return (await this.run({ op: 'cas', key: checkKey(key), expected: body.expected ?? null, value: checkValue(body.value) })) as { ok: boolean };
  }
}
