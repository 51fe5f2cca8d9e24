/**
 * Config delivery (docs/protocol.md §2, "Config"): the latest version on every subscribe, each new version
 * after; at QoS 1 resent until PUBACKed, a newer version replacing an unacknowledged older one, the PUBACK recorded.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator } from '../../emulator/index.js';
import {
  BARRIER_FILTER,
  collectMessages,
  makeFleet,
  nextMessage,
  publishOutcome,
  rawConnectPacket,
  rawSession,
  subscribeGranted,
} from '../helpers/emulator-fixtures.js';
import { deviceConnections } from '../helpers/device-connections.js';
import type { Fleet, RawSession } from '../helpers/emulator-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;
const RESEND_MS = 150;

beforeAll(async () => {
  fleet = await makeFleet({
    gateways: [{ id: 'gw-1', bound: ['dev-2'] }],
    devices: [{ id: 'dev-1', config: 'v1 of dev-1' }, { id: 'dev-2', config: 'v1 of dev-2' }, 'dev-3'],
  });
  emulator = await startEmulator({ registry: fleet.document, adminPort: null, configResendMs: RESEND_MS });
});
afterAll(() => emulator.close());

const connected = deviceConnections(() => ({ bridge: emulator, fleet }));

const modify = (deviceId: string, text: string) =>
  emulator.registry.modifyConfig(fleet.registryId, deviceId, Buffer.from(text).toString('base64'));

/** Waits for the bridge to answer a later packet: anything it was going to send before that has arrived. */
async function settle(c: MqttClient): Promise<void> {
  await c.unsubscribeAsync(BARRIER_FILTER);
}

describe('over mqtt.js (which PUBACKs on receipt)', () => {
  it('delivers the latest version at once on subscribe, then each new one, and records the acknowledgement', async () => {
    const c = await connected('dev-1');
    const first = nextMessage(c, '/devices/dev-1/config');
    expect(await subscribeGranted(c, { '/devices/dev-1/config': { qos: 1 } })).toEqual([1]);
    const initial = await first;
    expect(initial).toMatchObject({ qos: 1, dup: false });
    const current = emulator.registry.getDevice(fleet.registryId, 'dev-1').config;
    expect(initial.payload.toString()).toBe(Buffer.from(current.binaryData, 'base64').toString());

    const next = nextMessage(c, '/devices/dev-1/config');
    const written = modify('dev-1', 'v-next');
    expect((await next).payload.toString()).toBe('v-next');
    await settle(c);
    const device = emulator.registry.getDevice(fleet.registryId, 'dev-1');
    expect(device.config.version).toBe(written.version);
    expect(device.config.deviceAckTime).toBeDefined();
    expect(device.lastConfigAckTime).toBe(device.config.deviceAckTime);
    expect(device.lastConfigSendTime).toBeDefined();
    expect(emulator.registry.configVersions(fleet.registryId, 'dev-1')[0]!.deviceAckTime).toBe(device.config.deviceAckTime);
  });

  it('sends each version once at QoS 0, records no acknowledgement, and resends the latest on resubscribe', async () => {
    const c = await connected('dev-3');
    const seen = collectMessages(c);
    await c.subscribeAsync('/devices/dev-3/config', { qos: 0 });
    modify('dev-3', 'q0');
    await new Promise((r) => setTimeout(r, RESEND_MS * 3));
    await settle(c);
    expect(seen.map((m) => [m.payload.toString(), m.qos])).toEqual([
      ['', 0],
      ['q0', 0],
    ]);
    expect(emulator.registry.getDevice(fleet.registryId, 'dev-3').config.deviceAckTime).toBeUndefined();
    await c.subscribeAsync('/devices/dev-3/config', { qos: 0 });
    await settle(c);
    expect(seen.map((m) => m.payload.toString())).toEqual(['', 'q0', 'q0']);
  });

  it('stops after UNSUBSCRIBE', async () => {
    const c = await connected('dev-3');
    const seen = collectMessages(c);
    await c.subscribeAsync('/devices/dev-3/config', { qos: 1 });
    await c.unsubscribeAsync('/devices/dev-3/config');
    modify('dev-3', 'unheard');
    await settle(c);
    expect(seen.map((m) => m.payload.toString())).not.toContain('unheard');
    expect(seen).toHaveLength(1);
  });

  it('delivers the config of an attached device to its gateway, and stops at detach', async () => {
    const c = await connected('gw-1');
    expect(await subscribeGranted(c, { '/devices/dev-2/config': { qos: 1 } })).toEqual([128]);
    expect(await publishOutcome(c, '/devices/dev-2/attach', '{}')).toBe('acked');
    const first = nextMessage(c, '/devices/dev-2/config');
    expect(await subscribeGranted(c, { '/devices/dev-2/config': { qos: 1 } })).toEqual([1]);
    expect((await first).payload.toString()).toBe(Buffer.from(emulator.registry.getDevice(fleet.registryId, 'dev-2').config.binaryData, 'base64').toString());
    const seen = collectMessages(c);
    modify('dev-2', 'for the gateway');
    await settle(c);
    expect(seen.map((m) => m.payload.toString())).toEqual(['for the gateway']);
    expect(await publishOutcome(c, '/devices/dev-2/detach', '{}')).toBe('acked');
    modify('dev-2', 'after detach');
    await settle(c);
    expect(seen.map((m) => m.payload.toString())).toEqual(['for the gateway']);
  });
});

