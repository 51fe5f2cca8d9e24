import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { deriveDeviceKey, deviceAuthenticatorFromEnv, masterKeyFromText } from '../../../lib/auth/index.js';
import {
  configDeliveryServiceFromEnv,
  ConfigDeliveryService,
  type ConfigBackend,
  type ConfigDeliveryResponse,
  type ConfigRefused,
  type ConfigRequest,
} from '../../../lib/config-delivery/config-delivery-service.js';
import { ConfigStore, sha256Hex } from '../../../lib/config-store/index.js';
import { RelayError } from '../../../lib/errors.js';
import { HttpRefusal } from '../../../lib/http/error-envelope.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../../helpers/local-dynamodb.js';
import { deviceJwt, ecDevice, keyDocument, PROJECT } from '../auth/device-credentials.js';

const LOCATION = 'us-central1';
const REGISTRY = 'demo-registry';
const MASTER = 'config-delivery-master-secret-0123456789abcdef';
const longPath = (d: string, registry = REGISTRY): string => `/v1/projects/${PROJECT}/locations/${LOCATION}/registries/${registry}/devices/${d}/config`;
const rawPath = (d: string): string => `/devices/${d}/config`;
const devA = ecDevice('dev-a');
const devB = ecDevice('dev-b');
const devEmpty = ecDevice('dev-empty');
const A_V1 = Buffer.from('{"rate":1}');
const A_V2 = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7b]);

let db: LocalDynamoDb;
let store: ConfigStore;
let dir: string;
let env: Record<string, string>;
let backend: ConfigBackend;
/** How many requests reached the backend (authentication and the store). */
let backendAsked = 0;
let service: ConfigDeliveryService;

beforeAll(async () => {
  db = await startLocalDynamoDb();
  store = new ConfigStore({ tableName: db.tableName, client: db.client });
  // dev-a holds versions 1 and 2, dev-b version 1, dev-empty nothing.
  const received: [string, Buffer][] = [['dev-a', A_V1], ['dev-a', A_V2], ['dev-b', Buffer.from('b')]];
  for (const [hour, [deviceId, bytes]] of received.entries()) await store.putConfig(deviceId, bytes, new Date(Date.UTC(2025, 0, 1, hour)));
  dir = mkdtempSync(join(tmpdir(), 'config-delivery-'));
  writeFileSync(join(dir, 'device-keys.json'), keyDocument([devA, devB, devEmpty]));
  writeFileSync(join(dir, 'master'), `${MASTER}\n`);
  env = {
    IOTCORE_PROJECT: PROJECT,
    IOTCORE_LOCATION: LOCATION,
    IOTCORE_REGISTRY: REGISTRY,
    DEVICE_KEYS_FILE: join(dir, 'device-keys.json'),
    DEVICE_KEY_MASTER_FILE: join(dir, 'master'),
  };
  backend = { authenticator: deviceAuthenticatorFromEnv(env), store };
  service = new ConfigDeliveryService({
    registry: { project: PROJECT, location: LOCATION, registry: REGISTRY },
    backend: () => {
      backendAsked++;
      return backend;
    },
  });
});

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await db.stop();
});

const bearer = async (signer = devA, claims: Record<string, unknown> = {}): Promise<Record<string, string>> => ({
  authorization: `Bearer ${await deviceJwt(signer, claims)}`,
});
const deviceKey = (id: string): Record<string, string> => ({ authorization: `Device-Key ${deriveDeviceKey(masterKeyFromText(MASTER, 'test'), id)}` });

function get(path: string, headers: Record<string, string> = {}, query: Record<string, string> = {}): ConfigRequest {
  return { method: 'GET', path, headers, query };
}

function refused(response: ConfigDeliveryResponse): ConfigRefused {
  if (response.ok) throw new Error(`expected a refusal, got ${response.statusCode}`);
  return response;
}

