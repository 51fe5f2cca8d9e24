/**
 * The client's handling of what the emulator does not do on demand: 5xx answers, non-JSON error bodies, dropped
 * connections, Retry-After, a rotated registry token. A small HTTP server on 127.0.0.1 plays ClearBlade with a
 * script per test; the routes themselves are tested against the emulator (fleet-emulator.test.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ClearBladeClient, ClearBladeError, errorDetails, retryAfter, type ClientOptions } from '../../../lib/clearblade/rest-client.js';

const ADMIN_TOKEN = 'admin-token-secret-123';
const REGIONAL_TOKEN = 'regional-token-secret-456';

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  token: string | undefined;
  body: string;
}

type Script = (req: Seen, res: ServerResponse, n: number) => void;

let server: Server | undefined;
afterEach(async () => {
  if (server !== undefined) await new Promise((r) => server!.close(r));
  server = undefined;
});

/** A ClearBlade stand-in: getRegistryCredentials answers with itself as the regional endpoint; `script` answers the rest. */
async function fakeClearBlade(script: Script, options: { tokens?: () => string } = {}): Promise<{ url: string; seen: Seen[]; inFlight: { now: number; max: number } }> {
  const seen: Seen[] = [];
  const inFlight = { now: 0, max: 0 };
  let regionalCalls = 0;
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const s: Seen = { method: req.method ?? '', path: url.pathname, query: url.searchParams, token: req.headers['clearblade-usertoken'] as string | undefined, body };
      seen.push(s);
      if (url.pathname === '/api/v/1/code/admin-key/getRegistryCredentials') {
        const address = server!.address() as AddressInfo;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ systemKey: 'reg-key', serviceAccountToken: options.tokens?.() ?? REGIONAL_TOKEN, url: `http://127.0.0.1:${address.port}` }));
        return;
      }
      regionalCalls += 1;
      inFlight.now += 1;
      inFlight.max = Math.max(inFlight.max, inFlight.now);
      res.on('close', () => (inFlight.now -= 1));
      script(s, res, regionalCalls);
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}`, seen, inFlight };
}

function client(url: string, extra: Partial<ClientOptions> = {}): ClearBladeClient {
  return new ClearBladeClient({
    serviceAccount: { systemKey: 'admin-key', token: ADMIN_TOKEN, url, project: 'p-1' },
    registry: { project: 'my-project', location: 'us-central1', registry: 'my-registry' },
    retry: { baseMs: 5, maxMs: 40 },
    ...extra,
  });
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

describe('ClearBladeClient', () => {
  it('asks getRegistryCredentials once for many calls, then calls the regional endpoint with its token', async () => {
    const fake = await fakeClearBlade((s, res) => json(res, 200, { id: JSON.parse(s.body).id }));
    const c = client(fake.url);
    await Promise.all(Array.from({ length: 20 }, (_, i) => c.createDevice({ id: `dev-${i}` })));
    const creds = fake.seen.filter((s) => s.path.endsWith('getRegistryCredentials'));
    expect(creds).toHaveLength(1);
    expect(creds[0]!.token).toBe(ADMIN_TOKEN);
    expect(JSON.parse(creds[0]!.body)).toEqual({ project: 'my-project', region: 'us-central1', registry: 'my-registry' });
    const creates = fake.seen.filter((s) => s.path === '/api/v/4/webhook/execute/reg-key/cloudiot_devices');
    expect(creates).toHaveLength(20);
    expect(creates.every((s) => s.method === 'POST' && s.token === REGIONAL_TOKEN)).toBe(true);
    // As ClearBlade documents a create: no query; the regional system key names the registry.
    expect([...creates[0]!.query.keys()]).toEqual([]);
    expect(c.calls).toMatchObject({ getRegistryCredentials: 1, create: 20 });
  });

  it('sends bind and unbind as cloudiot methods with the gateway and device in the body', async () => {
    const fake = await fakeClearBlade((_s, res) => res.end());
    const c = client(fake.url);
    await c.bindDeviceToGateway('gw-1', 'pump-1');
    await c.unbindDeviceFromGateway('gw-1', 'pump-1');
    const [bind, unbind] = fake.seen.filter((s) => s.path.endsWith('/cloudiot'));
    expect(bind!.query.get('method')).toBe('bindDeviceToGateway');
    expect(unbind!.query.get('method')).toBe('unbindDeviceFromGateway');
    expect(JSON.parse(bind!.body)).toEqual({ gatewayId: 'gw-1', deviceId: 'pump-1' });
    expect(bind!.query.get('parent')).toBe('projects/my-project/locations/us-central1/registries/my-registry');
    expect(c.callsByKind()).toEqual({ reads: 1, creates: 0, binds: 2 });
  });

  it('retries a 503 and a dropped connection, then succeeds', async () => {
    const fake = await fakeClearBlade((_s, res, n) => {
      if (n === 1) json(res, 503, { error: { code: 503, message: 'busy', status: 'UNAVAILABLE' } });
      else if (n === 2) res.socket?.destroy();
      else json(res, 200, { id: 'dev-1' });
    });
    const retries: (number | undefined)[] = [];
    const c = client(fake.url, { onRetry: (r) => retries.push(r.httpStatus) });
    await expect(c.getDevice('dev-1')).resolves.toMatchObject({ id: 'dev-1' });
    expect(retries).toEqual([503, undefined]);
    expect(c.calls.get).toBe(3);
  });

  it('types a refusal with the HTTP status and ClearBlade status, and does not retry it', async () => {
    const fake = await fakeClearBlade((_s, res) => json(res, 409, { error: { code: 409, message: 'device dev-1 already exists', status: 'ALREADY_EXISTS' } }));
    const c = client(fake.url);
    const e = (await c.createDevice({ id: 'dev-1' }).catch((x: unknown) => x)) as ClearBladeError;
    expect(e).toBeInstanceOf(ClearBladeError);
    expect([e.httpStatus, e.status, e.operation, e.attempts, e.retryable]).toEqual([409, 'ALREADY_EXISTS', 'create', 1, false]);
    expect(e.message).toBe('create: HTTP 409 ALREADY_EXISTS: device dev-1 already exists');
    expect(c.calls.create).toBe(1);
  });

  it('keeps a non-JSON error body as one short line, and gives up after its attempts on a lasting 5xx', async () => {
    const html = `<html>\n<body>Bad gateway ${'x'.repeat(500)}</body></html>`;
    const fake = await fakeClearBlade((_s, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end(html);
    });
    const c = client(fake.url, { retry: { attempts: 3, baseMs: 1, maxMs: 5 } });
    const e = (await c.listAllDevices().catch((x: unknown) => x)) as ClearBladeError;
    expect([e.httpStatus, e.status, e.attempts]).toEqual([502, undefined, 3]);
    expect(e.message).toMatch(/^list: HTTP 502: <html> <body>Bad gateway x+…$/);
    expect(e.message.length).toBeLessThan(260);
    expect(c.calls.list).toBe(3);
  });

  it('waits the Retry-After of a 429 and slows that kind of call down', async () => {
    const fake = await fakeClearBlade((_s, res, n) =>
      n === 1 ? json(res, 429, { error: { code: 429, message: 'quota', status: 'RESOURCE_EXHAUSTED' } }, { 'retry-after': '1' }) : res.end(),
    );
    const c = client(fake.url, { ratesPerMinute: { binds: 6000 } });
    const t = performance.now();
    await c.bindDeviceToGateway('gw-1', 'pump-1');
    expect(performance.now() - t).toBeGreaterThanOrEqual(990);
    expect(c.rateLimited.binds).toBe(1);
    expect(c.buckets.binds.rate * 60_000).toBeLessThan(6000);
    expect(c.buckets.creates.rate * 60_000).toBe(3000);
  });

  it('fetches the registry token again, once, when the regional endpoint answers 401', async () => {
    let handedOut = 0;
    const fake = await fakeClearBlade((s, res) => (s.token === 'old-token' ? json(res, 401, { error: { code: 401, message: 'expired', status: 'UNAUTHENTICATED' } }) : json(res, 200, { id: 'd' })), {
      tokens: () => (handedOut++ === 0 ? 'old-token' : 'new-token'),
    });
    const c = client(fake.url);
    await expect(c.getDevice('d-1')).resolves.toEqual({ id: 'd' });
    expect(fake.seen.filter((s) => !s.path.endsWith('getRegistryCredentials')).map((s) => s.token)).toEqual(['old-token', 'new-token']);
    expect(fake.seen.filter((s) => s.path.endsWith('getRegistryCredentials'))).toHaveLength(2);
  });

  it('follows page tokens with every filter on every page, and stops on a token served twice', async () => {
    const fake = await fakeClearBlade((s, res) => {
      const page = Number(s.query.get('pageToken') ?? '0');
      json(res, 200, { devices: [{ id: `dev-${page}` }], ...(page < 2 ? { nextPageToken: String(page + 1) } : {}) });
    });
    const c = client(fake.url);
    const all = await c.listAllDevices({ associationsGatewayId: 'gw-7', pageSize: 1000 });
    expect(all.map((d) => d.id)).toEqual(['dev-0', 'dev-1', 'dev-2']);
    const lists = fake.seen.filter((s) => s.method === 'GET');
    expect(lists.map((s) => [s.query.get('gatewayListOptions.associationsGatewayId'), s.query.get('pageSize'), s.query.get('pageToken')])).toEqual([
      ['gw-7', '500', null],
      ['gw-7', '500', '1'],
      ['gw-7', '500', '2'],
    ]);

    const looping = await fakeClearBlade((_s, res) => json(res, 200, { devices: [{ id: 'a' }], nextPageToken: 'same' }));
    await expect(client(looping.url).listAllDevices()).rejects.toThrow(/same page token twice/);
  });

  it('never has more calls in flight than its limit', async () => {
    const fake = await fakeClearBlade((_s, res) => setTimeout(() => res.end(), 20));
    const c = client(fake.url, { concurrency: 3, ratesPerMinute: { binds: Infinity } });
    await Promise.all(Array.from({ length: 30 }, (_, i) => c.bindDeviceToGateway('gw-1', `d-${i}`)));
    expect(fake.inFlight.max).toBe(3);
  });

  it('paces a kind of call to its rate: one second of calls at once, then evenly', async () => {
    const fake = await fakeClearBlade((_s, res) => res.end());
    const c = client(fake.url, { ratesPerMinute: { creates: 1200 } }); // 20 a second
    const t = performance.now();
    await Promise.all(Array.from({ length: 40 }, (_, i) => c.createDevice({ id: `d-${i}` })));
    const took = performance.now() - t;
    expect(took).toBeGreaterThanOrEqual(950); // 20 at once, 20 more over a second
    expect(took).toBeLessThan(3000);
  });

  it('stops waiting for its turn when its signal aborts, and sends nothing more', async () => {
    const fake = await fakeClearBlade((_s, res) => res.end());
    const stop = new AbortController();
    const c = client(fake.url, { signal: stop.signal, ratesPerMinute: { creates: 60 } }); // one a second
    const calls = Array.from({ length: 5 }, (_, i) => c.createDevice({ id: `d-${i}` }).then(() => 'sent', (e: Error) => e.message));
    setTimeout(() => stop.abort(new Error('stopped')), 200);
    expect(await Promise.all(calls)).toEqual(['sent', 'stopped', 'stopped', 'stopped', 'stopped']);
    expect(c.calls.create).toBe(1);
  });

  it('puts no token in any error', async () => {
    const fake = await fakeClearBlade((s, res) => json(res, 400, { error: { message: `bad ${s.token}`, status: 'INVALID_ARGUMENT' } }));
    const e = (await client(fake.url).getDevice('x').catch((x: unknown) => x)) as Error;
    // The server echoed the token back; the client reports what the server said, but never adds one itself.
    expect(e.message).toBe(`get: HTTP 400 INVALID_ARGUMENT: bad ${REGIONAL_TOKEN}`);
    const unreachable = client('http://127.0.0.1:9', { retry: { attempts: 1 } });
    const net = (await unreachable.getDevice('x').catch((x: unknown) => x)) as Error;
    expect(net.message).toMatch(/^getRegistryCredentials: network error/);
    expect(JSON.stringify({ m: net.message, s: net.stack })).not.toContain(ADMIN_TOKEN);
  });
});

describe('errorDetails and retryAfter', () => {
  it('reads the nested envelope, a flat one, a bare error string and plain text', () => {
    expect(errorDetails({ error: { code: 404, message: 'no such device', status: 'NOT_FOUND' } }, '')).toEqual({ status: 'NOT_FOUND', message: 'no such device' });
    expect(errorDetails({ status: 'FAILED_PRECONDITION', message: 'too many' }, '')).toEqual({ status: 'FAILED_PRECONDITION', message: 'too many' });
    expect(errorDetails({ error: 'Invalid token' }, '')).toEqual({ status: undefined, message: 'Invalid token' });
    expect(errorDetails(undefined, 'upstream\nconnect error')).toEqual({ status: undefined, message: 'upstream connect error' });
  });

  it('takes Retry-After in seconds or as a date', () => {
    expect(retryAfter('3')).toBe(3000);
    expect(retryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(retryAfter('soon')).toBeUndefined();
    expect(retryAfter(null)).toBeUndefined();
  });
});
