import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import pg from 'pg';
import { RaftExceptionFilter, RaftService } from '../../lib/index.js';
import { RAFT_BASE_CONFIGURATION_TABLE } from '../../lib/storage/typeorm/entities/raft-base-configuration.entity.js';
import { RAFT_HARD_STATE_TABLE } from '../../lib/storage/typeorm/entities/raft-hard-state.entity.js';
import { RAFT_LOG_ENTRIES_TABLE } from '../../lib/storage/typeorm/entities/raft-log-entry.entity.js';
import { AppModule } from '../../sample/src/app.module.js';
import type { SampleConfig } from '../../sample/src/config.js';

import { DATABASE_URL, embeddedDataDir, realPostgresAvailable } from '../storage/fixtures.js';

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

/** A free TCP port on `host` (the OS picks one, then we release it). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface RunningNode {
  id: number;
  url: string;
  app: INestApplication;
  raft: RaftService;
}

/** Starts one node of the sample app in this process, on its own loopback address, over real HTTP and PostgreSQL. */
export async function startNode(config: Omit<SampleConfig, 'dataDir' | 'databaseUrl'> & { dataDir?: string }): Promise<RunningNode> {
  const storage = config.dataDir ? { dataDir: config.dataDir } : await storageFor(config.clusterId, config.nodeId);
  const app = await NestFactory.create(AppModule.forNode({ ...config, ...storage }), { logger: false });
  app.useGlobalFilters(new RaftExceptionFilter());
  await app.listen(config.port, config.host);
  return { id: config.nodeId, url: config.url, app, raft: app.get(RaftService) };
}

/** Polls `check` until it returns a value (not undefined), within `timeoutMs` of real time. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
}

export async function http(method: string, url: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: any }> {
  const res = await fetch(url, {
    method,
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': contentType } } : {}),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}
