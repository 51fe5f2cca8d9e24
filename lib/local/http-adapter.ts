/**
 * Serves Lambda handlers written for an API Gateway HTTP API (payload format 2.0) from a plain Node HTTP(S)
 * server, for the local stack and for tests: each request becomes an `APIGatewayProxyEventV2` the way API Gateway
 * builds one, and the handler's result becomes the response.
 *
 * Where API Gateway's behaviour shows in the event, it is imitated:
 * - `rawPath` arrives percent-decoded (HTTP APIs decode the path before the integration sees it);
 * - header names are lower case, repeated headers joined with commas, cookies moved to `cookies`;
 * - a body that is not text (by its content type) arrives base64-encoded with `isBase64Encoded: true`;
 * - bodies over 10 MB are refused with 413, an unmatched route gets 404 `{"message":"Not Found"}`, and a handler
 *   that throws gets 500 `{"message":"Internal Server Error"}`, all before or without the handler's say.
 *
 * @example
 * const api = await serveHttpApi([{ path: /^\/devices\//, handler: ingestHandler }], { port: 0 });
 * await fetch(`${api.url}/devices/pump-0042/events`, { method: 'POST', body: '21.5', headers });
 * await api.close();
 */
import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2 } from 'aws-lambda';
import { bodyBytes, lowerCaseHeaders } from '../http/api-gateway.js';

export type HttpApiHandler = (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyResultV2>;

export interface HttpApiRoute {
  /** Upper-case method; any method when absent. */
  method?: string;
  /** Tested against the decoded path. */
  path: RegExp;
  handler: HttpApiHandler;
}

export interface ServeHttpApiOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** Serve HTTPS with this key and certificate (PEM). */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** Default 10 MB, API Gateway's limit for HTTP APIs. */
  maxBodyBytes?: number;
}

export interface ServedHttpApi {
  /** `http://127.0.0.1:<port>` (or https). */
  url: string;
  server: Server;
  close(): Promise<void>;
}

export const HTTP_API_MAX_BODY_BYTES = 10 * 1024 * 1024;

/** Content types API Gateway passes as text; everything else is base64-encoded. */
const TEXT_TYPE = /^(?:text\/|application\/(?:json|xml|javascript|x-www-form-urlencoded)\b|application\/[^;\s]+\+(?:json|xml)\b)/i;

export async function serveHttpApi(routes: HttpApiHandler | readonly HttpApiRoute[], options: ServeHttpApiOptions = {}): Promise<ServedHttpApi> {
  const table: readonly HttpApiRoute[] = typeof routes === 'function' ? [{ path: /^/, handler: routes }] : routes;
  const maxBodyBytes = options.maxBodyBytes ?? HTTP_API_MAX_BODY_BYTES;
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    // A client that goes away mid-request leaves nothing to answer.
    respond(req, res, table, maxBodyBytes).catch(() => res.destroy());
  };
  const server: Server = options.tls
    ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, listener)
    : createHttpServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `${options.tls ? 'https' : 'http'}://${host}:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        // Keep-alive connections would hold close() open until they time out.
        server.closeAllConnections();
      }),
  };
}

async function respond(req: IncomingMessage, res: ServerResponse, routes: readonly HttpApiRoute[], maxBodyBytes: number): Promise<void> {
  const body = await readBody(req, maxBodyBytes);
  if (body === undefined) return sendJson(res, 413, { message: 'Request Entity Too Large' });
  const event = eventFromRequest(req, body);
  const method = event.requestContext.http.method;
  const route = routes.find((r) => (r.method === undefined || r.method === method) && r.path.test(event.rawPath));
  if (route === undefined) return sendJson(res, 404, { message: 'Not Found' });
  let result: APIGatewayProxyResultV2;
  try {
    result = await route.handler(event);
  } catch {
    return sendJson(res, 500, { message: 'Internal Server Error' });
  }
  writeResult(res, result);
}

/** Reads the whole body, or undefined once it passes `limit` (the rest is drained, not buffered). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > limit) over = true;
      if (!over) chunks.push(chunk);
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
    // A client that hangs up mid-body sends no 'end'; without this the request would wait forever.
    req.on('close', () => {
      if (!req.complete) reject(new Error('the client closed the connection before the body ended'));
    });
  });
}

export function eventFromRequest(req: IncomingMessage, body: Buffer): APIGatewayProxyEventV2 {
  const url = new URL(req.url ?? '/', 'http://local');
  const rawPath = decodePath(url.pathname);
  const headers: Record<string, string> = {};
  let cookies: string[] | undefined;
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (name === 'cookie') {
      cookies = (Array.isArray(value) ? value : [value]).flatMap((v) => v.split(/;\s*/)).filter((c) => c !== '');
      continue;
    }
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = query[k] === undefined ? v : `${query[k]},${v}`;
  const now = new Date();
  const method = (req.method ?? 'GET').toUpperCase();
  const isText = body.byteLength === 0 || (TEXT_TYPE.test(headers['content-type'] ?? '') && isUtf8(body));
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString: url.search.slice(1),
    ...(cookies ? { cookies } : {}),
    headers,
    ...(url.search !== '' ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      domainName: headers['host'] ?? 'localhost',
      domainPrefix: (headers['host'] ?? 'localhost').split('.')[0] ?? 'localhost',
      http: {
        method,
        path: rawPath,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      // API Gateway's request IDs are 16 characters of base64; these look the same and are as unique.
      requestId: randomBytes(12).toString('base64'),
      routeKey: '$default',
      stage: '$default',
      time: apiGatewayTime(now),
      timeEpoch: now.getTime(),
    },
    ...(body.byteLength > 0 ? { body: body.toString(isText ? 'utf8' : 'base64') } : {}),
    isBase64Encoded: !isText,
  };
}

export function writeResult(res: ServerResponse, result: APIGatewayProxyResultV2): void {
  // A bare string (or any non-object) is API Gateway's shorthand for a 200 JSON answer.
  if (typeof result !== 'object' || result === null) {
    return sendRaw(res, 200, { 'content-type': 'application/json' }, Buffer.from(typeof result === 'string' ? result : JSON.stringify(result)));
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(lowerCaseHeaders(result.headers))) headers[name] = String(value);
  const body = bodyBytes(result.body, result.isBase64Encoded);
  if (result.cookies !== undefined && result.cookies.length > 0) res.setHeader('set-cookie', result.cookies);
  sendRaw(res, result.statusCode ?? 200, headers, body);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendRaw(res, status, { 'content-type': 'application/json' }, Buffer.from(JSON.stringify(body)));
}

function sendRaw(res: ServerResponse, status: number, headers: Record<string, string>, body: Buffer): void {
  res.writeHead(status, { ...headers, 'content-length': String(body.byteLength) });
  res.end(body);
}

/** Decodes each segment as API Gateway would; a segment with a broken escape is left as it came. */
function decodePath(pathname: string): string {
  return pathname
    .split('/')
    .map((segment) => {
      try {
        return decodeURIComponent(segment);
      } catch {
        return segment;
      }
    })
    .join('/');
}

/** API Gateway's `requestContext.time` format: `12/Mar/2020:19:03:58 +0000`. */
function apiGatewayTime(d: Date): string {
  const month = d.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' });
  const pad = (n: number): string => String(n).padStart(2, '0');
  const clock = [d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds()].map(pad).join(':');
  return `${pad(d.getUTCDate())}/${month}/${d.getUTCFullYear()}:${clock} +0000`;
}
