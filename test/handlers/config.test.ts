import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createConfigHandler, handler as defaultHandler, type ConfigHandler } from '../../handlers/config.js';
import { deriveDeviceKey } from '../../lib/auth/index.js';
import { ConfigStore, sha256Hex } from '../../lib/config-store/index.js';
import { httpApiEvent } from '../helpers/apigw-events.js';
import { withCapturedOutput } from '../helpers/captured-output.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../helpers/local-dynamodb.js';

const PROJECT = 'demo-project';
const LOCATION = 'us-central1';
const REGISTRY = 'demo-registry';
const MASTER = 'a-device-key-master-secret-of-at-least-32-bytes';
const longPath = (d: string): string => `/v1/projects/${PROJECT}/locations/${LOCATION}/registries/${REGISTRY}/devices/${d}/config`;
const rawPath = (d: string): string => `/devices/${d}/config`;

// One P-256 key per device, generated once for the file.
const keys: Record<string, { privateKey: KeyObject; publicKey: KeyObject }> = {
  'dev-a': generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  'dev-b': generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  'dev-empty': generateKeyPairSync('ec', { namedCurve: 'P-256' }),
};

let db: LocalDynamoDb;
let store: ConfigStore;
let dir: string;
let env: Record<string, string>;
let handler: ConfigHandler;

const A_V1 = Buffer.from('{"rate":1}');
const A_V2 = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7b]);

beforeAll(async () => {
  db = await startLocalDynamoDb();
  store = new ConfigStore({ tableName: db.tableName, client: db.client });
  await store.putConfig('dev-a', A_V1, new Date('2025-01-01T00:00:00Z'));
  await store.putConfig('dev-a', A_V2, new Date('2025-01-01T01:00:00Z'));
  await store.putConfig('dev-b', Buffer.from('b'), new Date('2025-01-01T00:00:00Z'));

  dir = mkdtempSync(join(tmpdir(), 'config-handler-'));
  const keyDoc = Object.fromEntries(Object.entries(keys).map(([id, k]) => [id, [k.publicKey.export({ type: 'spki', format: 'pem' }).toString()]]));
  writeFileSync(join(dir, 'device-keys.json'), JSON.stringify(keyDoc));
  writeFileSync(join(dir, 'master'), `${MASTER}\n`);
  env = {
    IOTCORE_PROJECT: PROJECT,
    IOTCORE_LOCATION: LOCATION,
    IOTCORE_REGISTRY: REGISTRY,
    CONFIG_TABLE: db.tableName,
    DEVICE_KEYS_FILE: join(dir, 'device-keys.json'),
    DEVICE_KEY_MASTER_FILE: join(dir, 'master'),
  };
  handler = createConfigHandler({ env, store, logger: new Logger({ logLevel: 'SILENT' }) });
});

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await db.stop();
});

/** A device JWT as IoT Core takes it: ES256, typ JWT, aud = project; `named` adds ClearBlade's uid claim. */
async function tokenOf(deviceId: string, options: { named?: boolean; expiredHoursAgo?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000) - (options.expiredHoursAgo ?? 0) * 3600;
  const claims = options.named ? { uid: deviceId } : {};
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
    .setAudience(PROJECT)
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(keys[deviceId]!.privateKey);
}

/** An API Gateway HTTP API (payload 2.0) GET event. */
function get(path: string, options: { headers?: Record<string, string>; query?: Record<string, string>; stage?: string } = {}): APIGatewayProxyEventV2 {
  return httpApiEvent({ method: 'GET', path, ...options });
}

const bearer = async (d: string, options?: { named?: boolean; expiredHoursAgo?: number }): Promise<Record<string, string>> => ({
  authorization: `Bearer ${await tokenOf(d, options)}`,
});
const json = (body: string | undefined): Record<string, unknown> => JSON.parse(body ?? '') as Record<string, unknown>;

