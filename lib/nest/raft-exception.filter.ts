import { Catch, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { RaftError } from '../core/errors.js';
import { errorToWire } from '../transport/wire.js';

/**
 * Answers Raft errors thrown by your handlers (e.g. from `RaftService.command()`) with the same status
 * and JSON body the RPC endpoints use — a stable `code` (`not_leader` 421 with `leader_id`/`leader_url`,
 * `timeout` 504, `leadership_lost` 503, `configuration_change` 409 …) — instead of a 500.
 *
 * `app.useGlobalFilters(new RaftExceptionFilter())`, or `@UseFilters(RaftExceptionFilter)` on a controller.
 */
@Catch(RaftError)
export class RaftExceptionFilter implements ExceptionFilter<RaftError> {
  catch(error: RaftError, host: ArgumentsHost): void {
    // Express's response has json(), Fastify's reply send() (which serializes an object as JSON).
    const response = host.switchToHttp().getResponse<{ status(code: number): { json?(body: unknown): void; send(body: unknown): void } }>();
    const { status, body } = errorToWire(error);
    const answer = response.status(status);
    if (typeof answer.json === 'function') answer.json({ statusCode: status, ...body });
    else answer.send({ statusCode: status, ...body });
  }
}
