import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createAdminHandler, type CommandBridge } from '../../emulator/admin-api.js';
import { Registry, type DeviceConfig } from '../../emulator/registry.js';

const PROJECT = 'demo-project';
const LOCATION = 'us-central1';
const REGISTRY = 'demo-registry';
const REGISTRY_PATH = `/v1/projects/${PROJECT}/locations/${LOCATION}/registries/${REGISTRY}`;

// One P-256 key for the whole file: key generation is the slow part of device fixtures.
const PUBLIC_KEY = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();

/** Stands in for the MQTT side: records each command and answers as told. */
class RecordingBridge implements CommandBridge {
  readonly sent: { registryId: string; deviceId: string; subfolder: string | undefined; payload: Buffer }[] = [];
  connected = true;
  failWith: Error | undefined;
  sendCommand(registryId: string, deviceId: string, subfolder: string | undefined, payload: Buffer): boolean {
    if (this.failWith) throw this.failWith;
    if (!this.connected) return false;
    this.sent.push({ registryId, deviceId, subfolder, payload });
    return true;
  }
}

interface Reply {
  status: number;
  headers: Headers;
  /** Parsed JSON of many shapes, indexed freely by the assertions. */
  body: any;
}

let registry: Registry;
let bridge: RecordingBridge;
let server: Server;
let origin: string;

