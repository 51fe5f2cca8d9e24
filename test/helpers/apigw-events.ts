/**
 * Factories of API Gateway HTTP API events (payload format 2.0), shaped as API Gateway sends them: lower-case
 * header names, the path already percent-decoded unless a test says otherwise, a fresh request ID per event, and a
 * binary body base64-encoded with `isBase64Encoded`.
 *
 * @example
 * const event = httpApiPost('/devices/pump-0042/events', Buffer.from([0, 1, 2]), { authorization: `Device-Key ${key}` });
 * const jsonEvent = httpApiPostJson('/v1/projects/p/.../devices/d:publishEvent', { binary_data: 'aGk=' }, headers);
 */
import { randomBytes } from 'node:crypto';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';

export interface HttpApiEventInput {
  method?: string;
  /** The rawPath, as API Gateway passes it (decoded). */
  path: string;
  headers?: Record<string, string>;
  /** A Buffer travels base64-encoded (`isBase64Encoded: true`), a string as it is. */
  body?: string | Buffer;
  requestId?: string;
  /** `$default` unless given; a named stage also prefixes rawPath, as API Gateway does. */
  stage?: string;
  query?: Record<string, string>;
}

/** A request ID in API Gateway's format: 16 characters of base64. */
export function apiGatewayRequestId(): string {
  return randomBytes(12).toString('base64');
}

export function httpApiEvent(input: HttpApiEventInput): APIGatewayProxyEventV2 {
  const method = (input.method ?? 'POST').toUpperCase();
  const stage = input.stage ?? '$default';
  const rawPath = stage === '$default' ? input.path : `/${stage}${input.path}`;
  const headers: Record<string, string> = { host: 'abc123.execute-api.us-east-1.amazonaws.com', 'user-agent': 'device/1.0' };
  for (const [k, v] of Object.entries(input.headers ?? {})) headers[k.toLowerCase()] = v;
  const query = new URLSearchParams(input.query ?? {}).toString();
  const now = new Date();
  const event: APIGatewayProxyEventV2 = {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString: query,
    headers,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName: headers.host!,
      domainPrefix: 'abc123',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '198.51.100.7', userAgent: headers['user-agent']! },
      requestId: input.requestId ?? apiGatewayRequestId(),
      routeKey: '$default',
      stage,
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    isBase64Encoded: Buffer.isBuffer(input.body),
  };
  if (input.query !== undefined) event.queryStringParameters = input.query;
  if (input.body !== undefined) event.body = Buffer.isBuffer(input.body) ? input.body.toString('base64') : input.body;
  return event;
}

/** POST with a raw body; binary (a Buffer) unless a string is given. */
export function httpApiPost(path: string, body: string | Buffer, headers: Record<string, string> = {}): APIGatewayProxyEventV2 {
  return httpApiEvent({ path, body, headers: { 'content-type': Buffer.isBuffer(body) ? 'application/octet-stream' : 'text/plain', ...headers } });
}

/** POST with a JSON body, as text. */
export function httpApiPostJson(path: string, body: unknown, headers: Record<string, string> = {}): APIGatewayProxyEventV2 {
  return httpApiEvent({ path, body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
}
