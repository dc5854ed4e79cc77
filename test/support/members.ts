import { freePort } from './wait.js';

/** A node of a test cluster on loopback: its public port and its Raft RPC listener's port. */
export interface Member {
  readonly id: number;
  readonly host: string;
  readonly port: number;
  readonly rpcPort: number;
  readonly url: string;
  readonly rpcUrl: string;
}

/** One member per loopback host (ids from 1), each with two free ports. */
export async function membersOn(hosts: readonly string[]): Promise<Member[]> {
  return Promise.all(
    hosts.map(async (host, i) => {
      const port = await freePort(host);
      const rpcPort = await freePort(host);
      return { id: i + 1, host, port, rpcPort, url: `http://${host}:${port}`, rpcUrl: `http://${host}:${rpcPort}` };
    }),
  );
}
