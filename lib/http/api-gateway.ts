/**
 * The HTTP handlers' side of API Gateway HTTP APIs (payload format 2.0), in both directions, so that the services
 * behind them (lib/ingest, lib/config-delivery) see plain requests and give plain answers:
 *
 * - `requestFromEvent`: the event as an `HttpRequest`: header names in lower case, the path without a named stage's
 *   prefix, the query, the body as bytes, and API Gateway's request ID;
 * - `resultFromResponse`: an `HttpResponse` as the handler's result: a JSON value as JSON text, bytes as base64
 *   with `isBase64Encoded`, no body as an empty one.
 *
 * API Gateway always sends a whole `requestContext`; the event type here also takes one that lacks it (a front end
 * or a test that sends only the path and the headers): the method is then GET and the request ID empty.
 *
 * @example
 * const request = requestFromEvent(event); // { method: 'POST', path: '/devices/pump-0042/events', headers, query, body, requestId }
 * return resultFromResponse({ statusCode: 202, headers: { 'content-type': 'application/json' }, body: { messageIds } });
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';

export type HttpApiEvent = Pick<APIGatewayProxyEventV2, 'rawPath' | 'headers'> &
  Partial<Pick<APIGatewayProxyEventV2, 'queryStringParameters' | 'requestContext' | 'body' | 'isBase64Encoded'>>;

export type HttpApiResult = APIGatewayProxyStructuredResultV2;

export interface HttpRequest {
  /** Upper case, as API Gateway gives it. */
  method: string;
  /** Decoded path, without the API's stage prefix. */
  path: string;
  /** Header names in lower case; repeated headers joined with commas. */
  headers: Readonly<Record<string, string | undefined>>;
  /** The query parameters; a repeated one joined with commas. */
  query: Readonly<Record<string, string | undefined>>;
  body: Buffer;
  /** Unique per request (API Gateway's request ID). */
  requestId: string;
}

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  /** Bytes are sent as they are, `undefined` as no body, anything else as JSON. */
  body?: unknown;
}

export function requestFromEvent(event: HttpApiEvent): HttpRequest {
  return {
    method: event.requestContext?.http?.method ?? 'GET',
    path: pathWithoutStage(event.rawPath, event.requestContext?.stage),
    headers: lowerCaseHeaders(event.headers),
    query: { ...(event.queryStringParameters ?? {}) },
    body: bodyBytes(event.body, event.isBase64Encoded),
    requestId: event.requestContext?.requestId ?? '',
  };
}

export function resultFromResponse(response: HttpResponse): HttpApiResult {
  const { statusCode, headers, body } = response;
  if (Buffer.isBuffer(body)) return { statusCode, headers, body: body.toString('base64'), isBase64Encoded: true };
  return { statusCode, headers, body: body === undefined ? '' : JSON.stringify(body), isBase64Encoded: false };
}

/** A named stage (not `$default`) stays in rawPath as the first segment. */
export function pathWithoutStage(rawPath: string, stage: string | undefined): string {
  return stage && stage !== '$default' && rawPath.startsWith(`/${stage}/`) ? rawPath.slice(stage.length + 1) : rawPath;
}

/** API Gateway v2 lower-cases header names; other front ends may not. A name given twice keeps the last value. */
export function lowerCaseHeaders<V>(headers: Readonly<Record<string, V>> | undefined): Record<string, V> {
  const lower: Record<string, V> = {};
  for (const [name, value] of Object.entries(headers ?? {})) lower[name.toLowerCase()] = value;
  return lower;
}

/** An event's or a result's body as bytes: base64 when flagged, UTF-8 text otherwise. */
export function bodyBytes(body: string | undefined, isBase64Encoded: boolean | undefined): Buffer {
  return body === undefined ? Buffer.alloc(0) : Buffer.from(body, isBase64Encoded ? 'base64' : 'utf8');
}
