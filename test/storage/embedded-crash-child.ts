/**
 * Run by embedded-crash.test.ts in a child process: starts an embedded server on the directory given
 * as argument and saves the batches of {@link crashWorkload} as node 1, pipelined as a driver does
 * (the next save is queued before the previous one resolved), printing `saved <n>` once batch n is
 * acknowledged, until the parent kills it with SIGKILL.
 */
import { EmbeddedPostgres } from '../../lib/storage/embedded/index.js';
import { TypeOrmStorage } from '../../lib/storage/typeorm/index.js';
import { crashWorkload } from './fixtures.js';

const server = await EmbeddedPostgres.start({ dataDir: process.argv[2]! });
const storage = new TypeOrmStorage({ nodeId: 1, ...server.storageOptions() });
await storage.load();
let n = 0;
for (const batch of crashWorkload()) {
  const number = n++;
  void storage.save(batch).then(() => process.stdout.write(`saved ${number}\n`));
  if (n % 4 === 0) await new Promise((resolve) => setImmediate(resolve));
}
