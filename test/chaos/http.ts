/**
 * A small HTTP client for the harness: one fresh connection per request (no keep-alive), so a refused
 * connection always means "never delivered", and every other failure is reported as such.
 */
import http from 'node:http';

export interface HttpAnswer {
  status: number;
  body: unknown;
}

export class HttpFailure extends Error {
  constructor(
    /** ECONNREFUSED (never delivered), TIMEOUT, or the socket error's code. */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
  /** The request certainly did not reach the server. */
  get undelivered(): boolean {
    return this.code === 'ECONNREFUSED';
  }
}

export function request(method: string, url: string, body: unknown, timeoutMs: number, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (error: HttpFailure | undefined, answer?: HttpAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) {
        req.destroy();
        reject(error);
      } else resolve(answer!);
    };
    const req = http.request(
      url,
      {
        method,
        agent: false,
        headers: { accept: 'application/json', ...headers, ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            // keep the text
          }
          done(undefined, { status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', (e: NodeJS.ErrnoException) => done(new HttpFailure(e.code ?? 'ERESPONSE', e.message)));
        res.on('aborted', () => done(new HttpFailure('EABORTED', 'the answer was cut')));
      },
    );
    const timer = setTimeout(() => done(new HttpFailure('TIMEOUT', `no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => done(new HttpFailure(e.code ?? 'EREQUEST', e.message)));
    req.end(payload);
  });
}