describe('the IoT Core form', () => {
  it('answers the current config as JSON, for no local_version, 0, an older one and the latest', async () => {
    for (const local_version of [undefined, '0', '1', '2']) {
      const answer = await service.handle(get(longPath('dev-a'), await bearer(), local_version === undefined ? {} : { local_version }));
      expect(answer).toEqual({
        ok: true,
        statusCode: 200,
        headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
        body: { version: '2', binaryData: A_V2.toString('base64') },
        deviceId: 'dev-a',
        form: 'iotcore',
        version: 2,
      });
    }
  });

  it('refuses a local_version above the latest with OUT_OF_RANGE', async () => {
    const answer = refused(await service.handle(get(longPath('dev-a'), await bearer(), { local_version: '3' })));
    expect(answer.statusCode).toBe(400);
    expect(answer.body).toEqual({ error: { code: 400, status: 'OUT_OF_RANGE', message: 'local_version 3 is newer than the latest configuration version 2' } });
    expect(answer.error).toBeInstanceOf(HttpRefusal);
    expect(answer.deviceId).toBe('dev-a');
  });

  it('refuses a malformed local_version before authenticating or reading the store', async () => {
    const before = backendAsked;
    const answer = refused(await service.handle(get(longPath('dev-a'), {}, { local_version: '-1' })));
    expect(answer.statusCode).toBe(400);
    expect(answer.body.error).toMatchObject({ status: 'INVALID_ARGUMENT', details: [{ fieldViolations: [{ field: 'local_version' }] }] });
    expect(backendAsked).toBe(before);
  });

  it('answers NOT_FOUND for another registry, project or location, before authenticating', async () => {
    const before = backendAsked;
    const paths = [
      longPath('dev-a', 'other-registry'),
      `/v1/projects/other-project/locations/${LOCATION}/registries/${REGISTRY}/devices/dev-a/config`,
      `/v1/projects/${PROJECT}/locations/europe-west1/registries/${REGISTRY}/devices/dev-a/config`,
    ];
    for (const path of paths) {
      const answer = refused(await service.handle(get(path, await bearer())));
      expect(answer.statusCode).toBe(404);
      expect(answer.body.error.message).toMatch(/^registry projects\/.+ is not served here$/);
      expect(answer.deviceId).toBe('dev-a');
    }
    expect(backendAsked).toBe(before);
  });

  it('serves any registry when none is set, and a blank part matches any', async () => {
    const open = new ConfigDeliveryService({ registry: { project: PROJECT, location: ' ', registry: undefined }, backend: () => backend });
    const answer = await open.handle(get(`/v1/projects/${PROJECT}/locations/anywhere/registries/any-registry/devices/dev-a/config`, await bearer()));
    expect(answer.statusCode).toBe(200);
  });
});

describe('the raw form', () => {
  it('answers the bytes with their ETag and version', async () => {
    const answer = await service.handle(get(rawPath('dev-a'), deviceKey('dev-a')));
    expect(answer).toEqual({
      ok: true,
      statusCode: 200,
      headers: { etag: `"${sha256Hex(A_V2)}"`, 'x-config-version': '2', 'cache-control': 'private, no-cache', 'content-type': 'application/octet-stream' },
      body: A_V2,
      deviceId: 'dev-a',
      form: 'raw',
      version: 2,
    });
  });

  it('answers 304 without a body when If-None-Match names the current ETag, weak or strong', async () => {
    for (const tag of [`"${sha256Hex(A_V2)}"`, `W/"${sha256Hex(A_V1)}", W/"${sha256Hex(A_V2)}"`, '*']) {
      const answer = await service.handle(get(rawPath('dev-a'), { ...deviceKey('dev-a'), 'if-none-match': tag }));
      expect(answer).toMatchObject({ ok: true, statusCode: 304, body: undefined, version: 2 });
      expect(answer.headers).toEqual({ etag: `"${sha256Hex(A_V2)}"`, 'x-config-version': '2', 'cache-control': 'private, no-cache' });
    }
  });

  it('answers the bytes when If-None-Match names an older ETag', async () => {
    const answer = await service.handle(get(rawPath('dev-a'), { ...deviceKey('dev-a'), 'if-none-match': `"${sha256Hex(A_V1)}"` }));
    expect(answer.statusCode).toBe(200);
    expect(answer.body).toEqual(A_V2);
  });

  it('ignores local_version', async () => {
    const answer = await service.handle(get(rawPath('dev-b'), deviceKey('dev-b'), { local_version: 'not a number' }));
    expect(answer.statusCode).toBe(200);
    expect(answer.body).toEqual(Buffer.from('b'));
  });
});