beforeEach(async () => {
  registry = new Registry(PROJECT, LOCATION);
  registry.createRegistry({ id: REGISTRY });
  bridge = new RecordingBridge();
  server = createServer(createAdminHandler(registry, bridge));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/**
 * Sends a request; a non-string body is sent as JSON. Paths starting with `/devices`, `:` or `%` are relative to the
 * test registry (`/devices/d`, `:bindDeviceToGateway`), any other is taken as it is.
 */
async function call(method: string, path: string, body?: unknown): Promise<Reply> {
  const url = /^(\/devices|:|%)/.test(path) ? `${origin}${REGISTRY_PATH}${path}` : `${origin}${path}`;
  const res = await fetch(url, {
    method,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) };
}

function expectError(reply: Reply, code: number, status: string, message?: RegExp): void {
  expect(reply.status).toBe(code);
  expect(reply.body).toEqual({ error: { code, status, message: expect.any(String) } });
  if (message) expect(reply.body.error.message).toMatch(message);
}

const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

function gateway(id = 'gw-1'): void {
  registry.createDevice(REGISTRY, {
    id,
    credentials: [{ publicKey: { format: 'ES256_PEM', key: PUBLIC_KEY } }],
    gatewayConfig: { gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' },
  });
}

function devices(...ids: string[]): void {
  for (const id of ids) registry.createDevice(REGISTRY, { id });
}

describe('registries', () => {
  it('lists and gets the registries of the emulator project and location', async () => {
    registry.createRegistry({ id: 'other-registry' });

    const list = await call('GET', `/v1/projects/${PROJECT}/locations/${LOCATION}/registries`);
    const one = await call('GET', REGISTRY_PATH);

    expect(list.status).toBe(200);
    expect(list.body.deviceRegistries.map((r: { id: string }) => r.id)).toEqual(['demo-registry', 'other-registry']);
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ id: REGISTRY, name: `projects/${PROJECT}/locations/${LOCATION}/registries/${REGISTRY}` });
    expect(one.body.mqttConfig).toEqual({ mqttEnabledState: 'MQTT_ENABLED' });
  });

  it('pages the registries', async () => {
    registry.createRegistry({ id: 'reg-b' });
    registry.createRegistry({ id: 'reg-c' });

    const first = await call('GET', `/v1/projects/${PROJECT}/locations/${LOCATION}/registries?pageSize=2`);
    const second = await call('GET', `/v1/projects/${PROJECT}/locations/${LOCATION}/registries?pageSize=2&pageToken=${first.body.nextPageToken}`);

    expect(first.body.deviceRegistries.map((r: { id: string }) => r.id)).toEqual(['demo-registry', 'reg-b']);
    expect(second.body.deviceRegistries.map((r: { id: string }) => r.id)).toEqual(['reg-c']);
    expect(second.body.nextPageToken).toBeUndefined();
  });

  it.each([
    ['another project', `/v1/projects/other-project/locations/${LOCATION}/registries/${REGISTRY}`],
    ['another location', `/v1/projects/${PROJECT}/locations/europe-west1/registries/${REGISTRY}`],
    ['an unknown registry', `/v1/projects/${PROJECT}/locations/${LOCATION}/registries/nope-registry`],
    ['a list in another project', `/v1/projects/other-project/locations/${LOCATION}/registries`],
    ['devices of another location', `/v1/projects/${PROJECT}/locations/asia-east1/registries/${REGISTRY}/devices`],
  ])('answers NOT_FOUND for %s', async (_, path) => {
    expectError(await call('GET', path), 404, 'NOT_FOUND', /not found/);
  });
});

describe('devices.create', () => {
  it('creates a device with config version 1 and a numeric ID', async () => {
    const reply = await call('POST', '/devices', {
      id: 'pump-0042',
      credentials: [{ publicKey: { format: 'ES256_PEM', key: PUBLIC_KEY } }],
      config: { binaryData: b64('{"rate":5}') },
      metadata: { site: 'north' },
    });

    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({
      id: 'pump-0042',
      name: `projects/${PROJECT}/locations/${LOCATION}/registries/${REGISTRY}/devices/pump-0042`,
      numId: expect.stringMatching(/^\d+$/),
      config: { version: '1', binaryData: b64('{"rate":5}') },
      gatewayConfig: { gatewayType: 'NON_GATEWAY' },
      metadata: { site: 'north' },
    });
    expect(reply.body.credentials[0].publicKey).toEqual({ format: 'ES256_PEM', key: PUBLIC_KEY });
    expect(registry.getDevice(REGISTRY, 'pump-0042').numId).toBe(reply.body.numId);
  });

  it('takes snake_case field names and URL-safe base64 as Google does, and stores standard base64', async () => {
    const bytes = Buffer.from([0xfb, 0xff, 0xbf]);

    const reply = await call('POST', '/devices', {
      id: 'gw-snake',
      gateway_config: { gateway_type: 'GATEWAY', gateway_auth_method: 'ASSOCIATION_ONLY' },
      config: { binary_data: bytes.toString('base64url') },
    });

    expect(reply.status).toBe(200);
    expect(reply.body.gatewayConfig).toEqual({ gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' });
    expect(reply.body.config.binaryData).toBe(bytes.toString('base64'));
  });

  it('answers 409 ALREADY_EXISTS for a duplicate ID', async () => {
    devices('pump-0042');
    expectError(await call('POST', '/devices', { id: 'pump-0042' }), 409, 'ALREADY_EXISTS', /pump-0042/);
  });

  it.each(['ab', '1pump', 'goog-pump', 'pump/1', 'pump#1', 'x'.repeat(256), ''])('refuses the device ID %j', async (id) => {
    expectError(await call('POST', '/devices', { id }), 400, 'INVALID_ARGUMENT', /id/);
    expect(registry.listDevices(REGISTRY)).toHaveLength(0);
  });

  it.each([
    ['no id', {}, /id is required/],
    ['a name', { id: 'pump-0042', name: 'projects/x/devices/pump-0042' }, /name must be empty/],
    ['an unknown field', { id: 'pump-0042', colour: 'red' }, /unknown field "colour"/],
    ['an unknown nested field', { id: 'pump-0042', gatewayConfig: { gatewayKind: 'GATEWAY' } }, /gatewayKind/],
    ['a non-boolean blocked', { id: 'pump-0042', blocked: 'yes' }, /blocked/],
    ['bad base64 config', { id: 'pump-0042', config: { binaryData: 'not base64!' } }, /base64/],
    ['base64 with bits past the last byte', { id: 'pump-0042', config: { binaryData: 'aGj=' } }, /base64/],
    ['an unknown key format', { id: 'pump-0042', credentials: [{ publicKey: { format: 'DSA_PEM', key: PUBLIC_KEY } }] }, /format/],
    ['credentials that are not a list', { id: 'pump-0042', credentials: { publicKey: {} } }, /credentials must be a list/],
    ['four credentials', { id: 'pump-0042', credentials: Array(4).fill({ publicKey: { format: 'ES256_PEM', key: PUBLIC_KEY } }) }, /at most 3/],
    ['an unknown gateway type', { id: 'pump-0042', gatewayConfig: { gatewayType: 'ROUTER' } }, /gatewayType/],
    ['an unknown log level', { id: 'pump-0042', logLevel: 'LOUD' }, /logLevel/],
    ['a bad metadata key', { id: 'pump-0042', metadata: { '1st': 'x' } }, /metadata key/],
    ['a metadata value over 32 KB', { id: 'pump-0042', metadata: { big: 'x'.repeat(32 * 1024 + 1) } }, /metadata.big/],
    ['a config over 64 KB', { id: 'pump-0042', config: { binaryData: b64(Buffer.alloc(64 * 1024 + 1)) } }, /larger than/],
    ['a body that is a list', [{ id: 'pump-0042' }], /must be an object/],
  ])('answers 400 INVALID_ARGUMENT for %s', async (_, body, message) => {
    expectError(await call('POST', '/devices', body), 400, 'INVALID_ARGUMENT', message);
    expect(registry.listDevices(REGISTRY)).toHaveLength(0);
  });
});

describe('devices.get, patch and delete', () => {
  it('gets a device by ID and by numeric ID', async () => {
    devices('pump-0042');
    const { numId } = registry.getDevice(REGISTRY, 'pump-0042');

    const byId = await call('GET', '/devices/pump-0042');
    const byNum = await call('GET', `/devices/${numId}`);

    expect(byId.status).toBe(200);
    expect(byId.body).toMatchObject({ id: 'pump-0042', numId, config: { version: '1' } });
    expect(byNum.body).toEqual(byId.body);
  });

  it('applies a field mask to get', async () => {
    gateway();

    const reply = await call('GET', '/devices/gw-1?fieldMask=gateway_config.gateway_type,blocked');

    expect(reply.body).toEqual({
      id: 'gw-1',
      name: registry.getDevice(REGISTRY, 'gw-1').name,
      numId: registry.getDevice(REGISTRY, 'gw-1').numId,
      gatewayConfig: { gatewayType: 'GATEWAY' },
      blocked: false,
    });
  });

  it('answers 404 NOT_FOUND for an unknown device or numeric ID', async () => {
    expectError(await call('GET', '/devices/pump-9999'), 404, 'NOT_FOUND', /pump-9999/);
    expectError(await call('GET', '/devices/123456789'), 404, 'NOT_FOUND');
    expectError(await call('DELETE', '/devices/pump-9999'), 404, 'NOT_FOUND');
    expectError(await call('PATCH', '/devices/pump-9999?updateMask=blocked', { blocked: true }), 404, 'NOT_FOUND');
  });

  it('patches only the fields in updateMask and tells the MQTT side about a block', async () => {
    devices('pump-0042');
    const blocked: string[] = [];
    registry.on('device-blocked', (_registryId: string, deviceId: string) => blocked.push(deviceId));

    const reply = await call('PATCH', '/devices/pump-0042?update_mask=blocked,metadata', {
      blocked: true,
      metadata: { site: 'south' },
      logLevel: 'DEBUG',
    });

    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ blocked: true, metadata: { site: 'south' } });
    expect(reply.body.logLevel).toBeUndefined();
    expect(blocked).toEqual(['pump-0042']);
  });

  it('patches the gateway auth method by numeric ID', async () => {
    gateway();
    const { numId } = registry.getDevice(REGISTRY, 'gw-1');

    const reply = await call('PATCH', `/devices/${numId}?updateMask=gatewayConfig.gatewayAuthMethod`, {
      gatewayConfig: { gatewayAuthMethod: 'DEVICE_AUTH_TOKEN_ONLY' },
    });

    expect(reply.body.gatewayConfig.gatewayAuthMethod).toBe('DEVICE_AUTH_TOKEN_ONLY');
  });

  it.each([
    ['no updateMask', '', { blocked: true }, /updateMask is required/],
    ['an immutable field', '?updateMask=config', { config: { binaryData: '' } }, /cannot be updated/],
    ['a field Device does not have', '?updateMask=colour', {}, /no field "colour"/],
    ['an unknown auth method', '?updateMask=gatewayConfig.gatewayAuthMethod', { gatewayConfig: { gatewayAuthMethod: 'TRUST_ME' } }, /gatewayAuthMethod/],
  ])('refuses a patch with %s', async (_, query, body, message) => {
    devices('pump-0042');
    expectError(await call('PATCH', `/devices/pump-0042${query}`, body), 400, 'INVALID_ARGUMENT', message);
    expect(registry.getDevice(REGISTRY, 'pump-0042').blocked).toBe(false);
  });

  it('deletes a device by numeric ID and tells the MQTT side', async () => {
    devices('pump-0042');
    const { numId } = registry.getDevice(REGISTRY, 'pump-0042');
    const deleted: string[] = [];
    registry.on('device-deleted', (_registryId: string, deviceId: string) => deleted.push(deviceId));

    const reply = await call('DELETE', `/devices/${numId}`);

    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({});
    expect(deleted).toEqual(['pump-0042']);
    expectError(await call('GET', '/devices/pump-0042'), 404, 'NOT_FOUND');
  });

  it('refuses to delete a gateway that still has bound devices', async () => {
    gateway();
    devices('pump-0042');
    registry.bind(REGISTRY, 'gw-1', 'pump-0042');

    expectError(await call('DELETE', '/devices/gw-1'), 400, 'FAILED_PRECONDITION', /bound/);
    expect(registry.findDevice(REGISTRY, 'gw-1')).toBeDefined();
  });
});

describe('devices.list', () => {
  const ids = (reply: Reply): string[] => reply.body.devices.map((d: { id: string }) => d.id);

  it('returns only id, name and numId unless a field mask asks for more', async () => {
    gateway();

    const plain = await call('GET', '/devices');
    const masked = await call('GET', '/devices?fieldMask=gatewayConfig,config.version');

    expect(plain.body).toEqual({ devices: [{ id: 'gw-1', name: expect.stringContaining('/devices/gw-1'), numId: expect.any(String) }] });
    expect(masked.body.devices[0]).toEqual({
      ...plain.body.devices[0],
      gatewayConfig: { gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' },
      config: { version: '1' },
    });
    expectError(await call('GET', '/devices?fieldMask=config.colour'), 400, 'INVALID_ARGUMENT', /config.colour/);
  });

  it('filters by deviceIds (repeated or comma-separated) and deviceNumIds', async () => {
    devices('pump-1', 'pump-2', 'pump-3', 'valve+4');
    const num3 = registry.getDevice(REGISTRY, 'pump-3').numId;

    const repeated = await call('GET', '/devices?deviceIds=pump-1&deviceIds=pump-2');
    const commas = await call('GET', '/devices?device_ids=pump-2,valve+4');
    const byNum = await call('GET', `/devices?deviceNumIds=${num3}`);
    const both = await call('GET', `/devices?deviceIds=pump-1&deviceNumIds=${num3}`);

    expect(ids(repeated)).toEqual(['pump-1', 'pump-2']);
    // A literal `+` in the query is part of the ID, not a space.
    expect(ids(commas)).toEqual(['pump-2', 'valve+4']);
    expect(ids(byNum)).toEqual(['pump-3']);
    expect(ids(both)).toEqual(['pump-1', 'pump-3']);
    expectError(await call('GET', '/devices?deviceNumIds=abc'), 400, 'INVALID_ARGUMENT', /deviceNumIds/);
  });

  it('filters by gateway type and by association in either direction', async () => {
    gateway('gw-1');
    gateway('gw-2');
    devices('pump-1', 'pump-2', 'pump-3');
    registry.bind(REGISTRY, 'gw-1', 'pump-1');
    registry.bind(REGISTRY, 'gw-1', 'pump-2');
    registry.bind(REGISTRY, 'gw-2', 'pump-2');
    const gw1Num = registry.getDevice(REGISTRY, 'gw-1').numId;

    const gateways = await call('GET', '/devices?gatewayListOptions.gatewayType=GATEWAY');
    const others = await call('GET', '/devices?gatewayListOptions.gatewayType=NON_GATEWAY');
    const boundToGw1 = await call('GET', `/devices?gatewayListOptions.associationsGatewayId=${gw1Num}`);
    const gatewaysOfPump2 = await call('GET', '/devices?gateway_list_options.associations_device_id=pump-2');

    expect(ids(gateways)).toEqual(['gw-1', 'gw-2']);
    expect(ids(others)).toEqual(['pump-1', 'pump-2', 'pump-3']);
    expect(ids(boundToGw1)).toEqual(['pump-1', 'pump-2']);
    expect(ids(gatewaysOfPump2)).toEqual(['gw-1', 'gw-2']);
  });

  it.each([
    ['two gateway options at once', '?gatewayListOptions.gatewayType=GATEWAY&gatewayListOptions.associationsDeviceId=pump-1', 400, 'INVALID_ARGUMENT'],
    ['an unknown gateway type', '?gatewayListOptions.gatewayType=ROUTER', 400, 'INVALID_ARGUMENT'],
    ['an unknown gateway', '?gatewayListOptions.associationsGatewayId=gw-404', 404, 'NOT_FOUND'],
    ['a negative pageSize', '?pageSize=-1', 400, 'INVALID_ARGUMENT'],
    ['a forged pageToken', '?pageToken=bm90LWEtdG9rZW4', 400, 'INVALID_ARGUMENT'],
    ['a page token of the wrong kind', `?pageToken=${Buffer.from('{"after":"pump-1"}').toString('base64url')}`, 400, 'INVALID_ARGUMENT'],
    ['a misspelt parameter', '?pagesize=10', 400, 'INVALID_ARGUMENT'],
  ])('refuses %s', async (_, query, code, status) => {
    devices('pump-1');
    expectError(await call('GET', `/devices${query}`), code, status);
  });

  it('pages in creation order, each device once, even when devices change between pages', async () => {
    devices(...Array.from({ length: 7 }, (_, i) => `pump-${i}`));

    const first = await call('GET', '/devices?pageSize=3');
    registry.deleteDevice(REGISTRY, 'pump-2'); // already served
    registry.deleteDevice(REGISTRY, 'pump-3'); // not served yet
    const second = await call('GET', `/devices?pageSize=3&pageToken=${first.body.nextPageToken}`);

    expect(ids(first)).toEqual(['pump-0', 'pump-1', 'pump-2']);
    expect(ids(second)).toEqual(['pump-4', 'pump-5', 'pump-6']);
    expect(second.body.nextPageToken).toBeUndefined();
  });

  it('serves at most 500 devices a page, whatever pageSize asks', async () => {
    devices(...Array.from({ length: 501 }, (_, i) => `pump-${String(i).padStart(3, '0')}`));

    const first = await call('GET', '/devices?pageSize=10000');
    const rest = await call('GET', `/devices?pageToken=${first.body.nextPageToken}`);

    expect(first.body.devices).toHaveLength(500);
    expect(ids(rest)).toEqual(['pump-500']);
    expect(rest.body.nextPageToken).toBeUndefined();
  });
});

describe('devices.modifyCloudToDeviceConfig and configVersions', () => {
  it('writes a new version, answers the DeviceConfig and emits `config` for the MQTT side', async () => {
    devices('pump-0042');
    const emitted: [string, string, DeviceConfig][] = [];
    registry.on('config', (registryId: string, deviceId: string, config: DeviceConfig) => emitted.push([registryId, deviceId, config]));

    const reply = await call('POST', '/devices/pump-0042:modifyCloudToDeviceConfig', { versionToUpdate: '1', binaryData: b64('{"rate":9}') });

    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({ version: '2', cloudUpdateTime: expect.any(String), binaryData: b64('{"rate":9}') });
    expect(emitted).toEqual([[REGISTRY, 'pump-0042', reply.body]]);
  });

  it('accepts a percent-encoded colon, a numeric ID, a JSON number version and no version at all', async () => {
    devices('pump-0042');
    const { numId } = registry.getDevice(REGISTRY, 'pump-0042');

    const encoded = await call('POST', `/devices/pump-0042%3AmodifyCloudToDeviceConfig`, { binaryData: b64('a') });
    const numeric = await call('POST', `/devices/${numId}%3amodifyCloudToDeviceConfig`, { versionToUpdate: 2, binaryData: b64('b') });
    const empty = await call('POST', '/devices/pump-0042:modifyCloudToDeviceConfig', { binaryData: '' });

    expect([encoded.body.version, numeric.body.version, empty.body.version]).toEqual(['2', '3', '4']);
    expect(registry.getDevice(REGISTRY, 'pump-0042').config.binaryData).toBe('');
  });

  it('answers FAILED_PRECONDITION when versionToUpdate is not the current version', async () => {
    devices('pump-0042');
    const emitted = vi.fn();
    registry.on('config', emitted);

    const reply = await call('POST', '/devices/pump-0042:modifyCloudToDeviceConfig', { versionToUpdate: '5', binaryData: b64('x') });

    expectError(reply, 400, 'FAILED_PRECONDITION', /versionToUpdate 5/);
    expect(emitted).not.toHaveBeenCalled();
    expect(registry.getDevice(REGISTRY, 'pump-0042').config.version).toBe('1');
  });

  it.each([
    ['a non-numeric version', { versionToUpdate: 'latest', binaryData: b64('x') }, /versionToUpdate/],
    ['a negative version', { versionToUpdate: '-1', binaryData: b64('x') }, /versionToUpdate/],
    ['a fractional version', { versionToUpdate: 1.5, binaryData: b64('x') }, /versionToUpdate/],
    ['bad base64', { binaryData: 'a*b' }, /base64/],
    ['no binaryData', { versionToUpdate: '0' }, /binaryData is required/],
    ['a config over 64 KB', { binaryData: b64(Buffer.alloc(64 * 1024 + 1)) }, /larger than/],
    ['an unknown field', { binaryData: '', version: '1' }, /unknown field "version"/],
  ])('answers 400 INVALID_ARGUMENT for %s', async (_, body, message) => {
    devices('pump-0042');
    expectError(await call('POST', '/devices/pump-0042:modifyCloudToDeviceConfig', body), 400, 'INVALID_ARGUMENT', message);
  });

  it('answers 404 for an unknown device', async () => {
    expectError(await call('POST', '/devices/pump-9999:modifyCloudToDeviceConfig', { binaryData: '' }), 404, 'NOT_FOUND');
  });

  it('keeps the last 10 versions, newest first, and numVersions limits them', async () => {
    devices('pump-0042');
    for (let i = 2; i <= 13; i++) {
      const reply = await call('POST', '/devices/pump-0042:modifyCloudToDeviceConfig', { binaryData: b64(`v${i}`) });
      expect(reply.body.version).toBe(String(i));
    }

    const all = await call('GET', '/devices/pump-0042/configVersions');
    const three = await call('GET', `/devices/${registry.getDevice(REGISTRY, 'pump-0042').numId}/configVersions?numVersions=3`);

    expect(all.body.deviceConfigs.map((c: DeviceConfig) => c.version)).toEqual(['13', '12', '11', '10', '9', '8', '7', '6', '5', '4']);
    expect(all.body.deviceConfigs[0].binaryData).toBe(b64('v13'));
    expect(three.body.deviceConfigs.map((c: DeviceConfig) => c.version)).toEqual(['13', '12', '11']);
    expectError(await call('GET', '/devices/pump-9999/configVersions'), 404, 'NOT_FOUND');
  });
});

describe('devices.states', () => {
  it('lists reported states newest first, numStates limits them', async () => {
    devices('pump-0042');
    for (const s of ['one', 'two', 'three']) registry.recordState(REGISTRY, 'pump-0042', Buffer.from(s));

    const all = await call('GET', '/devices/pump-0042/states');
    const two = await call('GET', '/devices/pump-0042/states?numStates=2');

    expect(all.body.deviceStates.map((s: { binaryData: string }) => Buffer.from(s.binaryData, 'base64').toString())).toEqual(['three', 'two', 'one']);
    expect(all.body.deviceStates[0]).toEqual({ updateTime: expect.any(String), binaryData: b64('three') });
    expect(two.body.deviceStates).toHaveLength(2);
    expectError(await call('GET', '/devices/pump-0042/states?numStates=many'), 400, 'INVALID_ARGUMENT', /numStates/);
    expectError(await call('GET', '/devices/pump-9999/states'), 404, 'NOT_FOUND');
  });
});

describe('devices.sendCommandToDevice', () => {
  it('hands the command to the bridge with the device ID the numeric ID resolves to', async () => {
    devices('pump-0042');
    const { numId } = registry.getDevice(REGISTRY, 'pump-0042');

    const withSub = await call('POST', `/devices/${numId}:sendCommandToDevice`, { binaryData: b64('open'), subfolder: 'valves/3' });
    const bare = await call('POST', '/devices/pump-0042%3AsendCommandToDevice', { binaryData: b64('close'), subfolder: '' });

    expect(withSub).toMatchObject({ status: 200, body: {} });
    expect(bare).toMatchObject({ status: 200, body: {} });
    expect(bridge.sent).toEqual([
      { registryId: REGISTRY, deviceId: 'pump-0042', subfolder: 'valves/3', payload: Buffer.from('open') },
      { registryId: REGISTRY, deviceId: 'pump-0042', subfolder: undefined, payload: Buffer.from('close') },
    ]);
  });

  it('answers FAILED_PRECONDITION when the device is not connected and subscribed', async () => {
    devices('pump-0042');
    bridge.connected = false;

    expectError(await call('POST', '/devices/pump-0042:sendCommandToDevice', { binaryData: b64('open') }), 400, 'FAILED_PRECONDITION', /not connected\/subscribed/);
  });

  it('accepts a command of exactly 256 KB', async () => {
    devices('pump-0042');
    const reply = await call('POST', '/devices/pump-0042:sendCommandToDevice', { binaryData: b64(Buffer.alloc(256 * 1024)) });
    expect(reply.status).toBe(200);
    expect(bridge.sent[0]?.payload.byteLength).toBe(256 * 1024);
  });

  it.each([
    ['a + in the subfolder', { binaryData: b64('x'), subfolder: 'a/+' }, /subfolder/],
    ['a # in the subfolder', { binaryData: b64('x'), subfolder: '#' }, /subfolder/],
    ['a NUL in the subfolder', { binaryData: b64('x'), subfolder: 'a\u0000b' }, /subfolder/],
    ['a 257-character subfolder', { binaryData: b64('x'), subfolder: 'a'.repeat(257) }, /subfolder/],
    ['a non-string subfolder', { binaryData: b64('x'), subfolder: 7 }, /subfolder/],
    ['a payload over 256 KB', { binaryData: b64(Buffer.alloc(256 * 1024 + 1)) }, /larger than/],
    ['bad base64', { binaryData: 'op=n' }, /base64/],
    ['no binaryData', { subfolder: 'x' }, /binaryData is required/],
  ])('refuses %s without calling the bridge', async (_, body, message) => {
    devices('pump-0042');
    expectError(await call('POST', '/devices/pump-0042:sendCommandToDevice', body), 400, 'INVALID_ARGUMENT', message);
    expect(bridge.sent).toEqual([]);
  });

  it('answers 404 for an unknown device without calling the bridge', async () => {
    expectError(await call('POST', '/devices/pump-9999:sendCommandToDevice', { binaryData: b64('x') }), 404, 'NOT_FOUND');
    expect(bridge.sent).toEqual([]);
  });
});

describe('bindDeviceToGateway and unbindDeviceFromGateway', () => {
  it('binds and unbinds, by ID or numeric ID, with a plain or encoded colon', async () => {
    gateway();
    devices('pump-0042');
    const gwNum = registry.getDevice(REGISTRY, 'gw-1').numId;

    const bind = await call('POST', ':bindDeviceToGateway', { gatewayId: gwNum, deviceId: 'pump-0042' });
    const boundAfterBind = registry.isBound(REGISTRY, 'gw-1', 'pump-0042');
    const unbind = await call('POST', '%3AunbindDeviceFromGateway', { gateway_id: 'gw-1', device_id: 'pump-0042' });

    expect(bind).toMatchObject({ status: 200, body: {} });
    expect(boundAfterBind).toBe(true);
    expect(unbind).toMatchObject({ status: 200, body: {} });
    expect(registry.isBound(REGISTRY, 'gw-1', 'pump-0042')).toBe(false);
  });

  it.each([
    ['an unknown device', ':bindDeviceToGateway', { gatewayId: 'gw-1', deviceId: 'pump-9999' }, 404, 'NOT_FOUND'],
    ['an unknown gateway', ':bindDeviceToGateway', { gatewayId: 'gw-9', deviceId: 'pump-0042' }, 404, 'NOT_FOUND'],
    ['a non-gateway as gateway', ':bindDeviceToGateway', { gatewayId: 'pump-0042', deviceId: 'pump-0042' }, 400, 'INVALID_ARGUMENT'],
    ['a missing deviceId', ':bindDeviceToGateway', { gatewayId: 'gw-1' }, 400, 'INVALID_ARGUMENT'],
    ['a binding that does not exist', ':unbindDeviceFromGateway', { gatewayId: 'gw-1', deviceId: 'pump-0042' }, 404, 'NOT_FOUND'],
  ])('refuses %s', async (_, verb, body, code, status) => {
    gateway();
    devices('pump-0042');
    expectError(await call('POST', verb, body), code, status);
    expect(registry.isBound(REGISTRY, 'gw-1', 'pump-0042')).toBe(false);
  });
});

describe('emulator routes', () => {
  it('serves the recorded telemetry, filtered by device, gateway and messageId', async () => {
    gateway();
    devices('pump-1', 'pump-2');
    const first = registry.recordEvent(REGISTRY, 'pump-1', undefined, Buffer.from('t=1'), 'gw-1')!;
    registry.recordEvent(REGISTRY, 'pump-2', 'alarms/high', Buffer.from('t=2'), 'gw-1');
    registry.recordEvent(REGISTRY, 'pump-1', undefined, Buffer.from('t=3'));

    const all = await call('GET', '/emulator/events');
    const pump1 = await call('GET', '/emulator/events?deviceId=pump-1');
    const viaGateway = await call('GET', `/emulator/events?gatewayId=gw-1&since=${first.messageId}`);

    expect(all.body.events).toHaveLength(3);
    expect(all.body.events[1]).toMatchObject({
      data: b64('t=2'),
      attributes: { deviceId: 'pump-2', subFolder: 'alarms/high', deviceRegistryId: REGISTRY, projectId: PROJECT, gatewayId: 'gw-1' },
    });
    expect(pump1.body.events.map((e: { data: string }) => e.data)).toEqual([b64('t=1'), b64('t=3')]);
    expect(viaGateway.body.events.map((e: { data: string }) => e.data)).toEqual([b64('t=2')]);
    expectError(await call('GET', '/emulator/events?since=yesterday'), 400, 'INVALID_ARGUMENT', /since/);
  });

  it('serves what was sent on errors topics, filtered by gateway', async () => {
    const record = { time: new Date().toISOString(), gatewayId: 'gw-1', delivered: true, payload: { error_type: 'GATEWAY_DEVICE_NOT_FOUND', device_id: 'pump-1' } };
    registry.recordError(record);
    registry.recordError({ ...record, gatewayId: 'gw-2' });

    const all = await call('GET', '/emulator/errors');
    const gw1 = await call('GET', '/emulator/errors?gatewayId=gw-1');

    expect(all.body.errors).toHaveLength(2);
    expect(gw1.body.errors).toEqual([record]);
  });

  it('answers health with the project, location and registries', async () => {
    const reply = await call('GET', '/emulator/health');
    expect(reply).toMatchObject({ status: 200, body: { status: 'ok', project: PROJECT, location: LOCATION, registries: [REGISTRY] } });
    expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
  });
});

describe('HTTP edges', () => {
  it.each([
    ['an unknown path', 'GET', '/v2/projects'],
    ['an unknown collection', 'GET', '/devices/pump-0042/telemetry'],
    ['an unknown custom method', 'POST', '/devices/pump-0042:reboot'],
    ['a trailing slash', 'GET', '/devices/'],
    ['the root', 'GET', '/'],
  ])('answers 404 NOT_FOUND for %s', async (_, method, path) => {
    devices('pump-0042');
    expectError(await call(method, path), 404, 'NOT_FOUND');
  });

  it('answers 405 with the envelope and an Allow header for a wrong method', async () => {
    devices('pump-0042');

    const put = await call('PUT', '/devices/pump-0042', { id: 'pump-0042' });
    const get = await call('GET', '/devices/pump-0042:sendCommandToDevice');

    expectError(put, 405, 'UNIMPLEMENTED', /PUT/);
    expect(put.headers.get('allow')).toBe('GET, PATCH, DELETE');
    expectError(get, 405, 'UNIMPLEMENTED');
    expect(get.headers.get('allow')).toBe('POST');
  });

  it('answers 400 for malformed JSON, without echoing a stack', async () => {
    const reply = await call('POST', '/devices', '{"id": "pump-0042",');
    expectError(reply, 400, 'INVALID_ARGUMENT', /not valid JSON/);
    expect(JSON.stringify(reply.body)).not.toMatch(/\bat .*\.(ts|js):\d+/);
  });

  it('answers 413 for a body over 1 MiB, declared or streamed, and keeps serving', async () => {
    const declared = await call('POST', '/devices', JSON.stringify({ id: 'pump-0042', metadata: { a: 'x'.repeat(1024 * 1024) } }));
    const chunk = new Uint8Array(64 * 1024).fill(0x20);
    const streamed = await fetch(`${origin}${REGISTRY_PATH}/devices`, {
      method: 'POST',
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < 17; i++) controller.enqueue(chunk);
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);

    expectError(declared, 413, 'INVALID_ARGUMENT', /1048576/);
    expect(streamed.status).toBe(413);
    expect(await streamed.json()).toMatchObject({ error: { code: 413 } });
    expect(registry.listDevices(REGISTRY)).toHaveLength(0);
    expect((await call('GET', '/emulator/health')).status).toBe(200);
  });

  it('answers 400 for broken percent-encoding in the path or the query', async () => {
    expectError(await call('GET', '/devices/pump%zz'), 400, 'INVALID_ARGUMENT', /percent-encoding/);
    expectError(await call('GET', '/devices?deviceIds=%E0%A4%A'), 400, 'INVALID_ARGUMENT', /percent-encoding/);
  });

  it('turns an exception into a 500 INTERNAL envelope, logs the cause for the operator, and stays up', async () => {
    devices('pump-0042');
    bridge.failWith = new Error('bridge exploded');
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);

    const reply = await call('POST', '/devices/pump-0042:sendCommandToDevice', { binaryData: b64('x') });
    const logged = stderr.mock.calls.map(([text]) => String(text)).join('');
    stderr.mockRestore();

    expect(reply).toMatchObject({ status: 500, body: { error: { code: 500, status: 'INTERNAL', message: 'internal error' } } });
    expect(JSON.stringify(reply.body)).not.toContain('bridge exploded');
    expect(logged).toContain('bridge exploded');
    expect((await call('GET', '/devices/pump-0042')).status).toBe(200);
  });

  it('answers every request with a JSON envelope or a result, never a crash, whatever the method, path and body', async () => {
    devices('pump-0042');
    const segment = fc.oneof(
      fc.constantFrom('v1', 'projects', PROJECT, 'locations', LOCATION, 'registries', REGISTRY, 'devices', 'pump-0042', 'states', 'configVersions', '%3A', ':sendCommandToDevice', '%', '%00', '..', ''),
      fc.string({ maxLength: 12 }).map(encodeURIComponent),
    );
    const request = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE', 'PUT'),
      path: fc.array(segment, { minLength: 1, maxLength: 10 }).map((s) => `/${s.join('/')}`),
      query: fc.constantFrom('', '?pageSize=x', '?fieldMask=__proto__', '?updateMask=blocked', '?numStates=1', '?a=%'),
      body: fc.oneof(fc.constant(undefined), fc.string({ maxLength: 40 }), fc.json({ maxDepth: 3 }), fc.constant('{"__proto__":{"x":1},"id":"pump-1"}')),
    });

    await fc.assert(
      fc.asyncProperty(request, async ({ method, path, query, body }) => {
        const res = await fetch(`${origin}${path}${query}`, { method, ...(body === undefined || method === 'GET' ? {} : { body }) });
        const parsed: unknown = JSON.parse(await res.text());
        if (res.status >= 400) {
          expect(parsed).toEqual({ error: { code: res.status, message: expect.any(String), status: expect.any(String) } });
          expect(res.status).toBeLessThan(500);
        } else {
          expect(res.status).toBe(200);
        }
      }),
      { numRuns: 300 },
    );
    expect((await call('GET', '/emulator/health')).status).toBe(200);
  });
});
