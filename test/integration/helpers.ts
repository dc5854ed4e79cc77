import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import pg from 'pg';
import { RaftExceptionFilter, RaftService, createRaftRequestSigner } from '../../lib/index.js';
import { RAFT_BASE_CONFIGURATION_TABLE } from '../../lib/storage/typeorm/entities/raft-base-configuration.entity.js';
import { RAFT_HARD_STATE_TABLE } from '../../lib/storage/typeorm/entities/raft-hard-state.entity.js';
import { RAFT_LOG_ENTRIES_TABLE } from '../../lib/storage/typeorm/entities/raft-log-entry.entity.js';
import { RAFT_SNAPSHOT_CHUNKS_TABLE } from '../../lib/storage/typeorm/entities/raft-snapshot-chunk.entity.js';
import { RAFT_SNAPSHOTS_TABLE } from '../../lib/storage/typeorm/entities/raft-snapshot.entity.js';
import { AppModule } from '../../sample/src/app.module.js';
import type { SampleConfig } from '../../sample/src/config.js';

import { DATABASE_URL, embeddedDataDir, realPostgresAvailable } from '../storage/fixtures.js';
export { eventually, freePort } from '../support/wait.js';

export { DATABASE_URL };

/**
 * Whether a PostgreSQL server answers (CI starts one and sets RAFT_TEST_DATABASE_URL). Without one,
 * the nodes keep their logs in embedded PostgreSQL instead, so `npm test` passes on a fresh machine.
 */
export const REAL_POSTGRES = await realPostgresAvailable();

const embeddedDirs = new Map<string, string>();

/** Where a node of these tests keeps its log: the real server, or its own embedded data directory (the same one on restart). */
export async function storageFor(clusterId: string, nodeId: number): Promise<{ databaseUrl?: string; dataDir: string }> {
  if (REAL_POSTGRES) return { databaseUrl: DATABASE_URL, dataDir: '' };
  const key = `${clusterId}/${nodeId}`;
  if (!embeddedDirs.has(key)) embeddedDirs.set(key, await embeddedDataDir(join(mkdtempSync(join(tmpdir(), 'raft-it-')), `node-${nodeId}`)));
  return { dataDir: embeddedDirs.get(key)! };
}

const usedClusterIds: string[] = [];

/** A fresh cluster id, so each test's rows are its own in the shared database. */
export function freshClusterId(): string {
  const id = `it-${randomUUID().slice(0, 8)}`;
  usedClusterIds.push(id);
  return id;
}

/** Deletes the rows of every cluster this file created (call after all apps are closed). */
export async function dropTestClusters(): Promise<void> {
  if (!REAL_POSTGRES) return;
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    for (const table of [RAFT_LOG_ENTRIES_TABLE, RAFT_HARD_STATE_TABLE, RAFT_BASE_CONFIGURATION_TABLE]) {
      await client.query(`DELETE FROM ${table} WHERE cluster_id = ANY($1)`, [usedClusterIds]);
    }
  } finally {
    await client.end();
  }
}

/**
 * Deletes the snapshot rows (`raft_snapshots`, `raft_snapshot_chunks`) of every cluster this file
 * created: for tests whose nodes compact their logs (call it with {@link dropTestClusters}).
 */
export async function dropTestClusterSnapshots(): Promise<void> {
  if (!REAL_POSTGRES) return;
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    for (const table of [RAFT_SNAPSHOT_CHUNKS_TABLE, RAFT_SNAPSHOTS_TABLE]) {
      await client.query(`DELETE FROM ${table} WHERE cluster_id = ANY($1)`, [usedClusterIds]);
    }
  } finally {
    await client.end();
  }
}


/**
 * The cluster secret of the test clusters (multi-node clusters refuse to start without one). Tests
 * that need another pass `clusterSecret` in the node's config.
 */
export const TEST_CLUSTER_SECRET = 'nestjs-raft integration test cluster secret';

/** Node id the test client signs as when a body names no sender (an authenticated peer nobody knows). */
export const TEST_CLIENT_NODE_ID = 1_000_000;

/** Nodes started by {@link startNode}, by the base URL of their RPCs: what {@link http} signs for. */
const startedNodes = new Map<string, { nodeId: number; clusterId: string; secret: string }>();

export interface RunningNode {
  id: number;
  url: string;
  app: INestApplication;
  raft: RaftService;
}

/** Starts one node of the sample app in this process, on its own loopback address, over real HTTP and PostgreSQL. */
export async function startNode(config: Omit<SampleConfig, 'dataDir' | 'databaseUrl'> & { dataDir?: string }): Promise<RunningNode> {
  const storage = config.dataDir ? { dataDir: config.dataDir } : await storageFor(config.clusterId, config.nodeId);
  const clusterSecret = config.clusterSecret ?? (config.insecureNoAuth ? undefined : TEST_CLUSTER_SECRET);
  const app = await NestFactory.create(AppModule.forNode({ ...config, ...storage, ...(clusterSecret ? { clusterSecret } : {}) }), {
    logger: false,
    // Raft RPCs served on the public port (no rpc listener in the config) may come as application/json,
    // which the app's parser reads first: keeping the raw bytes lets their signatures be checked.
    rawBody: true,
  });
  app.useGlobalFilters(new RaftExceptionFilter());
  await app.listen(config.port, config.host);
  if (clusterSecret) startedNodes.set(new URL(config.url).origin, { nodeId: config.nodeId, clusterId: config.clusterId, secret: clusterSecret });
  return { id: config.nodeId, url: config.url, app, raft: app.get(RaftService) };
}


/**
 * An HTTP request from the tests. A POST to a Raft RPC of a node started by {@link startNode} is
 * signed with that node's cluster secret, as a peer would sign it — as the node its body names
 * (`leader_id`, `candidate_id`), else as {@link TEST_CLIENT_NODE_ID} — so that tests of the RPCs'
 * validation reach the validation (an unsigned request is refused before its body is read).
 */
export async function http(method: string, url: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: any }> {
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const headers: Record<string, string> = text !== undefined ? { 'content-type': contentType } : {};
  const target = new URL(url);
  const node = startedNodes.get(target.origin);
  if (node && method === 'POST' && /\/raft\/(appendentries|requestvote|command|setconfiguration)$/.test(target.pathname)) {
    const named = typeof body === 'object' && body !== null ? ((body as Record<string, unknown>).leader_id ?? (body as Record<string, unknown>).candidate_id) : undefined;
    const sender = Number.isSafeInteger(named) && (named as number) > 0 && named !== node.nodeId ? (named as number) : TEST_CLIENT_NODE_ID;
    headers['x-raft-to'] = String(node.nodeId);
    const sign = createRaftRequestSigner({ nodeId: sender, clusterId: node.clusterId, secret: node.secret });
    Object.assign(headers, sign({ method: 'POST', url: target, path: target.pathname + target.search, body: Buffer.from(text ?? ''), to: node.nodeId, headers }));
  }
  const res = await fetch(url, {
    method,
    ...(text !== undefined ? { body: text } : {}),
    headers,
    signal: AbortSignal.timeout(15_000),
  });
  const answer = await res.text();
  let parsed: unknown = answer;
  try {
    parsed = JSON.parse(answer);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}
