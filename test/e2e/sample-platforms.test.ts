import type { INestApplication } from '@nestjs/common';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RaftService } from '../../lib/index.js';
import { createSampleApp } from '../../sample/src/http-platform.js';
import { dropTestClusters, eventually, freePort, freshClusterId, storageFor } from '../integration/helpers.js';

/**
 * The sample's public API answers the same requests the same way on Fastify (its default) and on
 * Express: key lengths, body limits, charsets and validation. A single-node cluster each, with its
 * log in PostgreSQL.
 */
const apps: INestApplication[] = [];
afterEach(async () => {
  await Promise.allSettled(apps.splice(0).map((a) => a.close()));
});
afterAll(dropTestClusters);

async function start(httpPlatform: 'fastify' | 'express', host: string): Promise<string> {
  const clusterId = freshClusterId();
  const port = await freePort(host);
  const rpcPort = await freePort(host);
  const rpcUrl = `http://${host}:${rpcPort}`;
  const app = await createSampleApp({
    nodeId: 1,
    host,
    port,
    url: rpcUrl,
    rpc: { host, port: rpcPort },
    httpPlatform,
    peers: [{ id: 1, url: rpcUrl }],
    clusterId,
    electionTimeoutMs: 100,
    insecureNoAuth: true,
    ...(await storageFor(clusterId, 1)),
  });
  apps.push(app);
  await app.listen(port, host);
  const raft = app.get(RaftService);
  await eventually(async () => (raft.isLeader() ? true : undefined), 10_000, 'the single node to lead');
  return `http://${host}:${port}`;
}

async function send(method: string, url: string, body?: string, contentType = 'application/json'): Promise<number> {
  const res = await fetch(url, { method, ...(body !== undefined ? { body, headers: { 'content-type': contentType } } : {}), signal: AbortSignal.timeout(15_000) });
  await res.arrayBuffer();
  return res.status;
}

describe("the sample's API on both platforms", () => {
  for (const [platform, host] of [['fastify', '127.0.0.71'], ['express', '127.0.0.72']] as const) {
    it(`${platform}: keys up to 256 characters (URL-encoded or not), bodies up to 100 KiB, UTF-8 only`, async () => {
      const base = await start(platform, host);
      const longest = 'k'.repeat(256);
      const wide = encodeURIComponent('\u20ac'.repeat(256)); // 256 code units, 2,304 characters in the URL
      expect(await send('PUT', `${base}/kv/${longest}`, '{"value":1}')).toBe(200);
      expect(await send('GET', `${base}/kv/${longest}`)).toBe(200);
      expect(await send('PUT', `${base}/kv/${wide}`, '{"value":2}')).toBe(200);
      expect(await send('GET', `${base}/kv/${wide}`)).toBe(200);
      expect(await send('GET', `${base}/kv/${'k'.repeat(257)}`)).toBe(400);
      expect(await send('PUT', `${base}/kv/big`, JSON.stringify({ value: 'x'.repeat(60 * 1024) }))).toBe(200);
      expect(await send('PUT', `${base}/kv/big`, JSON.stringify({ value: 'x'.repeat(101 * 1024) }))).toBe(413);
      expect(await send('PUT', `${base}/kv/latin`, '{"value":1}', 'application/json; charset=latin1')).toBe(415);
      expect(await send('PUT', `${base}/kv/utf8`, '{"value":1}', 'application/json; charset="UTF-8"')).toBe(200);
      expect(await send('PUT', `${base}/kv/none`, '{}')).toBe(400);
      expect(await send('PUT', `${base}/kv/proto`, '{"value":1,"__proto__":{"x":1}}')).toBe(400);
    });
  }
});