describe('GET /v1/.../devices/{d}/config?local_version=N (IoT Core HTTP bridge form)', () => {
  it('answers no local_version and local_version=0 with the current config', async () => {
    const queries: Record<string, string>[] = [{}, { local_version: '0' }];
    for (const query of queries) {
      const res = await handler(get(longPath('dev-a'), { headers: await bearer('dev-a'), query }));
      expect(res.statusCode).toBe(200);
      expect(res.headers?.['content-type']).toBe('application/json');
      expect(json(res.body)).toEqual({ version: '2', binaryData: A_V2.toString('base64') });
    }
  });

  it('answers an older local_version with the newer config', async () => {
    const res = await handler(get(longPath('dev-a'), { headers: await bearer('dev-a'), query: { local_version: '1' } }));
    expect(res.statusCode).toBe(200);
    expect(json(res.body)).toEqual({ version: '2', binaryData: A_V2.toString('base64') });
  });

  it('answers the latest local_version with the current config again (200, not 304)', async () => {
    const res = await handler(get(longPath('dev-a'), { headers: await bearer('dev-a'), query: { local_version: '2' } }));
    expect(res.statusCode).toBe(200);
    expect(json(res.body)).toEqual({ version: '2', binaryData: A_V2.toString('base64') });
  });

  it('answers a local_version above the latest with 400 OUT_OF_RANGE', async () => {
    const res = await handler(get(longPath('dev-a'), { headers: await bearer('dev-a'), query: { local_version: '3' } }));
    expect(res.statusCode).toBe(400);
    expect(json(res.body)).toEqual({ error: { code: 400, status: 'OUT_OF_RANGE', message: expect.stringContaining('latest configuration version 2') } });
  });

  it('answers a malformed local_version with 400 INVALID_ARGUMENT naming the field', async () => {
    const res = await handler(get(longPath('dev-a'), { headers: await bearer('dev-a'), query: { local_version: 'latest' } }));
    expect(res.statusCode).toBe(400);
    expect(json(res.body)).toMatchObject({ error: { code: 400, status: 'INVALID_ARGUMENT', message: expect.stringContaining('local_version') } });
  });

  it('answers 404 NOT_FOUND when no config was received for the device', async () => {
    const res = await handler(get(longPath('dev-empty'), { headers: await bearer('dev-empty'), query: { local_version: '0' } }));
    expect(res.statusCode).toBe(404);
    expect(json(res.body)).toMatchObject({ error: { code: 404, status: 'NOT_FOUND' } });
  });

  it('answers 404 for a registry this deployment does not serve', async () => {
    const path = `/v1/projects/${PROJECT}/locations/${LOCATION}/registries/other-registry/devices/dev-a/config`;
    const res = await handler(get(path, { headers: await bearer('dev-a') }));
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toContain(A_V2.toString('base64'));
  });
});

describe('GET /devices/{d}/config (raw form)', () => {
  it('answers the raw bytes with ETag and X-Config-Version', async () => {
    const res = await handler(get(rawPath('dev-a'), { headers: await bearer('dev-a') }));
    expect(res.statusCode).toBe(200);
    expect(res.isBase64Encoded).toBe(true);
    expect(Buffer.from(res.body ?? '', 'base64')).toEqual(A_V2);
    expect(res.headers).toMatchObject({ etag: `"${sha256Hex(A_V2)}"`, 'x-config-version': '2', 'content-type': 'application/octet-stream' });
  });

  it('answers 304 without a body when If-None-Match names the current ETag', async () => {
    const headers = { ...(await bearer('dev-a')), 'if-none-match': `"${sha256Hex(A_V2)}"` };
    const res = await handler(get(rawPath('dev-a'), { headers }));
    expect(res.statusCode).toBe(304);
    expect(res.body ?? '').toBe('');
    expect(res.headers).toMatchObject({ etag: `"${sha256Hex(A_V2)}"`, 'x-config-version': '2' });
  });

  it('answers 200 with the new bytes when If-None-Match names an older ETag', async () => {
    const headers = { ...(await bearer('dev-a')), 'if-none-match': `"${sha256Hex(A_V1)}"` };
    const res = await handler(get(rawPath('dev-a'), { headers }));
    expect(res.statusCode).toBe(200);
    expect(Buffer.from(res.body ?? '', 'base64')).toEqual(A_V2);
  });

  it('answers 404 NOT_FOUND in the IoT Core envelope when no config was received', async () => {
    const res = await handler(get(rawPath('dev-empty'), { headers: await bearer('dev-empty') }));
    expect(res.statusCode).toBe(404);
    expect(json(res.body)).toMatchObject({ error: { code: 404, status: 'NOT_FOUND' } });
  });

  it('accepts a device key as well as a device JWT', async () => {
    const res = await handler(get(rawPath('dev-b'), { headers: { authorization: `Device-Key ${deriveDeviceKey(Buffer.from(MASTER), 'dev-b')}` } }));
    expect(res.statusCode).toBe(200);
    expect(Buffer.from(res.body ?? '', 'base64').toString()).toBe('b');
  });
});

