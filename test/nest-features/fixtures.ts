import type { INestApplication, LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { HttpTransport, RaftService, type RaftPeer, type RaftTransport } from '../../lib/index.js';
export { eventually, freePort } from '../support/wait.js';
import { eventually, freePort } from '../support/wait.js';



/** An HTTP request; the body parsed as JSON when it is JSON. Redirects are not followed unless asked. */
export async function http(
  method: string,
  url: string,
  options: { body?: unknown; follow?: boolean } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, {
    method,
    redirect: options.follow ? 'follow' : 'manual',
    ...(options.body !== undefined ? { body: JSON.stringify(options.body), headers: { 'content-type': 'application/json' } } : {}),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body, headers: res.headers };
}

/** Applications started by a test file, closed after each test. */
export const apps: INestApplication[] = [];

export async function closeApps(): Promise<void> {
  await Promise.allSettled(apps.splice(0).map((a) => a.close()));
}

/** Creates the application, lets `before` touch it (instances exist, hooks not run yet), then listens. */
export async function startApp(
  module: unknown,
  host: string,
  port: number,
  options: { logger?: LoggerService | false; before?: (app: INestApplication) => void } = {},
): Promise<INestApplication> {
  const app = await NestFactory.create(module as never, { logger: options.logger ?? false, abortOnError: false });
  apps.push(app);
  options.before?.(app);
  await app.listen(port, host);
  return app;
}

export interface Peer {
  readonly id: number;
  readonly host: string;
  readonly port: number;
  readonly url: string;
}

/** One `{ id, url }` per loopback host, each on a free port. */
export async function peersOn(hosts: readonly string[]): Promise<Peer[]> {
  return Promise.all(
    hosts.map(async (host, i) => {
      const port = await freePort(host);
      return { id: i + 1, host, port, url: `http://${host}:${port}` };
    }),
  );
}

export function leaderOf(services: readonly RaftService[], timeoutMs = 10_000): Promise<RaftService> {
  return eventually(() => {
    const leaders = services.filter((s) => s.isLeader());
    // every running node agrees on it
    if (leaders.length !== 1) return undefined;
    return services.every((s) => s.leaderId === leaders[0]!.nodeId) ? leaders[0] : undefined;
  }, timeoutMs, 'one leader that every node knows');
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Which messages of an in-process cluster to drop: a predicate on (from, to, rpc). */
export class Faults {
  private rule: ((from: number, to: number, rpc: 'appendEntries' | 'requestVote') => boolean) | undefined;
  drop(rule: (from: number, to: number, rpc: 'appendEntries' | 'requestVote') => boolean): void {
    this.rule = rule;
  }
  heal(): void {
    this.rule = undefined;
  }
  dropped(from: number, to: number, rpc: 'appendEntries' | 'requestVote'): boolean {
    return this.rule?.(from, to, rpc) ?? false;
  }
}

/** The HTTP transport, with the messages `faults` names lost on the way (the node sees no answer). */
export function faultyTransport(from: number, faults: Faults): RaftTransport {
  const inner = new HttpTransport({ rpcTimeoutMs: 400, backoffMaxMs: 100 });
  return {
    peer(id, url): RaftPeer {
      const peer = inner.peer(id, url);
      const guard = <T>(rpc: 'appendEntries' | 'requestVote', call: () => Promise<T>): Promise<T> =>
        faults.dropped(from, id, rpc) ? Promise.reject(new Error(`dropped ${rpc} ${from}→${id}`)) : call();
      return {
        id,
        appendEntries: (request, options) => guard('appendEntries', () => peer.appendEntries(request, options)),
        requestVote: (request, options) => guard('requestVote', () => peer.requestVote(request, options)),
        command: (command, options) => peer.command(command, options),
        setConfiguration: (members, options) => peer.setConfiguration(members, options),
        close: () => peer.close(),
      };
    },
    discoverId: (url, options) => inner.discoverId(url, options),
    close: () => inner.close(),
  };
}

/** A Nest logger that keeps what is logged as errors. */
export class CapturingLogger implements LoggerService {
  readonly errors: string[] = [];
  log(): void {}
  warn(): void {}
  debug(): void {}
  verbose(): void {}
  error(message: unknown, ...rest: unknown[]): void {
    this.errors.push([message, ...rest].map(String).join(' '));
  }
}

/**
 * Options every multi-node test cluster here takes: the nodes talk over loopback addresses nobody else
 * uses, and some through {@link faultyTransport}, which does not sign requests.
 */
export const TEST_CLUSTER_OPTIONS = { insecureNoAuth: true } as const;
