import { createServer, type IncomingMessage, type Server } from 'node:http';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import type { Configuration } from '../../lib/core/types.js';
import { CommittedMembershipTracker, type MembershipSource } from '../../lib/nest/security/membership-view.js';
import { AddressRateLimiter } from '../../lib/nest/security/rate-limiter.js';
import { resolveClusterAuth } from '../../lib/nest/security/cluster-auth.js';
import type { CommittedEntry, RaftStatus } from '../../lib/node/raft-node.js';
import { NonceReplayCache } from '../../lib/transport/auth-replay-cache.js';
import { AUTH_HEADERS, PeerAuthError, RaftRequestVerifier, canonicalRequest, clusterSecretKey, createRaftRequestSigner } from '../../lib/transport/auth.js';
import { HttpTransport } from '../../lib/transport/http-transport.js';
import { Subject } from 'rxjs';

const SECRET = 'primitive tests secret, 32 bytes';

describe('NonceReplayCache', () => {
  it('finds a nonce again until its timestamp leaves the window, then forgets it', () => {
    let now = 1_000_000;
    const cache = new NonceReplayCache({ windowMs: 30_000, now: () => now });
    expect(cache.admit(1, 'a', now)).toBe('fresh');
    expect(cache.admit(1, 'a', now)).toBe('replayed');
    expect(cache.admit(2, 'a', now)).toBe('fresh'); // per sender
    now += 30_001;
    expect(cache.admit(1, 'b', now)).toBe('fresh');
    expect(cache.entries).toBe(2); // 1/a expired when sender 1 was touched
  });

  it('stays bounded without ever accepting a replay: forgotten nonces raise their sender\'s floor', () => {
    const now = 5_000_000;
    const cache = new NonceReplayCache({ windowMs: 30_000, maxEntries: 100, maxSenders: 4, now: () => now });
    const seen: Array<[number, string, number]> = [];
    for (let i = 0; i < 1000; i++) {
      const sender = 1 + (i % 7);
      const at = now - 20_000 + i * 10;
      expect(cache.admit(sender, `n${i}`, at)).toBe('fresh');
      seen.push([sender, `n${i}`, at]);
      expect(cache.entries).toBeLessThanOrEqual(100);
    }
    for (const [sender, nonce, at] of seen) expect(cache.admit(sender, nonce, at)).not.toBe('fresh');
  });
});

