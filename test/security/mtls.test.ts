import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryStorage, RaftModule, RaftService, nodeIdFromCommonName, type RaftModuleOptions } from '../../lib/index.js';
import { eventually, freePort } from '../integration/helpers.js';
import { signedHeaders } from './helpers.js';

/**
 * Mutual TLS on the RPC listener: each node's client certificate (CN `node-<id>`, signed by the
 * cluster's CA) must be the node that signs the request. Certificates are made with the openssl CLI;
 * the test is skipped where it is missing.
 */
const SECRET = 'mutual tls test secret, 32 bytes';
const HOSTS = ['127.0.0.35', '127.0.0.36'];

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

interface Pki {
  readonly ca: Buffer;
  readonly certs: Map<number, { cert: Buffer; key: Buffer }>;
  readonly strangerCert: { cert: Buffer; key: Buffer };
}

function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'raft-mtls-'));
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=raft-test-ca', '-days', '2');
  run('req', '-x509', ...ec, '-keyout', 'stranger.key', '-out', 'stranger.crt', '-subj', '/CN=node-1', '-days', '2');
  const certs = new Map<number, { cert: Buffer; key: Buffer }>();
  HOSTS.forEach((host, i) => {
    const id = i + 1;
    writeFileSync(join(dir, `n${id}.ext`), `subjectAltName=IP:${host}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    run('req', ...ec, '-keyout', `n${id}.key`, '-out', `n${id}.csr`, '-subj', `/CN=node-${id}`);
    run('x509', '-req', '-in', `n${id}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `n${id}.crt`, '-days', '2', '-extfile', `n${id}.ext`);
    certs.set(id, { cert: readFileSync(join(dir, `n${id}.crt`)), key: readFileSync(join(dir, `n${id}.key`)) });
  });
  return { ca: readFileSync(join(dir, 'ca.crt')), certs, strangerCert: { cert: readFileSync(join(dir, 'stranger.crt')), key: readFileSync(join(dir, 'stranger.key')) } };
}

const apps: INestApplication[] = [];
afterAll(async () => {
  await Promise.allSettled(apps.map((a) => a.close()));
});

function post(url: string, body: string, headers: Record<string, string>, tls: https.RequestOptions): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, agent: false, ...tls }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString() || 'null') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe.skipIf(!haveOpenssl())('mutual TLS between peers', () => {
  it('forms a cluster over mutual TLS, and refuses a request whose certificate is not the signer\'s, or that has none', async () => {
    const pki = makePki();
    const nodes = await Promise.all(HOSTS.map(async (host, i) => ({ id: i + 1, host, port: await freePort(host), rpcPort: await freePort(host) })));
    const peers = nodes.map((n) => ({ id: n.id, url: `https://${n.host}:${n.rpcPort}` }));
    for (const n of nodes) {
      const own = pki.certs.get(n.id)!;
      const options: RaftModuleOptions = {
        nodeId: n.id,
        url: `https://${n.host}:${n.rpcPort}`,
        peers,
        stateMachine: (index) => index,
        storage: new MemoryStorage(),
        electionTimeoutMs: 150,
        clusterSecret: SECRET,
        peerTls: { ca: pki.ca, cert: own.cert, key: own.key },
        peerCertificateNodeId: nodeIdFromCommonName(),
      };
      @Module({
        imports: [
          RaftModule.forRoot({
            ...options,
            // requestCert without rejectUnauthorized: the controller answers 401 itself (with it, the handshake fails).
            rpcListener: { host: n.host, port: n.rpcPort, httpsOptions: { ca: pki.ca, cert: own.cert, key: own.key, requestCert: true, rejectUnauthorized: false } },
          }),
        ],
      })
      class App {}
      const app = await NestFactory.create(App, { logger: false });
      apps.push(app);
      await app.listen(n.port, n.host);
    }
    const services = apps.map((a) => a.get(RaftService));
    const leader = await eventually(() => services.find((s) => s.isLeader()), 10_000, 'a leader over mutual TLS');
    const follower = services.find((s) => s !== leader)!;
    expect(typeof (await follower.command('x'))).toBe('number');

    const target = `${peers[1]!.url}/raft/appendentries`;
    const body = JSON.stringify({ term: 1, leader_id: 1, prev_log_index: 0, prev_log_term: 0, entries: [], commit_index: 0 });
    const as = (sender: number) => signedHeaders({ secret: SECRET, sender, clusterId: 'default', to: 2 }, target, body);
    const node1 = pki.certs.get(1)!;
    // Node 1's certificate, but signed as node 3 (who holds the secret but not node 1's key).
    const mismatch = await post(target, JSON.stringify({ ...JSON.parse(body), leader_id: 3 }), signedHeaders({ secret: SECRET, sender: 3, clusterId: 'default', to: 2 }, target, JSON.stringify({ ...JSON.parse(body), leader_id: 3 })), { ca: pki.ca, cert: node1.cert, key: node1.key });
    expect(mismatch.status).toBe(403);
    expect(mismatch.json).toMatchObject({ code: 'certificate_mismatch' });
    // No client certificate, or one the cluster's CA did not sign (though it says node-1).
    expect((await post(target, body, as(1), { ca: pki.ca })).json).toMatchObject({ code: 'certificate_required' });
    expect((await post(target, body, as(1), { ca: pki.ca, cert: pki.strangerCert.cert, key: pki.strangerCert.key })).status).toBe(401);
    // The right certificate and the right signature: through to the node (stale term: a plain refusal, 200).
    expect((await post(target, body, as(1), { ca: pki.ca, cert: node1.cert, key: node1.key })).status).toBe(200);
  });
});
