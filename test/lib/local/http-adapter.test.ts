import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2 } from 'aws-lambda';
import { afterEach, describe, expect, it } from 'vitest';
import { generateTlsMaterial } from '../../../emulator/tls.js';
import { serveHttpApi, type ServedHttpApi } from '../../../lib/local/http-adapter.js';

interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

function send(url: string, init: { method?: string; headers?: Record<string, string>; body?: Buffer | string; ca?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = request(target, { method: init.method ?? 'GET', headers: init.headers, ...(init.ca ? { ca: init.ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** A handler that answers with the event it was given. */
const echo = async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyResultV2> => ({ statusCode: 200, body: JSON.stringify(event) });

let api: ServedHttpApi | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

describe('serveHttpApi: the event a handler gets', () => {
  it('builds a payload 2.0 event as API Gateway does: decoded path, lower-case headers, query, cookies, request ID', async () => {
    api = await serveHttpApi(echo);

    const reply = await send(`${api.url}/devices/dev%25x/events/a%3Ab?x=1&x=2&y=3`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Message-Id': 'm-1', Cookie: 'a=1; b=2' },
      body: '{"t":1}',
    });
    const event = JSON.parse(reply.body.toString()) as APIGatewayProxyEventV2;

    expect(event).toMatchObject({
      version: '2.0',
      routeKey: '$default',
      rawPath: '/devices/dev%x/events/a:b',
      rawQueryString: 'x=1&x=2&y=3',
      queryStringParameters: { x: '1,2', y: '3' },
      cookies: ['a=1', 'b=2'],
      headers: { 'content-type': 'application/json', 'x-message-id': 'm-1' },
      body: '{"t":1}',
      isBase64Encoded: false,
      requestContext: { http: { method: 'POST', path: '/devices/dev%x/events/a:b', sourceIp: '127.0.0.1' }, stage: '$default' },
    });
    expect(event.headers['cookie']).toBeUndefined();
    expect(event.requestContext.requestId).toMatch(/^[A-Za-z0-9+/]{16}$/);
  });

  it('base64-encodes a body that is not text, and gives each request its own ID', async () => {
    api = await serveHttpApi(echo);
    const bytes = Buffer.from([0x00, 0xff, 0xfe, 0x80]);

    const first = JSON.parse((await send(`${api.url}/x`, { method: 'POST', body: bytes, headers: { 'content-type': 'application/octet-stream' } })).body.toString()) as APIGatewayProxyEventV2;
    const second = JSON.parse((await send(`${api.url}/x`, { method: 'POST', body: bytes, headers: { 'content-type': 'text/plain' } })).body.toString()) as APIGatewayProxyEventV2;

    expect(first.isBase64Encoded).toBe(true);
    expect(Buffer.from(first.body!, 'base64')).toEqual(bytes);
    // Declared text, but not UTF-8: passing it as a string would corrupt it.
    expect(second.isBase64Encoded).toBe(true);
    expect(first.requestContext.requestId).not.toBe(second.requestContext.requestId);
  });
});

describe('serveHttpApi: answers', () => {
  it('routes by method and path, and answers 404 like API Gateway when nothing matches', async () => {
    api = await serveHttpApi([
      { method: 'POST', path: /^\/devices\//, handler: async () => ({ statusCode: 202, body: '"ingest"' }) },
      { method: 'GET', path: /^\/devices\/[^/]+\/config$/, handler: async () => ({ statusCode: 200, body: '"config"' }) },
    ]);

    const post = await send(`${api.url}/devices/d1/config`, { method: 'POST' });
    const get = await send(`${api.url}/devices/d1/config`);
    const none = await send(`${api.url}/devices/d1/events`);

    expect([post.status, post.body.toString()]).toEqual([202, '"ingest"']);
    expect([get.status, get.body.toString()]).toEqual([200, '"config"']);
    expect([none.status, JSON.parse(none.body.toString())]).toEqual([404, { message: 'Not Found' }]);
  });

  it('writes status, headers, cookies and a base64 body back', async () => {
    api = await serveHttpApi(async () => ({
      statusCode: 201,
      headers: { 'X-Config-Version': 3, ETag: '"abc"' },
      cookies: ['s=1; HttpOnly'],
      body: Buffer.from([1, 2, 3]).toString('base64'),
      isBase64Encoded: true,
    }));

    const reply = await send(`${api.url}/`);

    expect(reply.status).toBe(201);
    expect(reply.headers).toMatchObject({ 'x-config-version': '3', etag: '"abc"', 'set-cookie': ['s=1; HttpOnly'] });
    expect(reply.body).toEqual(Buffer.from([1, 2, 3]));
  });

  it('takes a bare string result as a 200 JSON answer', async () => {
    api = await serveHttpApi(async () => '{"ok":true}');

    const reply = await send(`${api.url}/`);

    expect([reply.status, reply.headers['content-type'], reply.body.toString()]).toEqual([200, 'application/json', '{"ok":true}']);
  });

  it('answers 500 without details when the handler throws', async () => {
    api = await serveHttpApi(async () => {
      throw new Error('secret detail');
    });

    const reply = await send(`${api.url}/`);

    expect([reply.status, reply.body.toString()]).toEqual([500, '{"message":"Internal Server Error"}']);
  });

  it('refuses a body over the limit with 413 before the handler runs', async () => {
    let called = false;
    api = await serveHttpApi(
      async () => {
        called = true;
        return { statusCode: 200 };
      },
      { maxBodyBytes: 1024 },
    );

    const reply = await send(`${api.url}/`, { method: 'POST', body: Buffer.alloc(1025) });

    expect(reply.status).toBe(413);
    expect(called).toBe(false);
  });

  it('serves HTTPS to a client that trusts the CA, and not to one that does not', async () => {
    const tls = await generateTlsMaterial();
    api = await serveHttpApi(async () => ({ statusCode: 200, body: 'over tls' }), { tls: { key: tls.keyPem, cert: tls.certPem } });

    expect(api.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect((await send(`${api.url}/`, { ca: tls.caPem! })).body.toString()).toBe('over tls');
    await expect(send(`${api.url}/`)).rejects.toThrow(/self-signed|unable to verify|certificate/i);
  });
});
