/**
 * MQTT 5.0 on the emulated bridge (the `mqtt5` option): the same topics and rules as 3.1.1, with reason codes where
 * 3.1.1 has silence. Driven by mqtt.js speaking 5.0, by mosquitto_pub -V mqttv5, and by raw packets for the exact
 * bytes; without the option a 5.0 CONNECT gets CONNACK 1 in 3.1.1 form.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator } from '../../emulator/index.js';
import { collectErrors, connackCode, connectDevice, makeFleet, nextMessage, publishOutcome, rawConnectPacket, rawSession } from '../helpers/emulator-fixtures.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';
import { describeWithTools } from '../helpers/interop-tools.js';

const GW = 'gw-five';
const BOUND = ['dev-a', 'dev-b', 'dev-c'];
const UNBOUND = 'dev-loose';
const V5 = { protocolVersion: 5 } as const;

let fleet: Fleet;
let on: Emulator;
let off: Emulator;

beforeAll(async () => {
  fleet = await makeFleet({
    gateways: [{ id: GW, bound: BOUND }],
    devices: [...BOUND.map((id) => ({ id, keyless: true, config: `{"for":"${id}"}` })), { id: UNBOUND, keyless: true }, 'dev-own'],
  });
  [on, off] = await Promise.all([
    startEmulator({ registry: fleet.document, adminPort: null, mqtt5: true }),
    startEmulator({ registry: fleet.document, adminPort: null }),
  ]);
});
afterAll(async () => {
  await Promise.all([on.close(), off.close()]);
});

/** A QoS 1 publish's PUBACK as mqtt.js received it (reason code and properties), or the error it reported. */
function pubackOf(client: Awaited<ReturnType<typeof connectDevice>>, topic: string, payload: string): Promise<{ reasonCode: number; reasonString?: string }> {
  return new Promise((resolve, reject) => {
    let id: number | undefined;
    const onPacket = (p: Packet): void => {
      if (p.cmd !== 'puback' || id === undefined || p.messageId !== id) return;
      client.off('packetreceive', onPacket);
      resolve({ reasonCode: p.reasonCode ?? 0, ...(p.properties?.reasonString === undefined ? {} : { reasonString: p.properties.reasonString }) });
    };
    client.on('packetreceive', onPacket);
    client.on('packetsend', (p: Packet) => {
      if (p.cmd === 'publish' && (p as IPublishPacket).topic === topic && id === undefined) id = p.messageId;
    });
    client.publish(topic, payload, { qos: 1 }, () => {});
    setTimeout(() => reject(new Error(`no PUBACK for ${topic}`)), 3_000).unref();
  });
}

/** A raw 5.0 session of the gateway, connected and subscribed to its errors topic. */
async function gatewayHearingErrors(emulator: Emulator): Promise<Awaited<ReturnType<typeof rawSession>>> {
  const raw = await rawSession(emulator, 5);
  raw.send(await rawConnectPacket(fleet, GW, { protocolVersion: 5 }));
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `/devices/${GW}/errors`, qos: 0, nl: false, rap: false, rh: 0 }] });
  expect(await raw.next()).toMatchObject({ cmd: 'connack', reasonCode: 0 });
  expect(await raw.next()).toMatchObject({ cmd: 'suback', granted: [0] });
  return raw;
}

describe('with the option off (the default)', () => {
  it('refuses a 5.0 CONNECT with CONNACK 1, which mqtt.js reports as an unsupported protocol version', async () => {
    const code = await connackCode(off, fleet, GW, V5);
    // The 3.1.1 answer read by a 5.0 client: reason code 1 is no 5.0 code, and mqtt.js reports it as it came.
    expect(code).toBe(1);
  });

  it('still serves 3.1.1', async () => {
    expect(await connackCode(off, fleet, GW)).toBe(0);
  });
});

