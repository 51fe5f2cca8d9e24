import { describe, expect, it } from 'vitest';
import { bodyBytes, lowerCaseHeaders, pathWithoutStage, requestFromEvent, resultFromResponse } from '../../../lib/http/api-gateway.js';
import { httpApiEvent } from '../../helpers/apigw-events.js';

describe('requestFromEvent', () => {
  it('reads method, path, headers, query, body and request ID of an API Gateway event', () => {
    const event = httpApiEvent({
      method: 'POST',
      path: '/devices/pump-0042/events/alarms',
      headers: { authorization: 'Device-Key k', 'x-message-id': '17' },
      query: { local_version: '3' },
      body: 'a reading',
      requestId: 'JDd4ZgqzIAMEV2w=',
    });
    const request = requestFromEvent(event);
    expect(request).toMatchObject({
      method: 'POST',
      path: '/devices/pump-0042/events/alarms',
      query: { local_version: '3' },
      requestId: 'JDd4ZgqzIAMEV2w=',
      headers: { authorization: 'Device-Key k', 'x-message-id': '17' },
    });
    expect(request.body).toEqual(Buffer.from('a reading'));
  });

  it('takes a named stage off the path, and leaves `$default` and a path merely starting like the stage alone', () => {
    expect(requestFromEvent(httpApiEvent({ path: '/devices/d-1/config', stage: 'prod' })).path).toBe('/devices/d-1/config');
    expect(requestFromEvent(httpApiEvent({ path: '/devices/d-1/config' })).path).toBe('/devices/d-1/config');
    expect(pathWithoutStage('/production/devices', 'prod')).toBe('/production/devices');
    expect(pathWithoutStage('/prod', 'prod')).toBe('/prod');
  });

  it('lower-cases header names that another front end left as they were', () => {
    const event = httpApiEvent({ path: '/devices/d-1/config' });
    event.headers = { Authorization: 'Bearer t', 'If-None-Match': '"abc"' };
    expect(requestFromEvent(event).headers).toEqual({ authorization: 'Bearer t', 'if-none-match': '"abc"' });
  });

  it('decodes a base64 body to its bytes', () => {
    const bytes = Buffer.from([0x00, 0xff, 0x10, 0x80]);
    expect(requestFromEvent(httpApiEvent({ path: '/devices/d-1/events', body: bytes })).body).toEqual(bytes);
  });

  it('reads an event with only a path and headers as a GET with no body, no query and no request ID', () => {
    expect(requestFromEvent({ rawPath: '/devices/d-1/config', headers: {} })).toEqual({
      method: 'GET',
      path: '/devices/d-1/config',
      headers: {},
      query: {},
      body: Buffer.alloc(0),
      requestId: '',
    });
  });
});

describe('resultFromResponse', () => {
  it('sends a value as JSON text', () => {
    expect(resultFromResponse({ statusCode: 202, headers: { 'content-type': 'application/json' }, body: { messageIds: ['m-1'] } })).toEqual({
      statusCode: 202,
      headers: { 'content-type': 'application/json' },
      body: '{"messageIds":["m-1"]}',
      isBase64Encoded: false,
    });
  });

  it('sends bytes base64-encoded, flagged so API Gateway decodes them', () => {
    const bytes = Buffer.from([0x00, 0xff, 0x7b]);
    const result = resultFromResponse({ statusCode: 200, headers: {}, body: bytes });
    expect(result.isBase64Encoded).toBe(true);
    expect(bodyBytes(result.body, result.isBase64Encoded)).toEqual(bytes);
  });

  it('sends no body as an empty one', () => {
    expect(resultFromResponse({ statusCode: 304, headers: { etag: '"e"' } })).toEqual({ statusCode: 304, headers: { etag: '"e"' }, body: '', isBase64Encoded: false });
  });
});

describe('lowerCaseHeaders and bodyBytes', () => {
  it('keep values as they are', () => {
    expect(lowerCaseHeaders({ 'Content-Length': 3, ETag: '"e"' })).toEqual({ 'content-length': 3, etag: '"e"' });
    expect(lowerCaseHeaders(undefined)).toEqual({});
    expect(bodyBytes('aGk=', false)).toEqual(Buffer.from('aGk='));
    expect(bodyBytes('aGk=', true)).toEqual(Buffer.from('hi'));
    expect(bodyBytes(undefined, true)).toEqual(Buffer.alloc(0));
  });
});
