/**
 * Gateways (docs/protocol.md §3, [CB-GW]): attach and detach under each gatewayAuthMethod, publishing and
 * subscribing for attached devices, and the errors a gateway gets when it oversteps.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { MAX_ATTACHED_PER_GATEWAY } from '../../lib/iotcore/limits.js';
import { parseAttachToken } from '../../emulator/gateway.js';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator } from '../../emulator/index.js';
import { Registry } from '../../emulator/registry.js';
import {
  collectErrors,
  eventually,
  makeFleet,
  publishOutcome,
  subscribeGranted,
} from '../helpers/emulator-fixtures.js';
import { deviceConnections } from '../helpers/device-connections.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;

beforeAll(async () => {
  fleet = await makeFleet({
    gateways: [
      { id: 'gw-assoc', authMethod: 'ASSOCIATION_ONLY', bound: ['dev-1', 'dev-2', 'dev-keyless', 'dev-blocked'] },
      { id: 'gw-token', authMethod: 'DEVICE_AUTH_TOKEN_ONLY' },
      { id: 'gw-both', authMethod: 'ASSOCIATION_AND_DEVICE_AUTH_TOKEN', bound: ['dev-1'] },
      { id: 'gw-none', authMethod: 'GATEWAY_AUTH_METHOD_UNSPECIFIED', bound: ['dev-1'] },
    ],
    devices: ['dev-1', 'dev-2', { id: 'dev-keyless', keyless: true }, { id: 'dev-blocked', blocked: true }, 'dev-unbound'],
  });
  emulator = await startEmulator({ registry: fleet.document, adminPort: null });
});
afterAll(() => emulator.close());

const connect = deviceConnections(() => ({ bridge: emulator, fleet }));

/** A gateway connected and subscribed to its errors topic, with the errors it receives. */
async function gateway(id: string, e: Emulator = emulator, f: Fleet = fleet): Promise<{ client: MqttClient; errors: Record<string, unknown>[] }> {
  const client = await connect(id, e, f);
  const errors = collectErrors(client, id);
  await client.subscribeAsync(`/devices/${id}/errors`, { qos: 0 });
  return { client, errors };
}

const attach = (c: MqttClient, deviceId: string, payload: string | Buffer = '{}') => publishOutcome(c, `/devices/${deviceId}/attach`, payload);
const detach = (c: MqttClient, deviceId: string) => publishOutcome(c, `/devices/${deviceId}/detach`, '{}');

describe('ASSOCIATION_ONLY', () => {
  it.each([
    ['{}', '{}'],
    ['an empty payload', ''],
    ['an empty token', '{"authorization" : ""}'],
    ['a token, which is ignored', '{"authorization": "not.even.valid"}'],
    ['a payload that is not JSON', 'hello'],
  ])('attaches a bound device with %s', async (_what, payload) => {
    const { client, errors } = await gateway('gw-assoc');
    expect(await attach(client, 'dev-1', payload)).toBe('acked');
    expect(emulator.connections().find((c) => c.deviceId === 'gw-assoc')?.attached).toEqual(['dev-1']);
    expect(errors).toEqual([]);
  });

  it.each([
    ['an unbound device', 'dev-unbound', /not bound/],
    ['an unknown device', 'dev-nobody', /no device/],
    ['a blocked device', 'dev-blocked', /blocked/],
    ['a gateway', 'gw-token', /gateway/],
  ])('refuses %s with GATEWAY_ATTACHMENT_ERROR and no PUBACK; the connection stays up', async (_what, deviceId, why) => {
    const { client, errors } = await gateway('gw-assoc');
    expect(await attach(client, deviceId)).toBe('unacked');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ error_type: 'GATEWAY_ATTACHMENT_ERROR', device_id: deviceId, mqtt_message_info: { message_type: 'PUBLISH', topic: `/devices/${deviceId}/attach` } });
    expect(String(errors[0]!['description'])).toMatch(why);
    expect(client.connected).toBe(true);
    expect(await attach(client, 'dev-1')).toBe('acked');
  });

  it('PUBACKs a repeated attach and the detach of a device that is not attached', async () => {
    const { client, errors } = await gateway('gw-assoc');
    expect(await attach(client, 'dev-1')).toBe('acked');
    expect(await attach(client, 'dev-1')).toBe('acked');
    expect(await detach(client, 'dev-1')).toBe('acked');
    expect(await detach(client, 'dev-1')).toBe('acked');
    expect(await detach(client, 'dev-2')).toBe('acked');
    expect(errors).toEqual([]);
  });
});

