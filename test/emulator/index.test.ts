/**
 * startEmulator as other tests use it: what it returns, the admin API beside the bridge, the registry it serves.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator } from '../../emulator/index.js';
import { Registry } from '../../emulator/registry.js';
import { connectDevice, makeFleet, publishOutcome } from '../helpers/emulator-fixtures.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;

beforeAll(async () => {
  fleet = await makeFleet({ gateways: [{ id: 'gw-1', bound: ['dev-1'] }], devices: ['dev-1'] });
  emulator = await startEmulator({ registry: fleet.document });
});
afterAll(() => emulator.close());

it('serves the admin API over the same registry the bridge uses', async () => {
  expect(emulator.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  const list = await fetch(`${emulator.adminUrl}/v1/projects/${fleet.project}/locations/${fleet.location}/registries/${fleet.registryId}/devices`);
  expect(list.status).toBe(200);
  expect(((await list.json()) as { devices: { id: string }[] }).devices.map((d) => d.id).sort()).toEqual(['dev-1', 'gw-1']);

  const gw = await connectDevice(emulator, fleet, 'gw-1');
  expect(await publishOutcome(gw, '/devices/dev-1/attach', '')).toBe('acked');
  expect(await publishOutcome(gw, '/devices/dev-1/events', 'seen over REST')).toBe('acked');
  const events = (await (await fetch(`${emulator.adminUrl}/emulator/events?gatewayId=gw-1`)).json()) as { events: { data: string }[] };
  expect(events.events.map((m) => Buffer.from(m.data, 'base64').toString())).toEqual(['seen over REST']);
  await gw.endAsync();
});

it('lists live connections with their attachments and subscriptions', async () => {
  const gw = await connectDevice(emulator, fleet, 'gw-1');
  await gw.subscribeAsync('/devices/gw-1/errors', { qos: 0 });
  expect(await publishOutcome(gw, '/devices/dev-1/attach', '')).toBe('acked');
  expect(emulator.connections()).toEqual([
    {
      clientId: fleet.clientId('gw-1'),
      registryId: fleet.registryId,
      deviceId: 'gw-1',
      gateway: true,
      attached: ['dev-1'],
      subscriptions: ['/devices/gw-1/errors'],
    },
  ]);
  await gw.endAsync();
  await new Promise((r) => setTimeout(r, 50));
  expect(emulator.connections()).toEqual([]);
});

it('uses a live Registry as given, so changes made by the test are seen by the bridge', async () => {
  const registry = Registry.fromDocument(fleet.document);
  const e = await startEmulator({ registry, adminPort: null });
  try {
    expect(e.registry).toBe(registry);
    registry.patchDevice(fleet.registryId, 'dev-1', { blocked: true }, ['blocked']);
    await expect(connectDevice(e, fleet, 'dev-1')).rejects.toMatchObject({ code: 4 });
  } finally {
    await e.close();
  }
});

it('serves the demo registry when given none, and without an admin port when adminPort is null', async () => {
  const e = await startEmulator({ adminPort: null });
  try {
    expect(e.registry.project).toBe('demo-project');
    expect(e.registry.listDevices('demo-registry').map((d) => d.id)).toContain('gw-1');
    expect(e.adminUrl).toBeUndefined();
  } finally {
    await e.close();
  }
});

it('refuses nonsense options before listening', async () => {
  await expect(startEmulator({ registry: fleet.document, adminPort: null, authFailureCode: 7 as never })).rejects.toThrow(/authFailureCode/);
  await expect(startEmulator({ registry: fleet.document, adminPort: null, faults: { closeAfterPackets: -1 } })).rejects.toThrow(/closeAfterPackets/);
});

it('rejects when the port is taken, and the emulator already there keeps serving', async () => {
  await expect(startEmulator({ registry: fleet.document, adminPort: null, port: emulator.port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  const client = await connectDevice(emulator, fleet, 'dev-1');
  expect(client.connected).toBe(true);
  await client.endAsync();
});

it('closes idempotently and stops accepting connections', async () => {
  const e = await startEmulator({ registry: fleet.document, adminPort: null });
  const client = await connectDevice(e, fleet, 'dev-1');
  await Promise.all([e.close(), e.close()]);
  await new Promise((r) => setTimeout(r, 50));
  expect(client.connected).toBe(false);
  await expect(connectDevice(e, fleet, 'dev-1', { connectTimeout: 1_000 })).rejects.toThrow();
  client.end(true);
});
