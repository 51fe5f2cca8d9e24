/**
 * ClearBlade's REST form of the device manager, over real HTTP against a started emulator: the credentials
 * exchange and its tokens, devices created, read, listed page by page and deleted, bindings, the binding limits,
 * the variants where ClearBlade's behaviour is unconfirmed, the optional quotas, and malformed requests.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator, EmulatorOptions, RegistryCredentials, ServiceAccount } from '../../emulator/index.js';
import type { RegistryDocument } from '../../emulator/registry.js';

const PROJECT = 'cb-project';
const LOCATION = 'us-central1';
const REGISTRY = 'cb-registry';
const REGISTRY_NAME = `projects/${PROJECT}/locations/${LOCATION}/registries/${REGISTRY}`;

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed JSON of many shapes, indexed freely by the assertions; undefined for an empty body. */
  body: any;
}

/** One emulator per test, with its service account and the registry's credentials already exchanged. */
interface Setup {
  emulator: Emulator;
  account: ServiceAccount;
  creds: RegistryCredentials;
  /** Calls a regional route (`cloudiot_devices?...`, `cloudiot?...`) with the registry's token unless told otherwise. */
  call(method: string, path: string, body?: unknown, token?: string | null): Promise<Reply>;
}

const started: Emulator[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((e) => e.close()));
});

function document(extra: RegistryDocument['registries'] = []): RegistryDocument {
  return { project: PROJECT, location: LOCATION, registries: [{ id: REGISTRY }, ...extra] };
}

async function request(method: string, url: string, body?: unknown, token?: string | null): Promise<Reply> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined && token !== null) headers['ClearBlade-UserToken'] = token;
  const res = await fetch(url, {
    method,
    headers,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text === '' ? undefined : JSON.parse(text) };
}

function exchange(account: ServiceAccount, body: unknown = { project: PROJECT, region: LOCATION, registry: REGISTRY }, token: string | null = account.token): Promise<Reply> {
  return request('POST', `${account.url}/api/v/1/code/${account.systemKey}/getRegistryCredentials`, body, token);
}

async function setup(options: EmulatorOptions = {}): Promise<Setup> {
  const emulator = await startEmulator({ tls: false, registry: document(), ...options });
  started.push(emulator);
  const account = emulator.serviceAccount();
  const reply = await exchange(account);
  expect(reply.status).toBe(200);
  const creds = reply.body as RegistryCredentials;
  const base = `${creds.url}/api/v/4/webhook/execute/${creds.systemKey}/`;
  return {
    emulator,
    account,
    creds,
    call: (method, path, body, token) => request(method, base + path, body, token === undefined ? creds.serviceAccountToken : token),
  };
}

function expectError(reply: Reply, code: number, status: string, message?: RegExp): void {
  expect(reply.status).toBe(code);
  expect(reply.body).toEqual({ error: { code, status, message: expect.any(String) } });
  if (message) expect(reply.body.error.message).toMatch(message);
}