describe('with mqtt5: true, through mqtt.js speaking 5.0', () => {
  it('accepts the CONNECT, grants the errors topic at QoS 0, attaches and records an event', async () => {
    const gw = await connectDevice(on, fleet, GW, V5);
    try {
      const granted = await gw.subscribeAsync({ [`/devices/${GW}/errors`]: { qos: 1 } });
      expect(granted.map((g) => g.qos)).toEqual([0]);
      expect(await pubackOf(gw, '/devices/dev-a/attach', '{}')).toEqual({ reasonCode: 0 });
      expect(await pubackOf(gw, '/devices/dev-a/events/five', 'hello 5')).toEqual({ reasonCode: 0 });
      const event = on.registry.events.at(-1)!;
      expect(event.attributes).toMatchObject({ deviceId: 'dev-a', subFolder: 'five', gatewayId: GW });
      expect(Buffer.from(event.data, 'base64').toString()).toBe('hello 5');
    } finally {
      await gw.endAsync();
    }
  });

  it("answers a device it did not attach with PUBACK 0x87 and a reason, the error on the errors topic too, and the connection stays", async () => {
    const gw = await connectDevice(on, fleet, GW, V5);
    try {
      const errors = collectErrors(gw, GW);
      await gw.subscribeAsync({ [`/devices/${GW}/errors`]: { qos: 0 } });
      const before = on.registry.events.length;
      const answer = await pubackOf(gw, '/devices/dev-b/events', 'not attached');
      expect(answer.reasonCode).toBe(0x87);
      expect(answer.reasonString).toBe(`Device 'dev-b' is not attached to gateway '${GW}'.`);
      expect(on.registry.events.length).toBe(before);
      // The errors-topic report follows the PUBACK, ahead of the answer to the next packet.
      await gw.unsubscribeAsync('/devices/probe/none');
      expect(errors.map((e) => e.error_type)).toEqual(['GATEWAY_DEVICE_NOT_FOUND']);
      expect(gw.connected).toBe(true);
      expect(await pubackOf(gw, '/devices/dev-b/attach', '{}')).toEqual({ reasonCode: 0 });
      expect(await pubackOf(gw, '/devices/dev-b/events', 'attached now')).toEqual({ reasonCode: 0 });
    } finally {
      await gw.endAsync();
    }
  });

  it('answers a refused attach with 0x87 even without an errors subscription, where 3.1.1 gets nothing', async () => {
    const gw = await connectDevice(on, fleet, GW, V5);
    try {
      const answer = await pubackOf(gw, `/devices/${UNBOUND}/attach`, '{}');
      expect(answer.reasonCode).toBe(0x87);
      expect(answer.reasonString).toContain('not bound to the gateway');
    } finally {
      await gw.endAsync();
    }
  });

  it('answers a state over 1/s, which detaches the device, with 0x97 Quota exceeded', async () => {
    const gw = await connectDevice(on, fleet, GW, V5);
    try {
      await gw.subscribeAsync({ [`/devices/${GW}/errors`]: { qos: 0 } });
      expect(await pubackOf(gw, '/devices/dev-c/attach', '{}')).toEqual({ reasonCode: 0 });
      expect(await pubackOf(gw, '/devices/dev-c/state', 's1')).toEqual({ reasonCode: 0 });
      const answer = await pubackOf(gw, '/devices/dev-c/state', 's2');
      expect(answer.reasonCode).toBe(0x97);
      expect(answer.reasonString).toContain('dev-c was detached');
      expect((await pubackOf(gw, '/devices/dev-c/events', 'after')).reasonCode).toBe(0x87);
    } finally {
      await gw.endAsync();
    }
  });

  it('delivers the config on subscribe, as a 5.0 PUBLISH', async () => {
    const gw = await connectDevice(on, fleet, GW, V5);
    try {
      await pubackOf(gw, '/devices/dev-a/attach', '{}');
      const config = nextMessage(gw, '/devices/dev-a/config');
      await gw.subscribeAsync({ '/devices/dev-a/config': { qos: 0 } });
      expect((await config).payload.toString()).toBe('{"for":"dev-a"}');
    } finally {
      await gw.endAsync();
    }
  });

  it('refuses a bad JWT with reason code 0x86 (bad user name or password, the 5.0 twin of CONNACK 4)', async () => {
    expect(await connackCode(on, fleet, GW, { ...V5, password: Buffer.from('not-a-jwt') })).toBe(0x86);
  });

  it('still serves 3.1.1 side by side, with no PUBACK for a device not attached', async () => {
    const gw = await connectDevice(on, fleet, GW);
    try {
      await gw.subscribeAsync({ [`/devices/${GW}/errors`]: { qos: 0 } });
      const error = nextMessage(gw, `/devices/${GW}/errors`);
      expect(await publishOutcome(gw, '/devices/dev-b/events', 'x')).toBe('unacked');
      expect(JSON.parse((await error).payload.toString())).toMatchObject({ error_type: 'GATEWAY_DEVICE_NOT_FOUND' });
    } finally {
      // The unanswered publish would hold a graceful end forever.
      await gw.endAsync(true);
    }
  });
});

