import http, { type IncomingHttpHeaders } from 'node:http';
import { createRaftRequestSigner } from '../../lib/transport/auth.js';
import { TIMEOUT_HEADER, TO_HEADER } from '../../lib/transport/wire.js';

/** An answer, whatever it is. */
export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  readonly json: any;
}

export interface SendOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Uint8Array;
  /** Source address of the connection (loopback 127.0.0.x), to act as different clients. */
  readonly localAddress?: string;
  /** Send only this many bytes of the body (the content-length still says the whole), then wait for the answer. */
  readonly truncateTo?: number;
  /** Send the body chunked, without a content-length. */
  readonly chunked?: boolean;
  readonly timeoutMs?: number;
}

/** One request on its own connection, with full control of headers and body bytes. */
export function send(url: string, options: SendOptions = {}): Promise<Reply> {
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? Buffer.from(options.body) : Buffer.from(options.body);
  return new Promise<Reply>((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (body && !options.chunked && headers['content-length'] === undefined) headers['content-length'] = String(body.length);
    const req = http.request(url, { method: options.method ?? 'POST', headers, agent: false, ...(options.localAddress ? { localAddress: options.localAddress } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        req.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error(`no answer from ${url}`)));
    req.on('error', reject);
    if (body && options.truncateTo !== undefined) {
      req.write(body.subarray(0, options.truncateTo));
      req.flushHeaders();
    } else if (body && options.chunked) {
      // Several chunks, so that the server sees a stream without a declared length.
      for (let at = 0; at < body.length; at += 512) req.write(body.subarray(at, at + 512));
      req.end();
    } else {
      req.end(body);
    }
  });
}

export interface Signing {
  readonly secret: string;
  readonly sender: number;
  readonly clusterId: string;
  /** The addressee (`x-raft-to`). */
  readonly to: number;
  readonly now?: () => number;
  readonly timeoutMs?: number;
}

/** Headers of a request signed as a peer would sign it (content type included). */
export function signedHeaders(signing: Signing, url: string, body: string | Uint8Array, contentType = 'application/vnd.raft+json'): Record<string, string> {
  const target = new URL(url);
  const headers: Record<string, string> = { 'content-type': contentType, [TO_HEADER]: String(signing.to) };
  if (signing.timeoutMs !== undefined) headers[TIMEOUT_HEADER] = String(signing.timeoutMs);
  const sign = createRaftRequestSigner({ nodeId: signing.sender, clusterId: signing.clusterId, secret: signing.secret, ...(signing.now ? { now: signing.now } : {}) });
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return { ...headers, ...sign({ method: 'POST', url: target, path: target.pathname + target.search, body: bytes, to: signing.to, headers }) };
}

/** A signed POST of `body` (an object is sent as JSON). */
export function sendSigned(signing: Signing, url: string, body: string | object, extra: Omit<SendOptions, 'body'> = {}): Promise<Reply> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return send(url, { ...extra, body: text, headers: { ...signedHeaders(signing, url, text), ...extra.headers } });
}