describe('DEVICE_AUTH_TOKEN_ONLY', () => {
  it('attaches an unbound device presenting its JWT, in JSON or in the ClearBlade node sample form', async () => {
    const { client, errors } = await gateway('gw-token');
    const jwt = await fleet.jwt('dev-unbound');
    expect(await attach(client, 'dev-unbound', JSON.stringify({ authorization: jwt }))).toBe('acked');
    expect(await detach(client, 'dev-unbound')).toBe('acked');
    expect(await attach(client, 'dev-unbound', `{ 'authorization' : ${jwt} }`)).toBe('acked');
    expect(errors).toEqual([]);
  });

  it.each<[string, string, () => Promise<string>, RegExp]>([
    ['no token', 'dev-1', async () => '{}', /needs the device's JWT/],
    ['an empty token', 'dev-1', async () => '{"authorization": ""}', /needs the device's JWT/],
    ["another device's token", 'dev-1', async () => JSON.stringify({ authorization: await fleet.jwt('dev-2') }), /signature/],
    ['a token for another project', 'dev-1', async () => JSON.stringify({ authorization: await fleet.jwt('dev-1', { aud: 'elsewhere' }) }), /aud/],
    ['an expired token', 'dev-1', async () => JSON.stringify({ authorization: await fleet.jwt('dev-1', { iat: 1_000_000, exp: 1_003_600 }) }), /expired/],
    ['a device without keys', 'dev-keyless', async () => JSON.stringify({ authorization: await fleet.jwt('dev-1') }), /no unexpired credential/],
  ])('refuses %s', async (_what, deviceId, payload, why) => {
    const { client, errors } = await gateway('gw-token');
    expect(await attach(client, deviceId, await payload())).toBe('unacked');
    expect(errors.map((e) => e['error_type'])).toEqual(['GATEWAY_ATTACHMENT_ERROR']);
    expect(String(errors[0]!['description'])).toMatch(why);
  });
});

describe('ASSOCIATION_AND_DEVICE_AUTH_TOKEN and GATEWAY_AUTH_METHOD_UNSPECIFIED', () => {
  it('needs both the binding and the token', async () => {
    const { client, errors } = await gateway('gw-both');
    expect(await attach(client, 'dev-1', '{}')).toBe('unacked');
    expect(await attach(client, 'dev-2', JSON.stringify({ authorization: await fleet.jwt('dev-2') }))).toBe('unacked');
    expect(await attach(client, 'dev-1', JSON.stringify({ authorization: await fleet.jwt('dev-1') }))).toBe('acked');
    expect(errors.map((e) => [e['error_type'], e['device_id']])).toEqual([
      ['GATEWAY_ATTACHMENT_ERROR', 'dev-1'],
      ['GATEWAY_ATTACHMENT_ERROR', 'dev-2'],
    ]);
  });

  it('lets no device attach to a gateway without an auth method', async () => {
    const { client, errors } = await gateway('gw-none');
    expect(await attach(client, 'dev-1')).toBe('unacked');
    expect(errors[0]).toMatchObject({ error_type: 'GATEWAY_ATTACHMENT_ERROR', device_id: 'dev-1' });
  });
});

describe('acting for attached devices', () => {
  it('publishes events and state for an attached device, recording the gateway', async () => {
    const { client } = await gateway('gw-assoc');
    expect(await attach(client, 'dev-2')).toBe('acked');
    expect(await publishOutcome(client, '/devices/dev-2/events/alarms', 'hot')).toBe('acked');
    expect(emulator.registry.events.at(-1)!.attributes).toMatchObject({ deviceId: 'dev-2', subFolder: 'alarms', gatewayId: 'gw-assoc' });
    expect(await publishOutcome(client, '/devices/dev-2/state', 'ok')).toBe('acked');
    expect(Buffer.from(emulator.registry.states(fleet.registryId, 'dev-2')[0]!.binaryData, 'base64').toString()).toBe('ok');
    expect(emulator.registry.getDevice(fleet.registryId, 'dev-2').gatewayConfig.lastAccessedGatewayId).toBe('gw-assoc');
    // Its own events carry no gatewayId.
    expect(await publishOutcome(client, '/devices/gw-assoc/events', 'me')).toBe('acked');
    expect(emulator.registry.events.at(-1)!.attributes.gatewayId).toBeUndefined();
  });

  it('handles a publish pipelined right behind its attach, in order', async () => {
    const { client, errors } = await gateway('gw-token');
    const jwt = await fleet.jwt('dev-2');
    // The token check is asynchronous; the publish must still wait for the attach before it.
    const [attached, published] = await Promise.all([
      attach(client, 'dev-2', JSON.stringify({ authorization: jwt })),
      publishOutcome(client, '/devices/dev-2/events', 'right behind'),
    ]);
    expect([attached, published]).toEqual(['acked', 'acked']);
    expect(errors).toEqual([]);
  });

  it('answers a publish for a device that is not attached with GATEWAY_DEVICE_NOT_FOUND, no PUBACK, connection up', async () => {
    const { client, errors } = await gateway('gw-assoc');
    const before = emulator.registry.events.length;
    expect(await publishOutcome(client, '/devices/dev-1/state', 'orphan')).toBe('unacked');
    expect(errors).toEqual([
      expect.objectContaining({
        error_type: 'GATEWAY_DEVICE_NOT_FOUND',
        device_id: 'dev-1',
        mqtt_message_info: { message_type: 'PUBLISH', topic: '/devices/dev-1/state', packet_id: expect.any(Number) },
      }),
    ]);
    expect((errors[0]!['mqtt_message_info'] as { packet_id: number }).packet_id).toBeGreaterThan(0);
    expect(emulator.registry.events.length).toBe(before);
    expect(client.connected).toBe(true);
  });

  it('answers a subscription for a device that is not attached with 0x80 and GATEWAY_DEVICE_NOT_FOUND', async () => {
    const { client, errors } = await gateway('gw-assoc');
    expect(await subscribeGranted(client, { '/devices/dev-1/config': { qos: 1 } })).toEqual([128]);
    await eventually(() => errors.length === 1);
    expect(errors[0]).toMatchObject({ error_type: 'GATEWAY_DEVICE_NOT_FOUND', mqtt_message_info: { message_type: 'SUBSCRIBE', topic: '/devices/dev-1/config' } });
    expect(await attach(client, 'dev-1')).toBe('acked');
    expect(await subscribeGranted(client, { '/devices/dev-1/config': { qos: 1 }, '/devices/dev-1/commands/#': { qos: 0 } })).toEqual([1, 0]);
  });

  it('answers a malformed device topic with GATEWAY_INVALID_MQTT_TOPIC, connection up', async () => {
    const { client, errors } = await gateway('gw-assoc');
    expect(await publishOutcome(client, '/devices/dev-1/telemetry', 'x')).toBe('unacked');
    expect(errors[0]).toMatchObject({ error_type: 'GATEWAY_INVALID_MQTT_TOPIC', mqtt_message_info: { topic: '/devices/dev-1/telemetry' } });
    expect(client.connected).toBe(true);
  });

  it('stops acting for a device after its detach', async () => {
    const { client, errors } = await gateway('gw-assoc');
    expect(await attach(client, 'dev-1')).toBe('acked');
    await client.subscribeAsync('/devices/dev-1/config', { qos: 0 });
    expect(await detach(client, 'dev-1')).toBe('acked');
    expect(emulator.connections().find((c) => c.deviceId === 'gw-assoc')).toMatchObject({ attached: [], subscriptions: ['/devices/gw-assoc/errors'] });
    expect(await publishOutcome(client, '/devices/dev-1/events', 'late')).toBe('unacked');
    expect(errors.map((e) => e['error_type'])).toEqual(['GATEWAY_DEVICE_NOT_FOUND']);
  });

  it('ends attachments with the connection', async () => {
    const first = await gateway('gw-assoc');
    expect(await attach(first.client, 'dev-1')).toBe('acked');
    await first.client.endAsync();
    const second = await gateway('gw-assoc');
    expect(await publishOutcome(second.client, '/devices/dev-1/events', 'x')).toBe('unacked');
    expect(second.errors[0]).toMatchObject({ error_type: 'GATEWAY_DEVICE_NOT_FOUND' });
  });

  it('detaches a device that updates its state twice within a second, with GATEWAY_DETACHMENT_DEVICE_ERROR', async () => {
    const { client, errors } = await gateway('gw-assoc');
    expect(await attach(client, 'dev-keyless')).toBe('acked');
    expect(await publishOutcome(client, '/devices/dev-keyless/state', 'one')).toBe('acked');
    expect(await publishOutcome(client, '/devices/dev-keyless/state', 'two')).toBe('unacked');
    expect(errors).toEqual([expect.objectContaining({ error_type: 'GATEWAY_DETACHMENT_DEVICE_ERROR', device_id: 'dev-keyless' })]);
    expect(errors[0]).not.toHaveProperty('mqtt_message_info');
    expect(client.connected).toBe(true);
    expect(await publishOutcome(client, '/devices/dev-keyless/events', 'after')).toBe('unacked');
    expect(errors.map((e) => e['error_type'])).toEqual(['GATEWAY_DETACHMENT_DEVICE_ERROR', 'GATEWAY_DEVICE_NOT_FOUND']);
    expect(emulator.registry.states(fleet.registryId, 'dev-keyless').map((s) => Buffer.from(s.binaryData, 'base64').toString())).toEqual(['one']);
  });

  it('detaches a device blocked while attached', async () => {
    const { client, errors } = await gateway('gw-assoc');
    const e = emulator.registry;
    expect(await attach(client, 'dev-2')).toBe('acked');
    e.patchDevice(fleet.registryId, 'dev-2', { blocked: true }, ['blocked']);
    try {
      await eventually(() => errors.length === 1);
      expect(errors[0]).toMatchObject({ error_type: 'GATEWAY_DETACHMENT_DEVICE_ERROR', device_id: 'dev-2' });
    } finally {
      e.patchDevice(fleet.registryId, 'dev-2', { blocked: false }, ['blocked']);
    }
  });
});

it(`attaches at most ${MAX_ATTACHED_PER_GATEWAY} devices to one gateway`, async () => {
  const big = await makeFleet({ gateways: [{ id: 'gw-big' }] });
  const registry = Registry.fromDocument(big.document);
  const ids = Array.from({ length: MAX_ATTACHED_PER_GATEWAY + 1 }, (_, i) => `dev-${String(i).padStart(4, '0')}`);
  for (const id of ids) {
    registry.createDevice(big.registryId, { id });
    registry.bind(big.registryId, 'gw-big', id);
  }
  const e = await startEmulator({ registry, adminPort: null });
  try {
    const { client, errors } = await gateway('gw-big', e, big);
    const outcomes = await Promise.all(ids.slice(0, MAX_ATTACHED_PER_GATEWAY).map((id) => publishOutcome(client, `/devices/${id}/attach`, '', { timeoutMs: 10_000 })));
    expect(outcomes.every((o) => o === 'acked')).toBe(true);
    expect(await attach(client, ids.at(-1)!)).toBe('unacked');
    expect(errors).toEqual([expect.objectContaining({ error_type: 'GATEWAY_ATTACHMENT_ERROR', device_id: ids.at(-1) })]);
    // Making room lets it in.
    expect(await detach(client, ids[0]!)).toBe('acked');
    expect(await attach(client, ids.at(-1)!)).toBe('acked');
  } finally {
    await e.close();
  }
});

describe('parseAttachToken', () => {
  it.each([
    ['{"authorization": "a.b.c"}', 'a.b.c'],
    ['{"authorization" : ""}', undefined],
    ['{}', undefined],
    ['', undefined],
    ["{ 'authorization' : a-b.c_d.e }", 'a-b.c_d.e'],
    ['{"authorization": 42}', undefined],
    ['[1,2]', undefined],
    ['garbage', undefined],
  ])('reads %j as %j', (payload, token) => {
    expect(parseAttachToken(Buffer.from(payload))).toBe(token);
  });
});
