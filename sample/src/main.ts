import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { RaftExceptionFilter } from '../../lib/index.js';
import { AppModule } from './app.module.js';
import { loadConfig } from './config.js';

/** Starts one node of the sample cluster; see config.ts for its environment variables. */
async function main(): Promise<void> {
  const config = loadConfig();
  const app = await NestFactory.create(AppModule.forNode(config), { logger: ['error', 'warn', 'log'] });
  app.useGlobalFilters(new RaftExceptionFilter());
  app.enableShutdownHooks();
  await app.listen(config.port, config.host);
  console.log(`node ${config.nodeId} listening on ${config.url} (pid ${process.pid})`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
