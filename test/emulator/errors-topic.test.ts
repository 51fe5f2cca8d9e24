/**
 * The gateway errors topic ([CB-GW], "Troubleshooting"; docs/protocol.md §3.5): QoS 0 only, nested or flat
 * payloads, failed attaches acknowledged or not, every error recorded whether delivered or not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { errorPayload } from '../../emulator/errors-topic.js';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator, EmulatorOptions } from '../../emulator/index.js';
import { parseGatewayError } from '../../lib/iotcore/gateway-error.js';
import {
  collectErrors,
  makeFleet,
  publishOutcome,
  rawConnectPacket,
  rawSession,
  subscribeGranted,
} from '../helpers/emulator-fixtures.js';
import { deviceConnections } from '../helpers/device-connections.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;

beforeAll(async () => {
  fleet = await makeFleet({
    gateways: [{ id: 'gw-1', bound: ['dev-1'] }, { id: 'gw-2' }],
    devices: ['dev-1', 'dev-unbound'],
  });
  emulator = await startEmulator({ registry: fleet.document, adminPort: null });
});
afterAll(() => emulator.close());

const connect = deviceConnections(() => ({ bridge: emulator, fleet }));
const gw = (e: Emulator = emulator, id = 'gw-1'): Promise<MqttClient> => connect(id, e);

async function withEmulator(options: EmulatorOptions, run: (e: Emulator) => Promise<void>): Promise<void> {
  const e = await startEmulator({ registry: fleet.document, adminPort: null, ...options });
  try {
    await run(e);
  } finally {
    await connect.closeAll();
    await e.close();
  }
}

describe('subscription', () => {
  it('grants QoS 0 on the errors topic whatever was asked', async () => {
    const c = await gw();
    expect(await subscribeGranted(c, { '/devices/gw-1/errors': { qos: 1 } })).toEqual([0]);
    expect(await subscribeGranted(c, { '/devices/gw-1/errors': { qos: 2 } })).toEqual([0]);
  });

  it("refuses another gateway's errors topic", async () => {
    const c = await gw();
    expect(await subscribeGranted(c, { '/devices/gw-2/errors': { qos: 0 } })).toEqual([128]);
  });
});

describe('payload shape', () => {
  it('nests the packet details under mqtt_message_info by default, and parses with the relay parser', async () => {
    const c = await gw();
    const errors = collectErrors(c, 'gw-1');
    await c.subscribeAsync('/devices/gw-1/errors', { qos: 0 });
    expect(await publishOutcome(c, '/devices/dev-1/events', 'x')).toBe('unacked');
    expect(errors).toHaveLength(1);
    expect(Object.keys(errors[0]!).sort()).toEqual(['description', 'device_id', 'error_type', 'mqtt_message_info']);
    const parsed = parseGatewayError(JSON.stringify(errors[0]));
    expect(parsed).toMatchObject({ errorType: 'GATEWAY_DEVICE_NOT_FOUND', deviceId: 'dev-1', messageType: 'PUBLISH', topic: '/devices/dev-1/events' });
    expect(parsed?.packetId).toBeGreaterThan(0);
  });

  it("puts them at the top level with errorShape 'flat'", async () => {
    await withEmulator({ errorShape: 'flat' }, async (e) => {
      const c = await gw(e);
      const errors = collectErrors(c, 'gw-1');
      await c.subscribeAsync('/devices/gw-1/errors', { qos: 0 });
      expect(await publishOutcome(c, '/devices/dev-1/events', 'x')).toBe('unacked');
      expect(errors[0]).toMatchObject({ error_type: 'GATEWAY_DEVICE_NOT_FOUND', message_type: 'PUBLISH', topic: '/devices/dev-1/events' });
      expect(errors[0]).not.toHaveProperty('mqtt_message_info');
      expect(parseGatewayError(JSON.stringify(errors[0]))?.topic).toBe('/devices/dev-1/events');
    });
  });

  it('leaves the packet details out when no packet caused the error', () => {
    const report = { type: 'GATEWAY_DETACHMENT_DEVICE_ERROR', deviceId: 'd-1', description: 'why' } as const;
    expect(errorPayload(report, 'nested')).toEqual({ error_type: 'GATEWAY_DETACHMENT_DEVICE_ERROR', device_id: 'd-1', description: 'why' });
    expect(errorPayload(report, 'flat')).toEqual(errorPayload(report, 'nested'));
  });
});

describe('failed attach', () => {
  it('is reported and not PUBACKed by default, and recorded as delivered', async () => {
    const c = await gw();
    const errors = collectErrors(c, 'gw-1');
    await c.subscribeAsync('/devices/gw-1/errors', { qos: 0 });
    const before = emulator.registry.errors.length;
    expect(await publishOutcome(c, '/devices/dev-unbound/attach', '{}')).toBe('unacked');
    expect(errors.map((x) => x['error_type'])).toEqual(['GATEWAY_ATTACHMENT_ERROR']);
    expect(emulator.registry.errors.slice(before)).toEqual([
      expect.objectContaining({ gatewayId: 'gw-1', delivered: true, payload: errors[0] }),
    ]);
  });

  it('is only recorded, undelivered and never PUBACKed, when the gateway is not subscribed', async () => {
    await withEmulator({ ackFailedAttach: true }, async (e) => {
      const c = await gw(e);
      const before = e.registry.errors.length;
      expect(await publishOutcome(c, '/devices/dev-unbound/attach', '{}')).toBe('unacked');
      expect(e.registry.errors.slice(before)).toEqual([
        expect.objectContaining({ gatewayId: 'gw-1', delivered: false, payload: expect.objectContaining({ error_type: 'GATEWAY_ATTACHMENT_ERROR' }) }),
      ]);
    });
  });

  it('is also PUBACKed with ackFailedAttach when the gateway is subscribed', async () => {
    await withEmulator({ ackFailedAttach: true }, async (e) => {
      const c = await gw(e);
      const errors = collectErrors(c, 'gw-1');
      await c.subscribeAsync('/devices/gw-1/errors', { qos: 0 });
      expect(await publishOutcome(c, '/devices/dev-unbound/attach', '{}')).toBe('acked');
      expect(errors.map((x) => x['error_type'])).toEqual(['GATEWAY_ATTACHMENT_ERROR']);
      // The attach still failed.
      expect(e.connections()[0]?.attached).toEqual([]);
    });
  });
});

it('reports PUBREC from a gateway as GATEWAY_UNEXPECTED_MESSAGE_TYPE and keeps the connection', async () => {
  const raw = await rawSession(emulator);
  raw.send(await rawConnectPacket(fleet, 'gw-2'));
  expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '/devices/gw-2/errors', qos: 0 }] });
  expect(await raw.next()).toMatchObject({ cmd: 'suback', granted: [0] });
  raw.send({ cmd: 'pubrec', messageId: 77 });
  const error = await raw.next();
  expect(error).toMatchObject({ cmd: 'publish', topic: '/devices/gw-2/errors', qos: 0 });
  expect(JSON.parse(String((error as { payload: Buffer }).payload))).toMatchObject({
    error_type: 'GATEWAY_UNEXPECTED_MESSAGE_TYPE',
    device_id: 'gw-2',
    mqtt_message_info: { message_type: 'PUBREC', packet_id: 77 },
  });
  raw.send({ cmd: 'pingreq' });
  expect(await raw.next()).toMatchObject({ cmd: 'pingresp' });
  raw.end();
});