describe('over a raw session that withholds its PUBACKs', () => {
  let raw: RawSession;

  async function subscribeRaw(deviceId: string): Promise<IPublishPacket> {
    raw = await rawSession(emulator);
    raw.send(await rawConnectPacket(fleet, deviceId));
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `/devices/${deviceId}/config`, qos: 1 }] });
    expect(await raw.next()).toMatchObject({ cmd: 'suback', granted: [1] });
    return publish(await raw.next());
  }

  function publish(p: Packet): IPublishPacket {
    expect(p.cmd).toBe('publish');
    return p as IPublishPacket;
  }

  afterEach(() => raw?.end());

  it('resends the same packet with DUP until the PUBACK, then records it', async () => {
    const first = await subscribeRaw('dev-1');
    expect(first).toMatchObject({ qos: 1, dup: false });
    const again = publish(await raw.next(RESEND_MS * 4));
    expect(again).toMatchObject({ qos: 1, dup: true, messageId: first.messageId, topic: '/devices/dev-1/config' });
    expect(Buffer.from(again.payload)).toEqual(Buffer.from(first.payload));
    const ackedBefore = emulator.registry.getDevice(fleet.registryId, 'dev-1').config.deviceAckTime;
    raw.send({ cmd: 'puback', messageId: first.messageId! });
    // Drain what was already in flight, then nothing more comes: the PINGRESP is next.
    raw.send({ cmd: 'pingreq' });
    let p = await raw.next();
    while (p.cmd === 'publish') p = await raw.next();
    expect(p.cmd).toBe('pingresp');
    await expect(raw.next(RESEND_MS * 3)).rejects.toThrow(/no packet/);
    const device = emulator.registry.getDevice(fleet.registryId, 'dev-1');
    expect(device.config.deviceAckTime).toBeDefined();
    expect(device.config.deviceAckTime).not.toBe(ackedBefore);
  });

  it('replaces an unacknowledged version by a newer one and resends only the newer', async () => {
    const first = await subscribeRaw('dev-3');
    modify('dev-3', 'newer');
    const newer = publish(await raw.next());
    expect(String(newer.payload)).toBe('newer');
    expect(newer.messageId).not.toBe(first.messageId);
    const resent = publish(await raw.next(RESEND_MS * 4));
    expect(resent).toMatchObject({ dup: true, messageId: newer.messageId });
    expect(String(resent.payload)).toBe('newer');
    // A late PUBACK for the replaced packet acknowledges nothing.
    raw.send({ cmd: 'puback', messageId: first.messageId! });
    const afterLateAck = publish(await raw.next(RESEND_MS * 4));
    expect(afterLateAck.messageId).toBe(newer.messageId);
    const device = emulator.registry.getDevice(fleet.registryId, 'dev-3');
    expect(emulator.registry.configVersions(fleet.registryId, 'dev-3').find((v) => v.version === device.config.version)?.deviceAckTime).toBeUndefined();
    raw.send({ cmd: 'puback', messageId: newer.messageId! });
    raw.send({ cmd: 'pingreq' });
    let p = await raw.next();
    while (p.cmd === 'publish') p = await raw.next();
    expect(emulator.registry.getDevice(fleet.registryId, 'dev-3').config.deviceAckTime).toBeDefined();
  });
});