const gatewayBody = (id: string): unknown => ({ id, gatewayConfig: { gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' } });

/** Runs `work` over `items` with at most `concurrency` in flight. */
async function pool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

async function create(s: Setup, body: unknown): Promise<any> {
  const reply = await s.call('POST', 'cloudiot_devices', body);
  expect(reply.status, reply.text).toBe(200);
  return reply.body;
}

async function bind(s: Setup, gatewayId: string, deviceId: string): Promise<Reply> {
  return s.call('POST', `cloudiot?method=bindDeviceToGateway&parent=${REGISTRY_NAME}`, { gatewayId, deviceId });
}

/** Every page of a list, following nextPageToken; fails on a page that is not 200. */
async function walk(s: Setup, query: string, between?: (served: readonly string[]) => void): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const reply = await s.call('GET', `cloudiot_devices?${query}${token === undefined ? '' : `&pageToken=${token}`}`);
    expect(reply.status, reply.text).toBe(200);
    ids.push(...(reply.body.devices as { id: string }[]).map((d) => d.id));
    token = reply.body.nextPageToken;
    pages += 1;
    if (token !== undefined) between?.(ids);
  } while (token !== undefined);
  return { ids, pages };
}

describe('credentials', () => {
  it('the service account points at the admin API and its token buys the registry credentials', async () => {
    const s = await setup();
    expect(s.account).toEqual({ systemKey: expect.stringMatching(/^[0-9a-f]{30}$/), token: expect.any(String), url: s.emulator.adminUrl, project: PROJECT });
    expect(s.creds).toEqual({ systemKey: expect.stringMatching(/^[0-9a-f]{30}$/), serviceAccountToken: expect.any(String), url: s.emulator.adminUrl });
    expect(s.creds.systemKey).not.toBe(s.account.systemKey);
    expect(s.creds.serviceAccountToken).not.toBe(s.account.token);
    // Asked again, the same credentials.
    expect((await exchange(s.account)).body).toEqual(s.creds);
  });

  it('each registry has its own credentials, and one registry token opens no other registry', async () => {
    const s = await setup({ registry: document([{ id: 'other-registry' }]) });
    const other = (await exchange(s.account, { project: PROJECT, region: LOCATION, registry: 'other-registry' })).body as RegistryCredentials;
    expect(other.systemKey).not.toBe(s.creds.systemKey);
    const wrong = await request('GET', `${other.url}/api/v/4/webhook/execute/${other.systemKey}/cloudiot_devices`, undefined, s.creds.serviceAccountToken);
    expectError(wrong, 401, 'UNAUTHENTICATED', /serviceAccountToken/);
    const right = await request('GET', `${other.url}/api/v/4/webhook/execute/${other.systemKey}/cloudiot_devices`, undefined, other.serviceAccountToken);
    expect(right.status).toBe(200);
    expect(right.body).toEqual({ devices: [] });
  });

  it('refuses a missing or wrong project token with 401', async () => {
    const s = await setup();
    expectError(await exchange(s.account, undefined, null), 401, 'UNAUTHENTICATED', /missing ClearBlade-UserToken/);
    expectError(await exchange(s.account, undefined, 'not-the-token'), 401, 'UNAUTHENTICATED', /service account's token/);
    // The registry's token is not the project's.
    expectError(await exchange(s.account, undefined, s.creds.serviceAccountToken), 401, 'UNAUTHENTICATED');
  });

  it('answers a specific error for a wrong system key, method, project, region, registry or body', async () => {
    const s = await setup();
    const url = `${s.account.url}/api/v/1/code/${s.creds.systemKey}/getRegistryCredentials`;
    expectError(await request('POST', url, {}, s.account.token), 404, 'NOT_FOUND', /systemKey of the project's service account/);
    const get = await request('GET', `${s.account.url}/api/v/1/code/${s.account.systemKey}/getRegistryCredentials`, undefined, s.account.token);
    expectError(get, 405, 'UNIMPLEMENTED');
    expectError(await exchange(s.account, { project: 'someone-else', region: LOCATION, registry: REGISTRY }), 403, 'PERMISSION_DENIED', /cb-project/);
    expectError(await exchange(s.account, { project: PROJECT, region: 'europe-west1', registry: REGISTRY }), 404, 'NOT_FOUND', /europe-west1/);
    expectError(await exchange(s.account, { project: PROJECT, region: LOCATION, registry: 'no-such-registry' }), 404, 'NOT_FOUND', /no-such-registry/);
    expectError(await exchange(s.account, { project: PROJECT, region: LOCATION }), 400, 'INVALID_ARGUMENT', /request\.registry is required/);
    expectError(await exchange(s.account, '{"project": '), 400, 'INVALID_ARGUMENT', /not valid JSON/);
    expectError(await exchange(s.account, { project: PROJECT, region: LOCATION, registry: REGISTRY, regsitry: 'x' }), 400, 'INVALID_ARGUMENT', /unknown field "regsitry"/);
  });

  it('regional routes refuse a missing or wrong token with 401, and the wrong system key with 404', async () => {
    const s = await setup();
    expectError(await s.call('GET', 'cloudiot_devices', undefined, null), 401, 'UNAUTHENTICATED', /missing ClearBlade-UserToken/);
    expectError(await s.call('GET', 'cloudiot_devices', undefined, 'wrong'), 401, 'UNAUTHENTICATED', /serviceAccountToken/);
    expectError(await s.call('POST', 'cloudiot_devices', { id: 'dev-1' }, s.account.token), 401, 'UNAUTHENTICATED');
    // Nothing was created by the refused calls.
    expect(s.emulator.registry.findDevice(REGISTRY, 'dev-1')).toBeUndefined();
    const projectKey = await request('GET', `${s.account.url}/api/v/4/webhook/execute/${s.account.systemKey}/cloudiot_devices`, undefined, s.account.token);
    expectError(projectKey, 404, 'NOT_FOUND', /project service account's systemKey/);
    const unknown = await request('GET', `${s.account.url}/api/v/4/webhook/execute/0123456789abcdef0123456789abcd/cloudiot_devices`, undefined, s.creds.serviceAccountToken);
    expectError(unknown, 404, 'NOT_FOUND', /getRegistryCredentials/);
  });

  it('has no service account without an admin API', async () => {
    const emulator = await startEmulator({ tls: false, registry: document(), adminPort: null });
    started.push(emulator);
    expect(() => emulator.serviceAccount()).toThrow(/admin API is not served/);
  });
});

describe('devices', () => {
  it('creates, gets by ID, numId and full name, and deletes', async () => {
    const s = await setup();
    const gw = await create(s, gatewayBody('gw-1'));
    expect(gw).toMatchObject({ id: 'gw-1', gatewayConfig: { gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' }, config: { version: '1' } });
    // ClearBlade answers names that end in the numId.
    expect(gw.name).toBe(`${REGISTRY_NAME}/devices/${gw.numId}`);
    const dev = await create(s, { id: 'dev-1', metadata: { site: 'north' } });
    for (const name of ['dev-1', dev.numId, `${REGISTRY_NAME}/devices/dev-1`, `${REGISTRY_NAME}/devices/${dev.numId}`]) {
      const got = await s.call('GET', `cloudiot_devices?name=${encodeURIComponent(name)}`);
      expect(got.status).toBe(200);
      expect(got.body).toEqual(dev);
    }
    const deleted = await s.call('DELETE', 'cloudiot_devices?name=dev-1');
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe('');
    expectError(await s.call('GET', 'cloudiot_devices?name=dev-1'), 404, 'NOT_FOUND');
    expectError(await s.call('DELETE', 'cloudiot_devices?name=dev-1'), 404, 'NOT_FOUND');
  });

  it('creates under a parent naming its own registry, in either form, and refuses another', async () => {
    const s = await setup({ registry: document([{ id: 'other-registry' }]) });
    expect((await s.call('POST', `cloudiot_devices?parent=${REGISTRY_NAME}`, { id: 'dev-1' })).status).toBe(200);
    expect((await s.call('POST', `cloudiot_devices?parent=${REGISTRY}`, { id: 'dev-2' })).status).toBe(200);
    expectError(await s.call('POST', 'cloudiot_devices?parent=other-registry', { id: 'dev-3' }), 404, 'NOT_FOUND', /cb-registry/);
    expectError(await s.call('POST', 'cloudiot_devices?parent=projects/x/locations', { id: 'dev-3' }), 400, 'INVALID_ARGUMENT', /parent must be/);
    expect(s.emulator.registry.findDevice('other-registry', 'dev-3')).toBeUndefined();
  });

  it('refuses a taken ID with 409 and a full name from another registry with 404', async () => {
    const s = await setup();
    await create(s, { id: 'dev-1' });
    expectError(await s.call('POST', 'cloudiot_devices', { id: 'dev-1' }), 409, 'ALREADY_EXISTS', /dev-1/);
    expectError(await s.call('GET', `cloudiot_devices?name=projects/${PROJECT}/locations/${LOCATION}/registries/elsewhere/devices/dev-1`), 404, 'NOT_FOUND');
  });

  it('get returns every field, or id, name, numId and the masked ones; state data is text unless base64Encode=true', async () => {
    const s = await setup();
    await create(s, { id: 'dev-1', metadata: { site: 'north' } });
    s.emulator.registry.recordState(REGISTRY, 'dev-1', Buffer.from('{"on":true}'));
    const whole = await s.call('GET', 'cloudiot_devices?name=dev-1');
    expect(whole.body).toMatchObject({ id: 'dev-1', metadata: { site: 'north' }, credentials: [], blocked: false, state: { binaryData: '{"on":true}' } });
    const masked = await s.call('GET', 'cloudiot_devices?name=dev-1&fieldMask=metadata,state&base64Encode=true');
    expect(masked.body).toEqual({
      id: 'dev-1',
      name: expect.stringMatching(/\/devices\/\d+$/),
      numId: whole.body.numId,
      metadata: { site: 'north' },
      state: { updateTime: expect.any(String), binaryData: Buffer.from('{"on":true}').toString('base64') },
    });
  });

  it('accepts the fields ClearBlade\'s own example sends, and ignores the name a client library sends', async () => {
    const s = await setup();
    const dev = await create(s, { id: 'test-device-1', name: 'test-device-1', credentials: [], config: {}, metadata: {}, logLevel: 'LOG_LEVEL_UNSPECIFIED' });
    expect(dev.name).toBe(`${REGISTRY_NAME}/devices/${dev.numId}`);
  });
});

describe('lists', () => {
  it('pages through a few thousand devices: every device once, in numId order, no token on the last page', async () => {
    const s = await setup();
    const ids = Array.from({ length: 3_000 }, (_, i) => `dev-${String(i).padStart(5, '0')}`);
    const numIds = new Map<string, string>();
    // The first 1,100 over HTTP, 16 in flight; the rest straight into the registry, to keep the test quick.
    await pool(ids.slice(0, 1_100), 16, async (id) => {
      numIds.set(id, (await create(s, { id })).numId as string);
    });
    for (const id of ids.slice(1_100)) numIds.set(id, s.emulator.registry.createDevice(REGISTRY, { id }).numId);
    const { ids: listed, pages } = await walk(s, 'pageSize=500');
    expect(pages).toBe(6);
    expect(new Set(listed).size).toBe(listed.length);
    expect([...listed].sort()).toEqual(ids);
    const order = listed.map((id) => BigInt(numIds.get(id)!));
    expect(order).toEqual([...order].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    // Without pageSize a page is 500; the devices carry id, name and numId only.
    const first = await s.call('GET', `cloudiot_devices?parent=${REGISTRY_NAME}`);
    expect(first.body.devices).toHaveLength(500);
    expect(Object.keys(first.body.devices[0]).sort()).toEqual(['id', 'name', 'numId']);
  });

  it('stays exact when devices are created and deleted between pages', async () => {
    const s = await setup();
    const registry = s.emulator.registry;
    for (let i = 0; i < 300; i++) registry.createDevice(REGISTRY, { id: `dev-${i}` });
    const unseenDeleted = new Set<string>();
    const added: string[] = [];
    const { ids } = await walk(s, 'pageSize=40', (served) => {
      // Delete the last device served and a device not served yet, and create two (numIds put them at the end).
      registry.deleteDevice(REGISTRY, served[served.length - 1]!);
      const unseen = Array.from({ length: 300 }, (_, i) => `dev-${i}`).find(
        (id, i) => i % 7 === 3 && !served.includes(id) && !unseenDeleted.has(id),
      );
      if (unseen !== undefined) {
        registry.deleteDevice(REGISTRY, unseen);
        unseenDeleted.add(unseen);
      }
      for (const id of [`new-${added.length}`, `new-${added.length + 1}`]) {
        registry.createDevice(REGISTRY, { id });
        added.push(id);
      }
    });
    expect(unseenDeleted.size).toBeGreaterThan(3);
    expect(new Set(ids).size).toBe(ids.length);
    // Every device that existed from the first page to the last is listed once; the deleted unseen ones are not.
    const expected = [...Array.from({ length: 300 }, (_, i) => `dev-${i}`).filter((id) => !unseenDeleted.has(id)), ...added];
    expect([...ids].sort()).toEqual(expected.sort());
  });

  it('filters by gateway type, by the devices bound to a gateway, and by the gateways of a device', async () => {
    const s = await setup();
    for (const g of ['gw-1', 'gw-2']) await create(s, gatewayBody(g));
    for (let i = 0; i < 30; i++) await create(s, { id: `dev-${i}` });
    await create(s, { id: 'plain', gatewayConfig: { gatewayType: 'NON_GATEWAY' } });
    for (let i = 0; i < 30; i += 2) expect((await bind(s, 'gw-1', `dev-${i}`)).status).toBe(200);
    expect((await bind(s, 'gw-2', 'dev-4')).status).toBe(200);

    expect((await walk(s, 'gatewayListOptions.gatewayType=GATEWAY&pageSize=1')).ids).toEqual(['gw-1', 'gw-2']);
    expect((await walk(s, 'gatewayListOptions.gatewayType=NON_GATEWAY&pageSize=7')).ids).toHaveLength(31);
    expect((await walk(s, 'gatewayListOptions.gatewayType=GATEWAY_TYPE_UNSPECIFIED')).ids).toHaveLength(33);
    const bound = await walk(s, 'gatewayListOptions.associationsGatewayId=gw-1&pageSize=4');
    expect(bound.pages).toBe(4);
    expect(bound.ids).toEqual(Array.from({ length: 15 }, (_, i) => `dev-${i * 2}`));
    // By numId too, and snake_case as proto3 JSON allows.
    const gw2 = (await s.call('GET', 'cloudiot_devices?name=gw-2')).body.numId as string;
    expect((await walk(s, `gateway_list_options.associations_gateway_id=${gw2}`)).ids).toEqual(['dev-4']);
    expect((await walk(s, 'gatewayListOptions.associationsDeviceId=dev-4&fieldMask=gatewayConfig.gatewayType')).ids).toEqual(['gw-1', 'gw-2']);
    expect((await walk(s, 'gatewayListOptions.associationsDeviceId=dev-1')).ids).toEqual([]);
    expectError(await s.call('GET', 'cloudiot_devices?gatewayListOptions.associationsGatewayId=no-such-gw'), 404, 'NOT_FOUND');
    expectError(
      await s.call('GET', 'cloudiot_devices?gatewayListOptions.gatewayType=GATEWAY&gatewayListOptions.associationsDeviceId=dev-4'),
      400,
      'INVALID_ARGUMENT',
      /only one of/,
    );
    expectError(await s.call('GET', 'cloudiot_devices?gatewayListOptions.gatewayType=ROUTER'), 400, 'INVALID_ARGUMENT', /gatewayType/);
  });

  it('lists the devices deviceIds and deviceNumIds name, with the gateway filter, page by page', async () => {
    const s = await setup();
    await create(s, gatewayBody('gw-1'));
    const numIds: string[] = [];
    for (let i = 0; i < 6; i++) numIds.push((await create(s, { id: `dev-${i}` })).numId);
    await bind(s, 'gw-1', 'dev-1');
    await bind(s, 'gw-1', 'dev-5');
    expect((await walk(s, `deviceIds=dev-4,dev-1,nope&deviceNumIds=${numIds[2]}&pageSize=2`)).ids).toEqual(['dev-1', 'dev-2', 'dev-4']);
    expect((await walk(s, 'deviceIds=dev-1,dev-2,dev-5&gatewayListOptions.associationsGatewayId=gw-1')).ids).toEqual(['dev-1', 'dev-5']);
  });

  it('refuses page sizes over 500, bad numbers, foreign page tokens and unknown parameters with 400', async () => {
    const s = await setup();
    for (let i = 0; i < 3; i++) await create(s, { id: `dev-${i}` });
    expectError(await s.call('GET', 'cloudiot_devices?pageSize=501'), 400, 'INVALID_ARGUMENT', /at most 500/);
    expectError(await s.call('GET', 'cloudiot_devices?pageSize=-1'), 400, 'INVALID_ARGUMENT', /pageSize/);
    expectError(await s.call('GET', 'cloudiot_devices?pageSize=ten'), 400, 'INVALID_ARGUMENT', /pageSize/);
    expectError(await s.call('GET', 'cloudiot_devices?pageToken=garbage'), 400, 'INVALID_ARGUMENT', /pageToken/);
    const token = (await s.call('GET', 'cloudiot_devices?pageSize=1')).body.nextPageToken as string;
    expect(token).toEqual(expect.any(String));
    expectError(await s.call('GET', `cloudiot_devices?gatewayListOptions.gatewayType=NON_GATEWAY&pageToken=${token}`), 400, 'INVALID_ARGUMENT', /other filters/);
    expectError(await s.call('GET', 'cloudiot_devices?pagesize=10'), 400, 'INVALID_ARGUMENT', /unknown query parameter "pagesize"/);
    expectError(await s.call('GET', 'cloudiot_devices?deviceNumIds=12x'), 400, 'INVALID_ARGUMENT', /deviceNumIds/);
  });
});

describe('bindings', () => {
  it('binds and unbinds by ID or numId, with or without parent', async () => {
    const s = await setup();
    const gw = await create(s, gatewayBody('gw-1'));
    const dev = await create(s, { id: 'dev-1' });
    const bound = await bind(s, 'gw-1', 'dev-1');
    expect(bound.status).toBe(200);
    expect(bound.body).toEqual({});
    expect(s.emulator.registry.isBound(REGISTRY, 'gw-1', 'dev-1')).toBe(true);
    const unbound = await s.call('POST', 'cloudiot?method=unbindDeviceFromGateway', { gatewayId: gw.numId, deviceId: dev.numId });
    expect(unbound.status).toBe(200);
    expect(s.emulator.registry.isBound(REGISTRY, 'gw-1', 'dev-1')).toBe(false);
    expectError(await s.call('POST', 'cloudiot?method=unbindDeviceFromGateway', { gatewayId: 'gw-1', deviceId: 'dev-1' }), 404, 'NOT_FOUND', /not bound/);
  });

  it('refuses to bind to a non-gateway, to bind a gateway, and unknown devices', async () => {
    const s = await setup();
    await create(s, gatewayBody('gw-1'));
    await create(s, gatewayBody('gw-2'));
    await create(s, { id: 'dev-1' });
    expectError(await bind(s, 'dev-1', 'gw-1'), 400, 'INVALID_ARGUMENT', /not a gateway/);
    expectError(await bind(s, 'gw-1', 'gw-2'), 400, 'INVALID_ARGUMENT', /is a gateway/);
    expectError(await bind(s, 'gw-1', 'dev-9'), 404, 'NOT_FOUND', /dev-9/);
    expectError(await bind(s, 'gw-9', 'dev-1'), 404, 'NOT_FOUND', /gw-9/);
  });

  it('answers malformed binding requests with 400 and the field at fault', async () => {
    const s = await setup();
    expectError(await s.call('POST', 'cloudiot?method=bindDeviceToGateway', { gatewayId: 'gw-1' }), 400, 'INVALID_ARGUMENT', /request\.deviceId is required/);
    expectError(await s.call('POST', 'cloudiot?method=bindDeviceToGateway', { gatewayId: 'gw-1', deviceId: 7 }), 400, 'INVALID_ARGUMENT', /deviceId must be a string/);
    expectError(await s.call('POST', 'cloudiot?method=bindDeviceToGateway', '{"gatewayId":'), 400, 'INVALID_ARGUMENT', /not valid JSON/);
    expectError(await s.call('POST', 'cloudiot?method=bindDeviceToGateway', { gatewayId: 'gw 1', deviceId: 'dev-1' }), 400, 'INVALID_ARGUMENT', /gatewayId/);
    expectError(await s.call('POST', 'cloudiot', { gatewayId: 'gw-1', deviceId: 'dev-1' }), 400, 'INVALID_ARGUMENT', /method is required/);
    expectError(await s.call('POST', 'cloudiot?method=bindDevice', { gatewayId: 'gw-1', deviceId: 'dev-1' }), 400, 'INVALID_ARGUMENT', /unknown method/);
    expectError(await s.call('GET', 'cloudiot?method=bindDeviceToGateway'), 405, 'UNIMPLEMENTED');
  });
});

describe('malformed device requests', () => {
  it('each gets a specific 4xx, and changes nothing', async () => {
    const s = await setup();
    expectError(await s.call('POST', 'cloudiot_devices', '{"id": "dev-1"'), 400, 'INVALID_ARGUMENT', /not valid JSON/);
    expectError(await s.call('POST', 'cloudiot_devices', {}), 400, 'INVALID_ARGUMENT', /device\.id is required/);
    expectError(await s.call('POST', 'cloudiot_devices', { id: '1st-device' }), 400, 'INVALID_ARGUMENT', /device id/);
    expectError(await s.call('POST', 'cloudiot_devices', { id: 'goog-device' }), 400, 'INVALID_ARGUMENT', /device id/);
    expectError(await s.call('POST', 'cloudiot_devices', { id: 'dev-1', colour: 'red' }), 400, 'INVALID_ARGUMENT', /unknown field "colour"/);
    expectError(await s.call('POST', 'cloudiot_devices', { id: 'dev-1', gatewayConfig: { gatewayType: 'HUB' } }), 400, 'INVALID_ARGUMENT', /gatewayType/);
    expectError(await s.call('POST', 'cloudiot_devices', ['dev-1']), 400, 'INVALID_ARGUMENT', /must be an object/);
    expectError(await s.call('GET', 'cloudiot_devices?name=projects/x/devices/dev-1'), 400, 'INVALID_ARGUMENT', /name must be/);
    expectError(await s.call('GET', 'cloudiot_devices?name=bad%20id'), 400, 'INVALID_ARGUMENT', /device id/);
    expectError(await s.call('GET', 'cloudiot_devices?name=dev-1&colour=red'), 400, 'INVALID_ARGUMENT', /unknown query parameter/);
    expectError(await s.call('DELETE', 'cloudiot_devices'), 400, 'INVALID_ARGUMENT', /name is required/);
    expectError(await s.call('PUT', 'cloudiot_devices', { id: 'dev-1' }), 405, 'UNIMPLEMENTED');
    expectError(await s.call('POST', 'cloudiot_devices?name=dev-1&method=sendCommandToDevice', {}), 501, 'UNIMPLEMENTED', /v1/);
    expectError(await s.call('POST', 'cloudiot_devices?method=explode', {}), 400, 'INVALID_ARGUMENT', /unknown method/);
    expectError(await s.call('GET', 'cloudiot_devices_states?name=dev-1'), 501, 'UNIMPLEMENTED');
    expectError(await s.call('GET', 'nothing_here'), 404, 'NOT_FOUND');
    expect(s.emulator.registry.listDevices(REGISTRY)).toEqual([]);
  });
});

describe('binding limits', () => {
  async function fleet(s: Setup, gateways: number, devices: number): Promise<void> {
    for (let g = 1; g <= gateways; g++) await create(s, gatewayBody(`gw-${g}`));
    for (let d = 1; d <= devices; d++) await create(s, { id: `dev-${d}` });
  }

  it('refuses a device over the devices-per-gateway limit with 429 RESOURCE_EXHAUSTED, and takes it once one is unbound', async () => {
    const s = await setup({ maxDevicesPerGateway: 3 });
    await fleet(s, 2, 4);
    for (let d = 1; d <= 3; d++) expect((await bind(s, 'gw-1', `dev-${d}`)).status).toBe(200);
    expectError(await bind(s, 'gw-1', 'dev-4'), 429, 'RESOURCE_EXHAUSTED', /gw-1 already has 3 bound devices/);
    expect(s.emulator.registry.isBound(REGISTRY, 'gw-1', 'dev-4')).toBe(false);
    // Another gateway is not affected, and a freed place can be taken.
    expect((await bind(s, 'gw-2', 'dev-4')).status).toBe(200);
    expect((await s.call('POST', 'cloudiot?method=unbindDeviceFromGateway', { gatewayId: 'gw-1', deviceId: 'dev-1' })).status).toBe(200);
    expect((await bind(s, 'gw-1', 'dev-4')).status).toBe(200);
  });

  it('refuses a gateway over the gateways-per-device limit', async () => {
    const s = await setup({ maxGatewaysPerDevice: 2 });
    await fleet(s, 3, 1);
    expect((await bind(s, 'gw-1', 'dev-1')).status).toBe(200);
    expect((await bind(s, 'gw-2', 'dev-1')).status).toBe(200);
    expectError(await bind(s, 'gw-3', 'dev-1'), 429, 'RESOURCE_EXHAUSTED', /dev-1 is already bound to 2 gateways/);
    expect(s.emulator.registry.gatewaysOf(REGISTRY, 'dev-1')).toEqual(['gw-1', 'gw-2']);
  });

  it('answers FAILED_PRECONDITION (400) instead when told', async () => {
    const s = await setup({ maxDevicesPerGateway: 1, maxGatewaysPerDevice: 1, bindingLimitStatus: 'FAILED_PRECONDITION' });
    await fleet(s, 2, 2);
    expect((await bind(s, 'gw-1', 'dev-1')).status).toBe(200);
    expectError(await bind(s, 'gw-1', 'dev-2'), 400, 'FAILED_PRECONDITION', /bound devices/);
    expectError(await bind(s, 'gw-2', 'dev-1'), 400, 'FAILED_PRECONDITION', /bound to 1 gateways/);
  });

  it('defaults to the documented limits', async () => {
    const s = await setup();
    expect(s.emulator.registry.policy).toMatchObject({ maxDevicesPerGateway: 10_000, maxGatewaysPerDevice: 10 });
    await fleet(s, 11, 1);
    for (let g = 1; g <= 10; g++) expect((await bind(s, `gw-${g}`, 'dev-1')).status).toBe(200);
    expectError(await bind(s, 'gw-11', 'dev-1'), 429, 'RESOURCE_EXHAUSTED');
  });

  it('applies to the bindings of a registry file too', async () => {
    const registry: RegistryDocument = {
      project: PROJECT,
      location: LOCATION,
      registries: [
        {
          id: REGISTRY,
          devices: [{ id: 'gw-1', gatewayConfig: { gatewayType: 'GATEWAY' } }, { id: 'dev-1' }, { id: 'dev-2' }],
          bindings: [
            { gatewayId: 'gw-1', deviceId: 'dev-1' },
            { gatewayId: 'gw-1', deviceId: 'dev-2' },
          ],
        },
      ],
    };
    await expect(startEmulator({ tls: false, registry, maxDevicesPerGateway: 1 })).rejects.toMatchObject({ status: 'RESOURCE_EXHAUSTED' });
  });
});

describe('variants', () => {
  async function boundPair(s: Setup): Promise<void> {
    await create(s, gatewayBody('gw-1'));
    await create(s, { id: 'dev-1' });
    expect((await bind(s, 'gw-1', 'dev-1')).status).toBe(200);
  }

  it('binding a bound pair again succeeds by default, and is 409 ALREADY_EXISTS with bindExisting conflict', async () => {
    const idempotent = await setup();
    await boundPair(idempotent);
    const again = await bind(idempotent, 'gw-1', 'dev-1');
    expect(again.status).toBe(200);
    expect(idempotent.emulator.registry.gatewaysOf(REGISTRY, 'dev-1')).toEqual(['gw-1']);

    const strict = await setup({ bindExisting: 'conflict' });
    await boundPair(strict);
    expectError(await bind(strict, 'gw-1', 'dev-1'), 409, 'ALREADY_EXISTS', /already bound to gw-1/);
    expect(strict.emulator.registry.gatewaysOf(REGISTRY, 'dev-1')).toEqual(['gw-1']);
  });

  it('deleting a bound device unbinds it by default, and is refused with deleteBoundDevice refuse', async () => {
    const lenient = await setup();
    await boundPair(lenient);
    expect((await lenient.call('DELETE', 'cloudiot_devices?name=dev-1')).status).toBe(204);
    expect((await walk(lenient, 'gatewayListOptions.associationsGatewayId=gw-1')).ids).toEqual([]);

    const strict = await setup({ deleteBoundDevice: 'refuse' });
    await boundPair(strict);
    expectError(await strict.call('DELETE', 'cloudiot_devices?name=dev-1'), 400, 'FAILED_PRECONDITION', /still bound to 1 gateway/);
    expect((await strict.call('GET', 'cloudiot_devices?name=dev-1')).status).toBe(200);
    expect((await walk(strict, 'gatewayListOptions.associationsGatewayId=gw-1')).ids).toEqual(['dev-1']);
    // Unbound, it can go.
    await strict.call('POST', 'cloudiot?method=unbindDeviceFromGateway', { gatewayId: 'gw-1', deviceId: 'dev-1' });
    expect((await strict.call('DELETE', 'cloudiot_devices?name=dev-1')).status).toBe(204);
  });

  it('deleting a gateway with bound devices is refused by default, and unbinds them with deleteGatewayWithDevices unbind', async () => {
    const strict = await setup();
    await boundPair(strict);
    expectError(await strict.call('DELETE', 'cloudiot_devices?name=gw-1'), 400, 'FAILED_PRECONDITION', /still has 1 bound device/);
    expect((await strict.call('GET', 'cloudiot_devices?name=gw-1')).status).toBe(200);

    const lenient = await setup({ deleteGatewayWithDevices: 'unbind' });
    await boundPair(lenient);
    expect((await lenient.call('DELETE', 'cloudiot_devices?name=gw-1')).status).toBe(204);
    expect((await walk(lenient, 'gatewayListOptions.associationsDeviceId=dev-1')).ids).toEqual([]);
    expect((await lenient.call('GET', 'cloudiot_devices?name=dev-1')).status).toBe(200);
  });

  it('the v1 paths follow the same policy, since both forms share the registry', async () => {
    const s = await setup({ bindExisting: 'conflict' });
    await boundPair(s);
    const v1 = await request('POST', `${s.emulator.adminUrl}/v1/${REGISTRY_NAME}:bindDeviceToGateway`, { gatewayId: 'gw-1', deviceId: 'dev-1' });
    expectError(v1, 409, 'ALREADY_EXISTS');
  });

  it('a bad option fails the start', async () => {
    await expect(startEmulator({ tls: false, registry: document(), bindExisting: 'maybe' as 'succeed' })).rejects.toThrow(/bindExisting/);
    await expect(startEmulator({ tls: false, registry: document(), maxDevicesPerGateway: 0 })).rejects.toThrow(/maxDevicesPerGateway/);
    await expect(startEmulator({ tls: false, registry: document(), rateLimits: { create: -1 } })).rejects.toThrow(/create quota/);
  });
});

describe('rate limits', () => {
  it('are off by default', async () => {
    const s = await setup();
    await pool(Array.from({ length: 200 }, (_, i) => `dev-${i}`), 8, async (id) => void (await create(s, { id })));
    for (let i = 0; i < 50; i++) expect((await s.call('GET', 'cloudiot_devices?pageSize=1')).status).toBe(200);
  });

  it('answer 429 RESOURCE_EXHAUSTED over the quota of each kind, change nothing, and leave other kinds alone', async () => {
    const s = await setup({ rateLimits: { create: 3, bind: 1, delete: 1, read: 4 } });
    for (const id of ['gw-1', 'dev-1']) expect((await s.call('POST', 'cloudiot_devices', id === 'gw-1' ? gatewayBody(id) : { id })).status).toBe(200);
    expect((await s.call('POST', 'cloudiot_devices', { id: 'dev-2' })).status).toBe(200);
    const over = await s.call('POST', 'cloudiot_devices', { id: 'dev-3' });
    expectError(over, 429, 'RESOURCE_EXHAUSTED', /at most 3 device creates per minute/);
    expect(s.emulator.registry.findDevice(REGISTRY, 'dev-3')).toBeUndefined();

    expect((await bind(s, 'gw-1', 'dev-1')).status).toBe(200);
    expectError(await bind(s, 'gw-1', 'dev-2'), 429, 'RESOURCE_EXHAUSTED', /binds and unbinds/);
    expectError(await s.call('POST', 'cloudiot?method=unbindDeviceFromGateway', { gatewayId: 'gw-1', deviceId: 'dev-1' }), 429, 'RESOURCE_EXHAUSTED');
    expect(s.emulator.registry.isBound(REGISTRY, 'gw-1', 'dev-2')).toBe(false);

    for (let i = 0; i < 2; i++) expect((await s.call('GET', 'cloudiot_devices?name=dev-1')).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await s.call('GET', 'cloudiot_devices')).status).toBe(200);
    expectError(await s.call('GET', 'cloudiot_devices?name=dev-1'), 429, 'RESOURCE_EXHAUSTED', /reads and lists/);

    expect((await s.call('DELETE', 'cloudiot_devices?name=dev-2')).status).toBe(204);
    expectError(await s.call('DELETE', 'cloudiot_devices?name=dev-1'), 429, 'RESOURCE_EXHAUSTED', /deletes/);
    expect(s.emulator.registry.findDevice(REGISTRY, 'dev-1')).toBeDefined();
    // The credentials exchange is not a device-manager call and is never limited.
    expect((await exchange(s.account)).status).toBe(200);
  });

  it('open a new window when the last one ends', async () => {
    const s = await setup({ rateLimits: { read: 2 }, rateLimitWindowMs: 1_500 });
    // The first call opens the window, so the quota counts from it whatever the wall clock says.
    expect((await s.call('GET', 'cloudiot_devices')).status).toBe(200);
    expect((await s.call('GET', 'cloudiot_devices')).status).toBe(200);
    expectError(await s.call('GET', 'cloudiot_devices'), 429, 'RESOURCE_EXHAUSTED');
    await new Promise((r) => setTimeout(r, 1_600));
    expect((await s.call('GET', 'cloudiot_devices')).status).toBe(200);
  });
});

describe('modifyCloudToDeviceConfig and the per-device config rate', () => {
  const b64 = (text: string): string => Buffer.from(text).toString('base64');
  const modify = (s: Setup, device: string, text: string, versionToUpdate = '0'): Promise<Reply> =>
    s.call('POST', `cloudiot_devices?name=${device}&method=modifyCloudToDeviceConfig`, { versionToUpdate, binaryData: b64(text) });
  const modifyV1 = (s: Setup, device: string, text: string): Promise<Reply> =>
    request('POST', `${s.emulator.adminUrl!}/v1/${REGISTRY_NAME}/devices/${device}:modifyCloudToDeviceConfig`, { binaryData: b64(text) });
  const configOf = (s: Setup, device: string): string => Buffer.from(s.emulator.registry.getDevice(REGISTRY, device).config.binaryData, 'base64').toString();

  it('sets a new config version through the ClearBlade form, by ID or full name', async () => {
    // Updates one after the other, faster than the documented 1 per second that the emulator enforces by default.
    const s = await setup({ configRateLimit: false });
    await s.call('POST', 'cloudiot_devices', { id: 'dev-1' });
    const reply = await modify(s, 'dev-1', '{"rate":5}', '1');
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ version: '2', binaryData: b64('{"rate":5}') });
    expect((await modify(s, `${REGISTRY_NAME}/devices/dev-1`, 'second')).body).toMatchObject({ version: '3' });
    expect(configOf(s, 'dev-1')).toBe('second');
    expectError(await modify(s, 'dev-1', 'stale', '1'), 400, 'FAILED_PRECONDITION');
    expectError(await modify(s, 'dev-9', 'nobody'), 404, 'NOT_FOUND');
    expectError(await s.call('POST', 'cloudiot_devices?method=modifyCloudToDeviceConfig', { binaryData: '' }), 400, 'INVALID_ARGUMENT', /name is required/);
  });

  it('takes updates as fast as they come without configRateLimit', async () => {
    const s = await setup({ configRateLimit: false });
    await s.call('POST', 'cloudiot_devices', { id: 'dev-1' });
    for (const text of ['a', 'b']) expect((await modify(s, 'dev-1', text)).status).toBe(200);
    expect((await modifyV1(s, 'dev-1', 'c')).status).toBe(200);
    expect(configOf(s, 'dev-1')).toBe('c');
  });

  it('by default, answers a second update within 1 s 429 RESOURCE_EXHAUSTED through either form, per device', async () => {
    const s = await setup();
    for (const id of ['dev-1', 'dev-2']) await s.call('POST', 'cloudiot_devices', { id });
    expect((await modify(s, 'dev-1', 'first')).status).toBe(200);
    expectError(await modify(s, 'dev-1', 'too soon'), 429, 'RESOURCE_EXHAUSTED', /exceed 1 per second/);
    // The v1 paths share the device's second, and a refused update changes nothing.
    expectError(await modifyV1(s, 'dev-1', 'too soon, v1'), 429, 'RESOURCE_EXHAUSTED');
    expect(configOf(s, 'dev-1')).toBe('first');
    expect(s.emulator.registry.configVersions(REGISTRY, 'dev-1')).toHaveLength(2);
    // Another device has its own second.
    expect((await modifyV1(s, 'dev-2', 'other')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_050));
    expect((await modifyV1(s, 'dev-1', 'later')).status).toBe(200);
    expect(configOf(s, 'dev-1')).toBe('later');
  });

  it('with configRateLimit, does not count an update that failed', async () => {
    const s = await setup({ configRateLimit: true });
    await s.call('POST', 'cloudiot_devices', { id: 'dev-1' });
    expectError(await modify(s, 'dev-1', 'stale', '7'), 400, 'FAILED_PRECONDITION');
    expect((await modify(s, 'dev-1', 'fine')).status).toBe(200);
  });
});