describe('refusals', () => {
  it.each([
    ['IoT Core form', longPath],
    ['raw form', rawPath],
  ])('%s: NOT_FOUND when no config of the device was received', async (_, path) => {
    const answer = refused(await service.handle(get(path('dev-empty'), await bearer(devEmpty))));
    expect(answer.statusCode).toBe(404);
    expect(answer.body).toEqual({ error: { code: 404, status: 'NOT_FOUND', message: 'no configuration of device dev-empty has been received yet' } });
    expect(answer.headers).toEqual({ 'content-type': 'application/json', 'cache-control': 'no-store' });
  });

  it('NOT_FOUND for another path or method, with no device named', async () => {
    for (const request of [get('/devices/dev-a/configs'), { ...get(rawPath('dev-a')), method: 'POST' }]) {
      const answer = refused(await service.handle(request));
      expect(answer.statusCode).toBe(404);
      expect(answer.deviceId).toBeUndefined();
    }
  });

  it('400 for an invalid device ID, with no device named', async () => {
    const answer = refused(await service.handle(get(rawPath('goog-device'), await bearer())));
    expect(answer.statusCode).toBe(400);
    expect(answer.error).toMatchObject({ code: 'ERR_INVALID_DEVICE_ID' });
    expect(answer.deviceId).toBeUndefined();
  });

  it('401 without credentials, naming the schemes that can succeed', async () => {
    const answer = refused(await service.handle(get(rawPath('dev-a'))));
    expect(answer.statusCode).toBe(401);
    expect(answer.body.error.status).toBe('UNAUTHENTICATED');
    expect(answer.headers['www-authenticate']).toBe('Bearer realm="iotcore-relay", Device-Key realm="iotcore-relay"');
    expect(answer.error).toMatchObject({ code: 'ERR_AUTH_MISSING' });
  });

  it("403 for another device's token that names its device; 401 for another device's key", async () => {
    const forbidden = refused(await service.handle(get(longPath('dev-a'), await bearer(devB, { uid: 'dev-b' }))));
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.body.error).toEqual({ code: 403, status: 'PERMISSION_DENIED', message: "the token is device dev-b's; it may not act for device dev-a" });
    expect(forbidden.headers['www-authenticate']).toBeUndefined();
    expect(refused(await service.handle(get(rawPath('dev-a'), deviceKey('dev-b')))).statusCode).toBe(401);
  });

  it('500 with a fixed message when the store cannot be read; the cause stays in `error`', async () => {
    const missingTable = new ConfigStore({ tableName: 'no-such-table', client: db.client });
    const broken = new ConfigDeliveryService({ registry: {}, backend: () => ({ ...backend, store: missingTable }) });
    const answer = refused(await broken.handle(get(rawPath('dev-a'), deviceKey('dev-a'))));
    expect(answer.statusCode).toBe(500);
    expect(answer.body).toEqual({ error: { code: 500, status: 'INTERNAL', message: 'internal error' } });
    expect(answer.error).toBeInstanceOf(Error);
    expect(JSON.stringify(answer.body)).not.toContain('no-such-table');
  });
});

describe('configDeliveryServiceFromEnv', () => {
  /** The SDK's default client finds the local server through the process's environment. */
  const useLocalDynamoDb = (): void => {
    for (const [k, v] of Object.entries(db.env)) vi.stubEnv(k, v);
  };
  afterEach(() => vi.unstubAllEnvs());

  it('serves the registry of the environment, with the store it is given', async () => {
    const fromEnv = configDeliveryServiceFromEnv({ ...env }, { store });
    expect((await fromEnv.handle(get(longPath('dev-b'), deviceKey('dev-b')))).body).toEqual({ version: '1', binaryData: Buffer.from('b').toString('base64') });
    expect((await fromEnv.handle(get(longPath('dev-b', 'other-registry'), deviceKey('dev-b')))).statusCode).toBe(404);
  });

  it('builds its store from CONFIG_TABLE', async () => {
    useLocalDynamoDb();
    const fromEnv = configDeliveryServiceFromEnv({ ...env, ...db.env });
    expect((await fromEnv.handle(get(rawPath('dev-b'), deviceKey('dev-b')))).body).toEqual(Buffer.from('b'));
  });

  it('answers 500 naming every wrong setting at once, still refuses malformed requests as ever, and heals once the settings are fixed', async () => {
    useLocalDynamoDb();
    const broken: Record<string, string> = { IOTCORE_PROJECT: PROJECT };
    const fromEnv = configDeliveryServiceFromEnv(broken);

    const answer = refused(await fromEnv.handle(get(rawPath('dev-b'), deviceKey('dev-b'))));
    expect(answer.statusCode).toBe(500);
    expect(answer.body.error.message).toBe('internal error');
    expect(answer.error).toBeInstanceOf(RelayError);
    expect((answer.error as RelayError).message).toMatch(/^2 settings are wrong: .*no device authentication configured.*CONFIG_TABLE/);
    expect((await fromEnv.handle(get('/devices/dev-b/configs'))).statusCode).toBe(404);

    Object.assign(broken, { DEVICE_KEY_MASTER_FILE: env.DEVICE_KEY_MASTER_FILE, CONFIG_TABLE: db.tableName });
    expect((await fromEnv.handle(get(rawPath('dev-b'), deviceKey('dev-b')))).statusCode).toBe(200);
  });
});
