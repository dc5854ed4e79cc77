/**
 * Reading a request body inside a controller, whether or not the application's body parsers already
 * did: Nest's default JSON parser handles `application/json` (100 kB unless raised with
 * `app.useBodyParser('json', { limit })`) but leaves `application/octet-stream` (commands) and
 * `application/vnd.raft+json` (what the HTTP peer sends) unread, so they are read here, with the
 * module's own limit.
 */
import type { IncomingMessage } from 'node:http';
import { RaftError } from '../core/errors.js';
import { isJsonContentType } from '../transport/wire.js';

/** A request as Express (or a raw Node server) hands it to a controller. */
export type RaftHttpRequest = IncomingMessage & { body?: unknown; rawBody?: unknown; originalUrl?: string };

/** A body that could not be read: `status` is the HTTP status to answer with (400, 413 or 415). */
export class RequestBodyError extends RaftError {
  constructor(
    readonly status: 400 | 413 | 415,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Whether the request's body is still in its stream (no body parser consumed it). Not `complete`:
 * that is set as soon as the whole body has arrived, read or not.
 */
function unread(req: RaftHttpRequest): boolean {
  return !req.readableEnded;
}

function tooLarge(size: number | string, limit: number): RequestBodyError {
  return new RequestBodyError(413, 'body_too_large', `the request body is ${typeof size === 'number' ? `${size} bytes or more` : `${size} bytes`}, more than the limit of ${limit} bytes`);
}

/**
 * The body's bytes, at most `limit` of them (413 beyond). Uses what a raw or text body parser left
 * in `req.body`, or `req.rawBody` (Nest's `rawBody: true`), else reads the stream.
 */
export async function readRawBody(req: RaftHttpRequest, limit: number): Promise<Buffer> {
  if (unread(req)) return readStream(req, limit);
  let bytes: Buffer | undefined;
  if (Buffer.isBuffer(req.body)) bytes = req.body;
  else if (typeof req.body === 'string') bytes = Buffer.from(req.body, 'utf8');
  else if (Buffer.isBuffer(req.rawBody)) bytes = req.rawBody;
  if (!bytes) {
    if (req.body === undefined) return Buffer.alloc(0);
    throw new RequestBodyError(
      415,
      'unsupported_media_type',
      `the application's body parser already parsed this ${req.headers['content-type'] ?? ''} body; send the command as application/octet-stream`,
    );
  }
  if (bytes.length > limit) throw tooLarge(bytes.length, limit);
  return bytes;
}

/**
 * The body parsed as JSON: what the application's JSON parser produced, or the stream read here (at
 * most `limit` bytes) when it is `application/json`, `application/*+json` or has no content type.
 */
export async function readJsonBody(req: RaftHttpRequest, limit: number): Promise<unknown> {
  checkJsonContentType(req);
  if (!unread(req)) {
    if (req.body !== undefined && !Buffer.isBuffer(req.body) && typeof req.body !== 'string') return req.body;
    if (Buffer.isBuffer(req.rawBody)) return parseJsonBytes(req.rawBody, limit);
  }
  return parseJsonBytes(await readRawBody(req, limit), limit);
}

/** 415 unless the request's content type is JSON (`application/json`, `…+json`) or absent. */
export function checkJsonContentType(req: RaftHttpRequest): void {
  const contentType = req.headers['content-type'];
  if (contentType !== undefined && !isJsonContentType(contentType)) {
    throw new RequestBodyError(415, 'unsupported_media_type', `expected a JSON body (application/json or application/vnd.raft+json), got ${contentType}`);
  }
}

/**
 * The exact bytes the client sent, at most `limit` of them, for a signature check: the stream, or what
 * a raw body parser kept (`req.rawBody`, a Buffer `req.body`). A body that the application's JSON or
 * text parser already turned into something else cannot be checked: 415, naming the remedies.
 */
export async function readExactBody(req: RaftHttpRequest, limit: number): Promise<Buffer> {
  if (unread(req)) return readStream(req, limit);
  const bytes = Buffer.isBuffer(req.rawBody) ? req.rawBody : Buffer.isBuffer(req.body) ? req.body : undefined;
  if (!bytes) {
    if (req.body === undefined) return Buffer.alloc(0);
    throw new RequestBodyError(
      415,
      'unsupported_media_type',
      `the application's body parser already consumed this ${req.headers['content-type'] ?? ''} body, so its signature cannot be checked; send application/vnd.raft+json, create the app with { rawBody: true }, or serve the RPCs on their own listener (rpcListener)`,
    );
  }
  if (bytes.length > limit) throw tooLarge(bytes.length, limit);
  return bytes;
}

/** Parses JSON bytes (UTF-8, at most `limit`): 413 beyond the limit, 400 with the parser's message otherwise. */
export function parseJsonBytes(bytes: Buffer, limit: number): unknown {
  if (bytes.length > limit) throw tooLarge(bytes.length, limit);
  if (bytes.length === 0) throw new RequestBodyError(400, 'invalid_json', 'the request body is empty; expected a JSON object');
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new RequestBodyError(400, 'invalid_json', 'the request body is not valid UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new RequestBodyError(400, 'invalid_json', `the request body is not valid JSON: ${(error as Error).message}`);
  }
}

function readStream(req: RaftHttpRequest, limit: number): Promise<Buffer> {
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
    return Promise.reject(new RequestBodyError(415, 'unsupported_media_type', `content-encoding ${encoding} is not supported`));
  }
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(tooLarge(declared, limit));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause(); // the answer closes the connection (see sendJson's `close`); the rest is never read
        reject(tooLarge(size, limit));
      } else {
        chunks.push(chunk);
      }
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(new RequestBodyError(400, 'body_unreadable', `the request body could not be read: ${error.message}`));
    };
    const onAborted = () => onError(new Error('the client aborted the request'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}
