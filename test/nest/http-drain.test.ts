import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpServerDrain } from '../../lib/index.js';

// A raw client socket, so the test decides exactly when its next request is written.
function request(path: string): string {
  return `GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`;
}

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

/** Everything the server sends on `socket` until it closes, and how it closed. */
function collect(socket: Socket): { text: () => string; ended: Promise<'end' | 'reset'> } {
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (text += chunk));
  const ended = new Promise<'end' | 'reset'>((resolve) => {
    socket.on('error', () => resolve('reset'));
    socket.on('close', () => resolve('end'));
  });
  return { text: () => text, ended };
}

const answered = (text: string) => text.split('HTTP/1.1 200').length - 1;

let servers: Server[] = [];
afterEach(() => {
  for (const s of servers) s.closeAllConnections();
  servers = [];
});

describe('HttpServerDrain', () => {
  it('answers a request already sent on an idle kept-alive connection, where server.close() drops it', async () => {
    for (const mode of ['server.close()', 'drain'] as const) {
      const { server, port } = await listen((req, res) => res.end(`ok ${req.url}`));
      servers.push(server);
      const drain = new HttpServerDrain(server);
      const socket = connect(port, '127.0.0.1');
      const out = collect(socket);
      socket.write(request('/first'));
      await expect.poll(() => answered(out.text())).toBe(1); // the connection is now idle, kept alive
      // The next request is written, and the server is told to close before it has read it.
      socket.write(request('/second'));
      const closed = mode === 'drain' ? drain.close({ idleGraceMs: 200 }) : new Promise((r) => server.close(r));
      const how = await out.ended;
      await closed;
      if (mode === 'server.close()') {
        expect(answered(out.text())).toBe(1); // the control: Node's close dropped the second request
      } else {
        expect(how).toBe('end');
        expect(answered(out.text())).toBe(2);
        expect(out.text()).toMatch(/ok \/second$/);
        expect(out.text().split('HTTP/1.1 200')[2]).toMatch(/connection: close/i);
      }
    }
  });

  it('refuses new connections at once, lets a slow request finish, then closes idle connections after the grace', async () => {
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const { server, port } = await listen((req, res) => {
      if (req.url === '/slow') void slow.then(() => res.end('slow done'));
      else res.end('ok');
    });
    servers.push(server);
    const drain = new HttpServerDrain(server);
    const busy = connect(port, '127.0.0.1');
    const busyOut = collect(busy);
    const idle = connect(port, '127.0.0.1');
    const idleOut = collect(idle);
    idle.write(request('/warm'));
    await expect.poll(() => answered(idleOut.text())).toBe(1);
    busy.write(request('/slow'));
    await expect.poll(() => drain.openConnections).toBe(2);
    await new Promise((r) => setTimeout(r, 50)); // the slow request is being handled
    const closing = drain.close({ idleGraceMs: 300 });
    expect(drain.isDraining).toBe(true);
    // A new connection is refused while the old ones drain.
    const refused = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.on('connect', () => resolve('connected'));
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
    // The idle connection goes after its grace; the busy one is still open, waiting for its answer.
    expect(await idleOut.ended).toBe('end');
    expect(busy.destroyed).toBe(false);
    release();
    expect(await busyOut.ended).toBe('end');
    expect(busyOut.text()).toMatch(/connection: close[\s\S]*slow done$/i);
    await closing;
    expect(drain.openConnections).toBe(0);
  });

  it('destroys what is left at the timeout', async () => {
    const { server, port } = await listen(() => undefined); // never answers
    servers.push(server);
    const drain = new HttpServerDrain(server);
    const socket = connect(port, '127.0.0.1');
    const out = collect(socket);
    socket.write(request('/hang'));
    await expect.poll(() => drain.openConnections).toBe(1);
    await drain.close({ timeoutMs: 200 });
    expect(await out.ended).toMatch(/end|reset/);
    expect(drain.openConnections).toBe(0);
  });

  it('tracks an HTTPS server by its TLS connections: a request under way is not cut at the idle grace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raft-drain-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '1', '-subj', '/CN=127.0.0.1'], { cwd: dir, stdio: 'pipe' });
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) => void slow.then(() => res.end('slow done')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    const drain = new HttpServerDrain(server);
    const socket = tlsConnect({ port: (server.address() as { port: number }).port, host: '127.0.0.1', rejectUnauthorized: false });
    const out = collect(socket);
    await new Promise((r) => socket.once('secureConnect', r));
    socket.write(request('/slow'));
    await expect.poll(() => drain.openConnections).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    const closing = drain.close({ idleGraceMs: 100 });
    await new Promise((r) => setTimeout(r, 400)); // well past the grace: the busy connection must still be open
    expect(drain.openConnections).toBe(1);
    release();
    expect(await out.ended).toBe('end');
    expect(out.text()).toMatch(/connection: close[\s\S]*slow done$/i);
    await closing;
  });

  it('closes an HTTPS connection stuck before its TLS handshake after the grace, not at the TLS handshake timeout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raft-drain-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '1', '-subj', '/CN=127.0.0.1'], { cwd: dir, stdio: 'pipe' });
    const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    const drain = new HttpServerDrain(server);
    const silent = connect((server.address() as { port: number }).port, '127.0.0.1'); // TCP only: never says hello
    const ended = collect(silent).ended;
    await expect.poll(() => drain.openConnections).toBe(1);
    await drain.close({ idleGraceMs: 100, timeoutMs: 60_000 });
    expect(drain.openConnections).toBe(0);
    expect(await ended).toMatch(/end|reset/);
  });

  it('works in front of a Nest app: a request under way is answered, then app.close() still closes cleanly', async () => {
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    @Controller()
    class SlowController {
      @Get('slow')
      async slow(): Promise<string> {
        await slow;
        return 'slow done';
      }
    }
    @Module({ controllers: [SlowController] })
    class App {}
    const app = await NestFactory.create(App, { logger: false });
    const drain = new HttpServerDrain(app.getHttpServer());
    await app.listen(0, '127.0.0.1');
    const port = (app.getHttpServer().address() as { port: number }).port;
    const socket = connect(port, '127.0.0.1');
    const out = collect(socket);
    socket.write(request('/slow'));
    await expect.poll(() => drain.openConnections).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    const closing = drain.close({ idleGraceMs: 100 });
    release();
    expect(await out.ended).toBe('end');
    expect(out.text()).toMatch(/connection: close[\s\S]*slow done$/i);
    await closing;
    await expect(app.close()).resolves.toBeUndefined();
  });
});
