/**
 * Packet-level rules of a connection (docs/protocol.md §1.6, §2): QoS 2, topics outside the documented set and
 * topic names holding an MQTT wildcard close the connection, subscriptions are granted QoS 0 or 1 or refused with 0x80, every packet is a heartbeat.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator } from '../../emulator/index.js';
import { closed, makeFleet, publishOutcome, rawConnectPacket, rawSession, subscribeGranted } from '../helpers/emulator-fixtures.js';
import type { RawSession } from '../helpers/emulator-fixtures.js';
import { deviceConnections } from '../helpers/device-connections.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;

beforeAll(async () => {
  fleet = await makeFleet({ gateways: [{ id: 'gw-p', bound: ['pump+x', 'dev-a'] }], devices: ['dev-a', 'dev-b', 'pump+x'] });
  emulator = await startEmulator({ registry: fleet.document, adminPort: null });
});
afterAll(() => emulator.close());

const connect = deviceConnections(() => ({ bridge: emulator, fleet }));
const connected = (id = 'dev-a'): Promise<MqttClient> => connect(id);

describe('publishing', () => {
  it.each([
    ['a QoS 2 publish', '/devices/dev-a/events', 2],
    ['a publish to a Pub/Sub topic name', 'projects/test-project/topics/telemetry', 1],
    ['a publish without the leading slash', 'devices/dev-a/events', 1],
    ['a publish to its own config topic', '/devices/dev-a/config', 1],
    ['a publish to its commands topic', '/devices/dev-a/commands', 1],
    ['a publish to a malformed device topic', '/devices/dev-a/telemetry', 1],
    ['a publish with an invalid subfolder', '/devices/dev-a/events/a//b', 1],
  ] as const)('%s closes the connection', async (_what, topic, qos) => {
    const c = await connected();
    const before = emulator.registry.events.length;
    expect(await publishOutcome(c, topic, 'x', { qos })).toBe('closed');
    expect(emulator.registry.events.length).toBe(before);
  });

  it('an attach from a device that is not a gateway closes the connection', async () => {
    const c = await connected();
    expect(await publishOutcome(c, '/devices/dev-b/attach', '{}')).toBe('closed');
    expect(emulator.registry.getDevice(fleet.registryId, 'dev-a').lastErrorStatus?.message).toMatch(/not a gateway/);
  });
});

describe('a topic name holding a wildcard (MQTT 3.1.1 §4.7.1, MQTT-3.3.2-2)', () => {
  /** A raw session of a fleet device, connected: a client library would refuse to publish these topics. */
  async function rawConnected(deviceId: string): Promise<RawSession> {
    const raw = await rawSession(emulator);
    raw.send(await rawConnectPacket(fleet, deviceId));
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
    return raw;
  }

  it('IoT Core allows the device pump+x, which connects under its own client ID', () => {
    expect(emulator.registry.getDevice(fleet.registryId, 'pump+x').id).toBe('pump+x');
  });

  it.each([
    ['pump+x on its own events topic', 'pump+x', '/devices/pump+x/events'],
    ['pump+x on its own state topic', 'pump+x', '/devices/pump+x/state'],
    ['a gateway attaching pump+x', 'gw-p', '/devices/pump+x/attach'],
    ['a gateway with + in a subfolder', 'gw-p', '/devices/dev-a/events/a+b'],
    ['a gateway with # as a subfolder', 'gw-p', '/devices/dev-a/events/#'],
  ])('%s: no PUBACK, nothing recorded, the connection closed', async (_what, deviceId, topic) => {
    const raw = await rawConnected(deviceId);
    const before = emulator.registry.events.length;
    raw.send({ cmd: 'publish', topic, payload: Buffer.from('{}'), qos: 1, messageId: 7, retain: false, dup: false });
    await expect(raw.next()).rejects.toThrow(/closed/);
    await raw.closed;
    expect(emulator.registry.events.length).toBe(before);
    expect(emulator.connections().find((c) => c.deviceId === deviceId)).toBeUndefined();
    expect(emulator.registry.getDevice(fleet.registryId, deviceId).lastErrorStatus?.message).toMatch(/must not contain the wildcards \+ or #/);
    expect(emulator.registry.traffic.errorsOf(deviceId)).toEqual([]);
  });
});

describe('subscribing', () => {
  it('grants QoS 1 for a QoS 2 request, and QoS 0 or 1 as asked otherwise', async () => {
    const c = await connected();
    expect(await subscribeGranted(c, { '/devices/dev-a/config': { qos: 2 } })).toEqual([1]);
    expect(await subscribeGranted(c, { '/devices/dev-a/commands/#': { qos: 2 } })).toEqual([1]);
    expect(await subscribeGranted(c, { '/devices/dev-a/config': { qos: 0 } })).toEqual([0]);
  });

  it('refuses, with 0x80 and the connection up, what a device may not subscribe to', async () => {
    const c = await connected();
    const granted = await subscribeGranted(c, {
      '/devices/dev-b/config': { qos: 1 },
      '/devices/dev-a/events': { qos: 1 },
      '/devices/dev-a/state': { qos: 0 },
      '/devices/dev-a/errors': { qos: 0 },
      '/devices/dev-a/config': { qos: 1 },
    });
    expect(granted).toEqual([128, 128, 128, 128, 1]);
    expect(c.connected).toBe(true);
    expect(await publishOutcome(c, '/devices/dev-a/events', 'still here')).toBe('acked');
  });

  it.each(['#', '/devices/+/config', 'projects/test-project/topics/x'])('closes the connection on a subscription to %s', async (topic) => {
    const c = await connected();
    c.subscribe(topic, { qos: 0 });
    await closed(c);
  });

  it('answers UNSUBSCRIBE with UNSUBACK', async () => {
    const c = await connected();
    await c.subscribeAsync('/devices/dev-a/commands/#', { qos: 0 });
    await expect(c.unsubscribeAsync('/devices/dev-a/commands/#')).resolves.toBeDefined();
    expect(emulator.connections().find((x) => x.deviceId === 'dev-a')?.subscriptions).toEqual([]);
  });
});

describe('heartbeat and stray packets', () => {
  it('sets lastHeartbeatTime on every packet, PINGREQ included', async () => {
    const raw = await rawSession(emulator);
    raw.send(await rawConnectPacket(fleet, 'dev-b'));
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
    await new Promise((r) => setTimeout(r, 20));
    const before = emulator.registry.getDevice(fleet.registryId, 'dev-b').lastHeartbeatTime;
    await new Promise((r) => setTimeout(r, 20));
    raw.send({ cmd: 'pingreq' });
    expect(await raw.next()).toMatchObject({ cmd: 'pingresp' });
    const after = emulator.registry.getDevice(fleet.registryId, 'dev-b').lastHeartbeatTime;
    expect(after).toBeDefined();
    expect(Date.parse(after!)).toBeGreaterThan(Date.parse(before ?? '1970-01-01T00:00:00Z'));
    raw.end();
  });

  it('closes the connection of a device sending PUBREL (the bridge has no QoS 2)', async () => {
    const raw = await rawSession(emulator);
    raw.send(await rawConnectPacket(fleet, 'dev-b'));
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
    raw.send({ cmd: 'pubrel', messageId: 9 });
    await raw.closed;
  });
});
