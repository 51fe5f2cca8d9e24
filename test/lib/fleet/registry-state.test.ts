/**
 * The registry as the fleet command reads it, from the emulator's ClearBlade REST form over HTTP.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ClearBladeClient, ClearBladeError } from '../../../lib/clearblade/rest-client.js';
import { parseServiceAccount } from '../../../lib/clearblade/service-account.js';
import { isMarkedPoolGateway, readRegistryState } from '../../../lib/fleet/registry-state.js';
import { FLEET_LOCATION, FLEET_PROJECT, FLEET_REGISTRY, ids, startFleetEmulator, type FleetEmulator, type FleetSetup } from '../../helpers/fleet-fixtures.js';

const open: FleetEmulator[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((f) => f.close()));
});

async function clientOn(setup: FleetSetup, registry = FLEET_REGISTRY): Promise<ClearBladeClient> {
  const fleet = await startFleetEmulator(setup);
  open.push(fleet);
  return new ClearBladeClient({
    serviceAccount: parseServiceAccount(JSON.stringify(fleet.emulator.serviceAccount()), 'emulator'),
    registry: { project: FLEET_PROJECT, location: FLEET_LOCATION, registry },
    ratesPerMinute: { reads: Infinity, creates: Infinity, binds: Infinity },
    retry: { baseMs: 20, maxMs: 200, attempts: 1 },
  });
}

describe('readRegistryState', () => {
  it('reads the devices, the gateways with their pool mark, and who is bound to whom', async () => {
    const client = await clientOn({
      gateways: [{ id: 'gw-pool', marked: true }, 'gw-other', 'gw-empty'],
      devices: ['pump-1', 'pump-2', 'pump-3'],
      bindings: [
        { gatewayId: 'gw-pool', deviceId: 'pump-1' },
        { gatewayId: 'gw-pool', deviceId: 'pump-2' },
        { gatewayId: 'gw-other', deviceId: 'pump-2' },
      ],
    });
    const { state, gateways } = await readRegistryState(client);
    expect([...state.devices].sort()).toEqual(['pump-1', 'pump-2', 'pump-3']);
    expect(Object.fromEntries(state.gateways)).toEqual({ 'gw-pool': { marked: true }, 'gw-other': { marked: false }, 'gw-empty': { marked: false } });
    // A gateway with nothing bound has no entry.
    expect(Object.fromEntries([...state.bindings].map(([g, d]) => [g, [...d].sort()]))).toEqual({ 'gw-pool': ['pump-1', 'pump-2'], 'gw-other': ['pump-2'] });
    expect([...gateways.keys()].sort()).toEqual(['gw-empty', 'gw-other', 'gw-pool']);
    expect(gateways.get('gw-pool')?.gatewayConfig?.gatewayType).toBe('GATEWAY');
  });

  it('reports every page it read, the bindings of each gateway among them', async () => {
    const gatewayIds = ids('gw', 12);
    const deviceIds = ids('pump', 12);
    const client = await clientOn({ gateways: gatewayIds, devices: deviceIds, bindings: gatewayIds.map((gatewayId, i) => ({ gatewayId, deviceId: deviceIds[i]! })) });
    const pages: number[] = [];
    const { state } = await readRegistryState(client, { parallel: 3, onPage: (n) => pages.push(n) });
    expect(state.bindings.size).toBe(12);
    // One page of gateways, one of devices, and one of bindings per gateway.
    expect(pages.length).toBe(14);
    expect(pages.reduce((a, b) => a + b, 0)).toBe(12 + 12 + 12);
  });

  it('reads an empty registry as empty', async () => {
    const { state, gateways } = await readRegistryState(await clientOn({}));
    expect([state.devices.size, state.gateways.size, state.bindings.size, gateways.size]).toEqual([0, 0, 0, 0]);
  });

  it('passes on a refusal of the server', async () => {
    await expect(readRegistryState(await clientOn({ gateways: ['gw-1'] }, 'no-such-registry'))).rejects.toBeInstanceOf(ClearBladeError);
  });
});

describe('isMarkedPoolGateway', () => {
  it('is whether the gateway carries the pool metadata, whatever its value', () => {
    expect(isMarkedPoolGateway({ id: 'g', metadata: { 'iotcore-relay-pool': '' } })).toBe(true);
    expect(isMarkedPoolGateway({ id: 'g', metadata: { other: 'true' } })).toBe(false);
    expect(isMarkedPoolGateway({ id: 'g' })).toBe(false);
  });
});
