import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { RaftExceptionFilter } from '../../lib/index.js';
import { AppModule } from './app.module.js';
import type { SampleConfig } from './config.js';
import { MAX_KEY_LENGTH } from './kv.controller.js';

/** Express's JSON parser's default limit: both platforms refuse the same bodies. */
const BODY_LIMIT_BYTES = 100 * 1024;
/**
 * Fastify's router refuses a path parameter longer than 100 characters (414); a key may have
 * {@link MAX_KEY_LENGTH} code units, each up to 9 characters once URL-encoded (3 UTF-8 bytes as %XX),
 * and the controller answers a longer one with 400 as on Express.
 */
const MAX_PARAM_LENGTH = 9 * MAX_KEY_LENGTH;

/**
 * The sample's Nest application on the platform of `config.httpPlatform`, with its global
 * `RaftExceptionFilter`, answering the same requests the same way on both platforms. On Fastify, a
 * JSON body declared in a charset other than UTF-8 is refused with 415, as Express's JSON parser does
 * (Fastify would read it as UTF-8 whatever it says, and store something other than what was sent),
 * and keys as long as the controller allows reach it.
 */
export async function createSampleApp(config: SampleConfig): Promise<INestApplication> {
  const options = {
    logger: ['error', 'warn', 'log'] as ('error' | 'warn' | 'log')[],
    // With RPC_PORT=none the RPCs share the app's body parser: the raw bytes are kept for their signatures.
    rawBody: !config.rpc,
  };
  const module = AppModule.forNode(config);
  const app = config.httpPlatform === 'fastify' ? await NestFactory.create(module, fastifyAdapter(), options) : await NestFactory.create(module, options);
  // Raft errors from the controllers answer with the RPCs' status and `code` (421 not_leader …), not 500.
  app.useGlobalFilters(new RaftExceptionFilter());
  return app;
}

/** Fastify, set to refuse and accept what Express does (see createSampleApp). */
function fastifyAdapter(): FastifyAdapter {
  const adapter = new FastifyAdapter({ bodyLimit: BODY_LIMIT_BYTES, maxParamLength: MAX_PARAM_LENGTH });
  adapter.getInstance().addHook('onRequest', (request, reply, done) => {
    const charset = charsetOf(request.headers['content-type']);
    if (charset === undefined || charset === 'utf-8' || charset === 'utf8') return done();
    void reply.code(415).send({ statusCode: 415, message: `unsupported charset "${charset.toUpperCase()}"`, error: 'Unsupported Media Type' });
  });
  return adapter;
}

/** The charset parameter of a Content-Type, lower-cased and unquoted; undefined when there is none. */
function charsetOf(contentType: string | undefined): string | undefined {
  if (!contentType) return undefined;
  for (const parameter of contentType.split(';').slice(1)) {
    const [name, value] = parameter.split('=', 2).map((part) => part.trim());
    if (name?.toLowerCase() === 'charset') return (value ?? '').replace(/^"(.*)"$/, '$1').toLowerCase();
  }
  return undefined;
}