describe('with mqtt5: true, the exact packets', () => {
  it('refuses a topic the client may not subscribe to with 0x87, answers UNSUBSCRIBE with a code per topic', async () => {
    const raw = await rawSession(on, 5);
    try {
      raw.send(await rawConnectPacket(fleet, GW, { protocolVersion: 5 }));
      expect(await raw.next()).toMatchObject({ cmd: 'connack', reasonCode: 0, properties: { maximumQoS: 1 } });
      raw.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: `/devices/${GW}/errors`, qos: 0, nl: false, rap: false, rh: 0 }, { topic: '/devices/dev-a/config', qos: 1, nl: false, rap: false, rh: 0 }] });
      expect(await raw.next()).toMatchObject({ cmd: 'suback', messageId: 3, granted: [0, 0x87] });
      raw.send({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: [`/devices/${GW}/errors`, '/devices/dev-a/commands/#'] });
      expect(await raw.next()).toMatchObject({ cmd: 'unsuback', messageId: 4, granted: [0, 0] });
    } finally {
      raw.end();
    }
  });

  it('sends the refusing PUBACK first, then the errors-topic report, then the answer to the next packet', async () => {
    const raw = await gatewayHearingErrors(on);
    try {
      raw.sendTogether(
        { cmd: 'publish', topic: '/devices/dev-c/state', payload: Buffer.from('s'), qos: 1, messageId: 9, retain: false, dup: false },
        { cmd: 'pingreq' },
      );
      const puback = await raw.next();
      expect(puback).toMatchObject({ cmd: 'puback', messageId: 9, reasonCode: 0x87 });
      expect((puback as { properties?: { reasonString?: string } }).properties?.reasonString).toContain("'dev-c' is not attached");
      const report = await raw.next();
      expect(report).toMatchObject({ cmd: 'publish', topic: `/devices/${GW}/errors` });
      expect(JSON.parse((report as IPublishPacket).payload.toString())).toMatchObject({ error_type: 'GATEWAY_DEVICE_NOT_FOUND', mqtt_message_info: { packet_id: 9 } });
      expect(await raw.next()).toMatchObject({ cmd: 'pingresp' });
    } finally {
      raw.end();
    }
  });

  it('refuses a Will with 0x83 (implementation specific), where 3.1.1 gets CONNACK 2', async () => {
    const raw = await rawSession(on, 5);
    raw.send(await rawConnectPacket(fleet, GW, { protocolVersion: 5, will: { topic: `/devices/${GW}/state`, payload: Buffer.from('gone'), qos: 0, retain: false } }));
    expect(await raw.next()).toMatchObject({ cmd: 'connack', reasonCode: 0x83 });
    await raw.closed;
  });
});

describe('with mqtt5 and ackFailedPublish (a bridge that acknowledges before it knows)', () => {
  it('answers a device it did not attach with a plain Success PUBACK, the error following: no reason code to give', async () => {
    const acking = await startEmulator({ registry: fleet.document, adminPort: null, mqtt5: true, ackFailedPublish: true });
    const raw = await gatewayHearingErrors(acking);
    try {
      raw.send({ cmd: 'publish', topic: '/devices/dev-b/events', payload: Buffer.from('e'), qos: 1, messageId: 5, retain: false, dup: false });
      const puback = await raw.next();
      expect(puback).toMatchObject({ cmd: 'puback', messageId: 5 });
      expect((puback as { reasonCode?: number }).reasonCode ?? 0).toBe(0);
      expect(await raw.next()).toMatchObject({ cmd: 'publish', topic: `/devices/${GW}/errors` });
      raw.send({ cmd: 'pingreq' });
      // Exactly one answer: the next packet is the PINGRESP, not a second PUBACK.
      expect(await raw.next()).toMatchObject({ cmd: 'pingresp' });
    } finally {
      raw.end();
      await acking.close();
    }
  });
});

describeWithTools('mosquitto_pub -V mqttv5 against the emulator', ['mosquitto'], () => {
  function publish(emulator: Emulator, password: string, topic: string): Promise<{ code: number; stderr: string }> {
    const args = ['-h', '127.0.0.1', '-p', String(emulator.port), '--cafile', emulator.caFile!, '-V', 'mqttv5', '-i', fleet.clientId('dev-own'), '-u', 'unused', '-P', password, '-q', '1', '-t', topic, '-m', 'from mosquitto 5'];
    return new Promise((resolve) => {
      execFile('mosquitto_pub', args, { timeout: 10_000 }, (error, _stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stderr }));
    });
  }

  it('publishes a QoS 1 event over 5.0 that the bridge records', async () => {
    const result = await publish(on, await fleet.jwt('dev-own'), '/devices/dev-own/events/mosq5');
    expect(result).toMatchObject({ code: 0 });
    expect(on.registry.events.at(-1)).toMatchObject({ attributes: { deviceId: 'dev-own', subFolder: 'mosq5' } });
  });

  it('is refused with the option off, and says so', async () => {
    const result = await publish(off, await fleet.jwt('dev-own'), '/devices/dev-own/events/mosq5');
    expect(result.code).not.toBe(0);
    expect(result.stderr.toLowerCase()).toMatch(/protocol|version/);
  });
});
