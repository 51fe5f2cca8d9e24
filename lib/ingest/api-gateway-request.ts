/**
 * The parts of an API Gateway HTTP API event (payload format 2.0) the HTTP handlers read, as an `IngestRequest`:
 * header names in lower case, the path without a named stage's prefix, the body as bytes, and the query.
 *
 * @example
 * const request = requestFromEvent(event); // { method: 'POST', path: '/devices/pump-0042/events', headers, body, requestId, query }
 */
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { IngestRequest } from './ingest-service.js';

export function requestFromEvent(event: APIGatewayProxyEventV2): IngestRequest & { query: Record<string, string | undefined> } {
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(event.headers ?? {})) headers[name.toLowerCase()] = value;
  let path = event.rawPath;
  // A named stage (not `$default`) stays in rawPath as the first segment.
  const stage = event.requestContext.stage;
  if (stage && stage !== '$default' && path.startsWith(`/${stage}/`)) path = path.slice(stage.length + 1);
  const body = event.body === undefined ? Buffer.alloc(0) : Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8');
  const query = { ...(event.queryStringParameters ?? {}) };
  return { method: event.requestContext.http.method, path, headers, body, requestId: event.requestContext.requestId, query };
}
