/**
 * The device-manager client against the emulator's ClearBlade REST form over HTTP: the service account's
 * credentials, every route the fleet command uses, pagination with its filters, typed refusals, and the emulator's
 * quota answered by waiting.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ClearBladeClient, ClearBladeError, type ClientOptions } from '../../../lib/clearblade/rest-client.js';
import { parseServiceAccount } from '../../../lib/clearblade/service-account.js';
import { FLEET_LOCATION, FLEET_PROJECT, FLEET_REGISTRY, ids, startFleetEmulator, type FleetEmulator, type FleetSetup } from '../../helpers/fleet-fixtures.js';

const open: FleetEmulator[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((f) => f.close()));
});

async function setup(s: FleetSetup, options: Partial<ClientOptions> = {}): Promise<{ fleet: FleetEmulator; client: ClearBladeClient }> {
  const fleet = await startFleetEmulator(s);
  open.push(fleet);
  const client = new ClearBladeClient({
    serviceAccount: parseServiceAccount(JSON.stringify(fleet.emulator.serviceAccount()), 'emulator'),
    registry: { project: FLEET_PROJECT, location: FLEET_LOCATION, registry: FLEET_REGISTRY },
    ratesPerMinute: { reads: Infinity, creates: Infinity, binds: Infinity },
    retry: { baseMs: 20, maxMs: 500 },
    ...options,
  });
  return { fleet, client };
}

const refusal = async (p: Promise<unknown>): Promise<ClearBladeError> => {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ClearBladeError);
  return e as ClearBladeError;
};

describe('ClearBladeClient on the emulator', () => {
  it('creates, gets, binds, lists by gateway and by device, unbinds and deletes', async () => {
    const { fleet, client } = await setup({ gateways: ['gw-1', 'gw-2'] });
    const created = await client.createDevice({ id: 'pump-1', metadata: { site: 'north' } });
    expect(created).toMatchObject({ id: 'pump-1', metadata: { site: 'north' } });
    expect((await client.getDevice('pump-1')).id).toBe('pump-1');
    await client.bindDeviceToGateway('gw-1', 'pump-1');
    await client.bindDeviceToGateway('gw-2', 'pump-1');
    expect(fleet.boundTo('pump-1')).toEqual(['gw-1', 'gw-2']);
    expect((await client.listAllDevices({ associationsGatewayId: 'gw-1' })).map((d) => d.id)).toEqual(['pump-1']);
    expect((await client.listAllDevices({ associationsDeviceId: 'pump-1' })).map((d) => d.id).sort()).toEqual(['gw-1', 'gw-2']);
    const gateways = await client.listAllDevices({ gatewayType: 'GATEWAY', fieldMask: ['gatewayConfig', 'metadata'] });
    expect(gateways.map((g) => [g.id, g.gatewayConfig?.gatewayType])).toEqual([
      ['gw-1', 'GATEWAY'],
      ['gw-2', 'GATEWAY'],
    ]);
    await client.unbindDeviceFromGateway('gw-1', 'pump-1');
    expect(fleet.boundTo('pump-1')).toEqual(['gw-2']);
    await client.deleteDevice('pump-1');
    expect(fleet.emulator.registry.findDevice(FLEET_REGISTRY, 'pump-1')).toBeUndefined();
    expect(client.calls).toMatchObject({ getRegistryCredentials: 1, create: 1, get: 1, bind: 2, unbind: 1, delete: 1, list: 3 });
  });

  it('pages through 1,200 devices 500 at a time, keeping its filter on every page', async () => {
    const devices = ids('meter', 1200);
    const { client } = await setup({ gateways: ['gw-1'], devices, bindings: devices.slice(0, 700).map((d) => ({ gatewayId: 'gw-1', deviceId: d })) });
    const pages: number[] = [];
    for await (const page of client.listDevices({ gatewayType: 'NON_GATEWAY' })) pages.push(page.length);
    expect(pages).toEqual([500, 500, 200]);
    const bound = await client.listAllDevices({ associationsGatewayId: 'gw-1' });
    expect(bound.map((d) => d.id).sort()).toEqual(devices.slice(0, 700));
    expect(client.calls.list).toBe(5);
  });

  it('types the refusals: ALREADY_EXISTS, NOT_FOUND, and a bind over the limit', async () => {
    const { client } = await setup({ gateways: ['gw-1'], devices: ['pump-1', 'pump-2'], emulator: { maxDevicesPerGateway: 1, bindingLimitStatus: 'FAILED_PRECONDITION', bindExisting: 'conflict' } });
    const exists = await refusal(client.createDevice({ id: 'pump-1' }));
    expect([exists.httpStatus, exists.status, exists.operation]).toEqual([409, 'ALREADY_EXISTS', 'create']);
    const missing = await refusal(client.getDevice('pump-9'));
    expect([missing.httpStatus, missing.status]).toEqual([404, 'NOT_FOUND']);
    await client.bindDeviceToGateway('gw-1', 'pump-1');
    const again = await refusal(client.bindDeviceToGateway('gw-1', 'pump-1'));
    expect(again.status).toBe('ALREADY_EXISTS');
    const full = await refusal(client.bindDeviceToGateway('gw-1', 'pump-2'));
    expect([full.httpStatus, full.status, full.attempts]).toEqual([400, 'FAILED_PRECONDITION', 1]);
    expect(full.message).toMatch(/gw-1 already has 1 bound devices/);
  });

  it('refuses a wrong token without retrying, and names what was wrong', async () => {
    const fleet = await startFleetEmulator({});
    open.push(fleet);
    const account = { ...fleet.emulator.serviceAccount(), token: 'not-the-token' };
    const client = new ClearBladeClient({ serviceAccount: parseServiceAccount(JSON.stringify(account), 'sa'), registry: { project: FLEET_PROJECT, location: FLEET_LOCATION, registry: FLEET_REGISTRY } });
    const e = await refusal(client.listAllDevices());
    expect([e.operation, e.httpStatus, e.status, e.attempts]).toEqual(['getRegistryCredentials', 401, 'UNAUTHENTICATED', 1]);
    expect(e.message).not.toContain('not-the-token');
  });

  it("waits out the emulator's quota instead of failing", async () => {
    const devices = ids('pump', 30);
    const { fleet, client } = await setup({ gateways: ['gw-1'], devices, emulator: { rateLimits: { bind: 10 }, rateLimitWindowMs: 500 } });
    await Promise.all(devices.map((d) => client.bindDeviceToGateway('gw-1', d)));
    expect(fleet.boundDevices('gw-1')).toEqual(devices);
    expect(client.rateLimited.binds).toBeGreaterThan(0);
  });
});