describe('AddressRateLimiter', () => {
  it('keys IPv4, IPv4-mapped IPv6 and IPv6 /64 prefixes', () => {
    expect(AddressRateLimiter.keyOf('10.0.0.1')).toBe('10.0.0.1');
    expect(AddressRateLimiter.keyOf('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(AddressRateLimiter.keyOf('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(AddressRateLimiter.keyOf('2001:db8:1:2::ffff')).toBe('2001:db8:1:2::/64');
    expect(AddressRateLimiter.keyOf('::1')).toBe('0:0:0:0::/64');
    expect(AddressRateLimiter.keyOf(undefined)).toBe('unknown');
  });

  it('refills over time, and gives the token back to a request that turns out authenticated', () => {
    let now = 0;
    const limiter = new AddressRateLimiter({ burst: 2, perSecond: 2 }, () => now);
    const first = limiter.take('1.2.3.4')!;
    expect(limiter.take('1.2.3.4')).toBeDefined();
    expect(limiter.take('1.2.3.4')).toBeUndefined();
    now += 500;
    expect(limiter.take('1.2.3.4')).toBeDefined();
    limiter.authenticated(first);
    for (let i = 0; i < 100; i++) expect(limiter.take('1.2.3.4')?.trusted).toBe(true);
    now += 61_000;
    expect(limiter.take('1.2.3.4')?.trusted).toBe(false);
  });

  it('forgets addresses beyond its bound', () => {
    const limiter = new AddressRateLimiter({ burst: 1, perSecond: 0.001, maxAddresses: 10 });
    for (let i = 0; i < 1000; i++) expect(limiter.take(`10.0.${i >> 8}.${i & 255}`)).toBeDefined();
  });
});

describe('signing and verification', () => {
  const verifier = (now = Date.now) => new RaftRequestVerifier({ clusterId: 'c', secret: SECRET, now });
  const sign = createRaftRequestSigner({ nodeId: 4, clusterId: 'c', secret: SECRET });
  const request = (body: string, headers: Record<string, string> = { 'x-raft-to': '2' }) => ({
    method: 'POST' as const,
    url: new URL('http://h/raft/appendentries'),
    path: '/raft/appendentries',
    body: Buffer.from(body),
    to: 2,
    headers,
  });

  it('signs a canonical text of every part, and verifies only that', () => {
    const headers = { 'x-raft-to': '2', ...sign(request('{"a":1}')) };
    const v = verifier();
    const auth = v.readHeaders(headers);
    expect(v.verify(auth, 'POST', '/raft/appendentries', Buffer.from('{"a":1}'))).toEqual({ sender: 4, secretIndex: 0 });
    expect(() => v.verify(auth, 'POST', '/raft/appendentries', Buffer.from('{"a":1}'))).toThrow(/already received/);
    const again = v.readHeaders({ 'x-raft-to': '2', ...sign(request('{"a":1}')) });
    expect(() => v.verify(again, 'POST', '/raft/requestvote', Buffer.from('{"a":1}'))).toThrow(PeerAuthError);
    expect(canonicalRequest({ method: 'post', path: '/p', timestamp: '1', nonce: 'n', sender: '2', cluster: 'c', to: '3', timeout: '', bodySha256: 'd' })).toBe(
      'nestjs-raft-hmac-sha256-v1\nPOST\n/p\n1\nn\n2\nc\n3\n\nd',
    );
  });

  it('never shows the secret: not in the key object, not in errors', () => {
    const key = clusterSecretKey(SECRET);
    expect(inspect(key)).not.toContain(SECRET);
    expect(inspect(verifier(), { depth: 10, showHidden: true })).not.toContain(SECRET);
    expect(() => clusterSecretKey('short-secret')).toThrow(/at least 16 bytes/);
    try {
      clusterSecretKey('short-secret');
    } catch (error) {
      expect(String(error)).not.toContain('short-secret');
    }
  });

  it('decides the mode from the options: authenticated, closed (single node), open (insecureNoAuth), or refuses', () => {
    const env = {};
    expect(resolveClusterAuth({ nodeId: 1, peers: [{ id: 1 }] }, env).mode).toBe('closed');
    expect(resolveClusterAuth({ nodeId: 1, peers: [{ id: 1 }], clusterSecret: SECRET }, env).mode).toBe('authenticated');
    expect(resolveClusterAuth({ nodeId: 1, peers: [{ id: 1 }, { id: 2 }], insecureNoAuth: true }, env).mode).toBe('open');
    expect(resolveClusterAuth({ nodeId: 1 }, { RAFT_CLUSTER_SECRET: SECRET, RAFT_PREVIOUS_CLUSTER_SECRETS: 'the-old-secret-0123456789, the-older-secret-0123456789' })).toMatchObject({
      mode: 'authenticated',
      previousSecrets: ['the-old-secret-0123456789', 'the-older-secret-0123456789'],
    });
    expect(() => resolveClusterAuth({ nodeId: 1, peers: [{ id: 2 }, { id: 1 }] }, env)).toThrow(/clusterSecret.*is required/);
  });
});

describe('the transport\'s sign hook', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  it('signs every attempt afresh (a retry on a closed keep-alive socket gets a new nonce), and the GET of an id', async () => {
    const seen: Array<{ url: string; nonce: string; verified: boolean }> = [];
    const v = new RaftRequestVerifier({ clusterId: 'c', secret: SECRET });
    let first = true;
    server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let verified = false;
        try {
          if (req.method === 'POST') v.verify(v.readHeaders(req.headers), req.method, req.url!, Buffer.concat(chunks));
          verified = true;
        } catch {
          verified = false;
        }
        seen.push({ url: req.url!, nonce: String(req.headers[AUTH_HEADERS.nonce]), verified });
        if (req.url!.endsWith('/id')) {
          res.end('2');
          return;
        }
        const body = JSON.stringify({ term: 1, vote_granted: false });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        if (first) {
          first = false;
          // Close the kept-alive socket behind the client's back: its next request must be retried.
          res.on('finish', () => setTimeout(() => req.socket.destroy(), 20));
        }
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.24', resolve));
    const url = `http://127.0.0.24:${(server.address() as { port: number }).port}`;
    const transport = new HttpTransport({ sign: createRaftRequestSigner({ nodeId: 1, clusterId: 'c', secret: SECRET }) });
    try {
      expect(await transport.discoverId(url)).toBe(2);
      const peer = transport.peer(2, url);
      const vote = { type: 'RequestVote' as const, from: 1, to: 2, term: 1, lastLogIndex: 0, lastLogTerm: 0, preVote: false };
      await peer.requestVote(vote);
      await new Promise((r) => setTimeout(r, 60));
      await peer.requestVote(vote);
    } finally {
      await transport.close();
    }
    expect(seen.map((s) => s.verified)).toEqual(seen.map(() => true));
    expect(seen[0]!.url).toBe('/raft/id');
    expect(new Set(seen.map((s) => s.nonce)).size).toBe(seen.length);
  });
});

describe('CommittedMembershipTracker', () => {
  function source() {
    const commits = new Subject<CommittedEntry>();
    // Only the fields the tracker reads (RaftStatus has more).
    let status = { nodeId: 1, role: 'follower', term: 1, leaderId: 1, commitIndex: 0, appliedIndex: 0, lastIndex: 0, members: [], learners: [], joint: false } as unknown as RaftStatus;
    const src: MembershipSource = { commits$: commits, status: () => status };
    const set = (s: Partial<RaftStatus>) => (status = { ...status, ...s });
    const members = (...ids: number[]) => ids.map((id) => ({ id }));
    const apply = (index: number, term: number, configuration?: Configuration) =>
      commits.next({ index, term, type: configuration ? 'config' : 'command', command: new Uint8Array(), ...(configuration ? { configuration } : {}) });
    return { src, set, members, apply };
  }

  it('knows a removal only once the configuration without the node is committed, with the term of its entry', () => {
    const { src, set, members, apply } = source();
    const tracker = new CommittedMembershipTracker(src, [1, 2, 3]);
    tracker.listen();
    set({ members: members(1, 2, 3), lastIndex: 1 });
    apply(1, 1);
    expect(tracker.removal(3)).toBeUndefined(); // no configuration entry seen yet
    set({ members: members(1, 2), joint: true, lastIndex: 3 });
    apply(2, 4, { voters: [1, 2], outgoing: [1, 2, 3] }); // C_old,new committed: 3 still votes in C_old
    expect(tracker.removal(3)).toBeUndefined();
    set({ joint: false });
    apply(3, 4, { voters: [1, 2] }); // C_new committed
    expect(tracker.removal(3)).toEqual({ removedInTerm: 4 });
    expect(tracker.removal(2)).toBeUndefined();
    expect(tracker.removal(9)).toBeUndefined(); // never a member: unknown, not removed
    set({ members: members(1, 2, 3), lastIndex: 4 }); // being added back (uncommitted)
    expect(tracker.removal(3)).toBeUndefined();
    tracker.close();
  });

  it('counts learners as members: a removed voter added back as a learner is not refused', () => {
    const { src, set, members, apply } = source();
    const tracker = new CommittedMembershipTracker(src, [1, 2, 3]);
    tracker.listen();
    apply(5, 2, { voters: [1, 2] });
    set({ members: members(1, 2), lastIndex: 6 });
    expect(tracker.removal(3)).toEqual({ removedInTerm: 2 });
    set({ learners: members(3), lastIndex: 7 }); // appended, not yet committed
    expect(tracker.removal(3)).toBeUndefined();
    apply(7, 3, { voters: [1, 2], learners: [3] });
    set({ learners: [] }); // even if the log moved on, the committed configuration has it
    expect(tracker.removal(3)).toBeUndefined();
    apply(9, 3, { voters: [1, 2] }); // removed as a learner too
    expect(tracker.removal(3)).toEqual({ removedInTerm: 3 });
  });
});

