import 'reflect-metadata';
import { HttpServerDrain } from '../../lib/index.js';
import { loadConfig } from './config.js';
import { createSampleApp } from './http-platform.js';

/** Starts one node of the sample cluster; see config.ts for its environment variables. */
async function main(): Promise<void> {
  const config = loadConfig();
  const app = await createSampleApp(config);
  // A graceful stop fails no client request: stop accepting connections (clients move to another
  // node), answer what was sent with `Connection: close`, then let Nest transfer leadership and stop.
  // Not when the Raft RPCs share the public port (RPC_PORT=none): closing it would cut the node off
  // from its peers while it still has requests to finish, so that mode stops without draining.
  const drain = config.rpc ? new HttpServerDrain(app.getHttpServer()) : undefined;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    // A second signal while stopping gets Node's default: the process ends at once.
    process.once(signal, () => {
      console.log(`node ${config.nodeId}: ${signal}, ${drain ? 'draining HTTP connections, then ' : ''}stopping`);
      (drain ? drain.close({ timeoutMs: 5_000 }) : Promise.resolve())
        .then(() => app.close())
        .then(
          () => process.exit(0),
          (error: unknown) => {
            console.error(error);
            process.exit(1);
          },
        );
    });
  }
  await app.listen(config.port, config.host);
  const rpc = config.rpc ? `Raft RPCs on ${config.url} (own listener)` : `Raft RPCs on the public port (${config.url})`;
  console.log(`node ${config.nodeId} listening on http://${config.host}:${config.port} (${config.httpPlatform ?? 'express'}); ${rpc} (pid ${process.pid})`);
}

main().catch((error: unknown) => {
  console.error(error); // a RaftOptionsError names the option (never its value: the secret is not in any message)
  process.exit(1);
});