describe('metrics', () => {
  it('count ConfigsDelivered for each answer that carries a config, and nothing for 304 or 404', async () => {
    const { output } = await withCapturedOutput(async () => {
      const measured = createConfigHandler({ env, store, logger: new Logger({ logLevel: 'SILENT' }) });
      const auth = await bearer('dev-a');
      const answers = [
        await measured(get(rawPath('dev-a'), { headers: auth })),
        await measured(get(longPath('dev-a'), { headers: auth })),
        await measured(get(rawPath('dev-a'), { headers: { ...auth, 'if-none-match': `"${sha256Hex(A_V2)}"` } })),
        await measured(get(rawPath('dev-empty'), { headers: await bearer('dev-empty') })),
      ];
      expect(answers.map((a) => a.statusCode)).toEqual([200, 200, 304, 404]);
    });
    const emf = output.metricDocuments();
    expect(emf.map((l) => l.ConfigsDelivered)).toEqual([1, 1]);
    expect(emf[0]).toMatchObject({ service: 'iotcore-relay', _aws: { CloudWatchMetrics: [{ Namespace: 'IotCoreRelay', Dimensions: [['service']] }] } });
  });
});

describe('authentication: a device reads only its own config', () => {
  const forms = [
    ['IoT Core form', longPath],
    ['raw form', rawPath],
  ] as const;

  it.each(forms)('%s: refuses a request without credentials with 401 and WWW-Authenticate', async (_, path) => {
    const res = await handler(get(path('dev-a')));
    expect(res.statusCode).toBe(401);
    expect(json(res.body)).toMatchObject({ error: { code: 401, status: 'UNAUTHENTICATED' } });
    expect(res.headers?.['www-authenticate']).toMatch(/Bearer.*Device-Key/);
    expect(res.body).not.toContain(A_V2.toString('base64'));
  });

  it.each(forms)("%s: refuses another device's token naming that device with 403", async (_, path) => {
    const res = await handler(get(path('dev-a'), { headers: await bearer('dev-b', { named: true }) }));
    expect(res.statusCode).toBe(403);
    expect(json(res.body)).toMatchObject({ error: { code: 403, status: 'PERMISSION_DENIED' } });
    expect(res.body).not.toContain(A_V2.toString('base64'));
  });

  it.each(forms)("%s: refuses another device's anonymous token with 401 (its signature is not the path device's)", async (_, path) => {
    const res = await handler(get(path('dev-a'), { headers: await bearer('dev-b') }));
    expect(res.statusCode).toBe(401);
  });

  it("refuses another device's device key", async () => {
    const res = await handler(get(rawPath('dev-a'), { headers: { authorization: `Device-Key ${deriveDeviceKey(Buffer.from(MASTER), 'dev-b')}` } }));
    expect(res.statusCode).toBe(401);
  });

  it('refuses an expired token', async () => {
    const res = await handler(get(rawPath('dev-a'), { headers: await bearer('dev-a', { expiredHoursAgo: 3 }) }));
    expect(res.statusCode).toBe(401);
    expect(json(res.body)).toMatchObject({ error: { status: 'UNAUTHENTICATED', message: expect.stringContaining('expired') } });
  });

  it('refuses an invalid device ID in the path with 400 before anything else', async () => {
    const res = await handler(get(rawPath('goog-device'), { headers: await bearer('dev-a') }));
    expect(res.statusCode).toBe(400);
    expect(json(res.body)).toMatchObject({ error: { status: 'INVALID_ARGUMENT' } });
  });

  it('serves the route under a named stage, and reads headers in any case', async () => {
    const event = get(rawPath('dev-a'), { stage: 'prod' });
    // httpApiEvent lower-cases names as API Gateway does; another front end might not.
    event.headers = { Authorization: (await bearer('dev-a')).authorization! };
    const res = await handler(event);
    expect(res.statusCode).toBe(200);
    expect(Buffer.from(res.body ?? '', 'base64')).toEqual(A_V2);
  });

  it('answers 404 for a path that is not a config route', async () => {
    const res = await handler(get('/devices/dev-a/configs', { headers: await bearer('dev-a') }));
    expect(res.statusCode).toBe(404);
  });
});

describe('the exported handler', () => {
  it('builds its store and authenticator from the environment', async () => {
    for (const [k, v] of Object.entries({ ...db.env, ...env })) vi.stubEnv(k, v);
    try {
      const res = await defaultHandler(get(longPath('dev-b'), { headers: await bearer('dev-b'), query: { local_version: '0' } }));
      expect(res.statusCode).toBe(200);
      expect(json(res.body)).toEqual({ version: '1', binaryData: Buffer.from('b').toString('base64') });
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
