/**
 * `ackFailedPublish`: a telemetry PUBLISH the bridge refuses for its device is PUBACKed first and the error follows
 * on the errors topic, as a bridge that acknowledges on hand-off would. Without the option the refusal is the error
 * alone. (A failed attach, acknowledged only with `ackFailedAttach` and only to a subscribed gateway, is in
 * errors-topic.test.ts.)
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import type { Emulator } from '../../emulator/index.js';
import { makeFleet, rawConnectPacket, rawSession } from '../helpers/emulator-fixtures.js';
import type { Fleet, RawSession } from '../helpers/emulator-fixtures.js';
import { variantEmulators } from '../helpers/variant-emulators.js';

let fleet: Fleet;
beforeAll(async () => {
  fleet = await makeFleet({ gateways: [{ id: 'gw-1', bound: ['dev-1', 'dev-2'] }], devices: ['dev-1', 'dev-2'] });
});

const { start, track } = variantEmulators(() => fleet.document);

/** gw-1 connected over a raw session, subscribed to its errors topic unless told not to. */
async function gateway(e: Emulator, subscribeErrors = true): Promise<RawSession> {
  const raw = track(await rawSession(e));
  raw.send(await rawConnectPacket(fleet, 'gw-1'));
  expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
  if (subscribeErrors) {
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '/devices/gw-1/errors', qos: 0 }] });
    expect(await raw.next()).toMatchObject({ cmd: 'suback', granted: [0] });
  }
  return raw;
}

const publish = (topic: string, messageId: number, text = 'x'): Packet => ({
  cmd: 'publish', topic, payload: Buffer.from(text), qos: 1, retain: false, dup: false, messageId,
});

function errorOf(p: Packet): Record<string, unknown> {
  expect(p).toMatchObject({ cmd: 'publish', topic: '/devices/gw-1/errors', qos: 0 });
  return JSON.parse(String((p as IPublishPacket).payload)) as Record<string, unknown>;
}

describe('ackFailedPublish off (the default)', () => {
  it('answers a publish for an unattached device with the error alone', async () => {
    const raw = await gateway(await start({}));
    raw.send(publish('/devices/dev-1/events', 7));
    expect(errorOf(await raw.next())).toMatchObject({ error_type: 'GATEWAY_DEVICE_NOT_FOUND', device_id: 'dev-1' });
    raw.send({ cmd: 'pingreq' });
    expect(await raw.next()).toMatchObject({ cmd: 'pingresp' });
  });
});

describe('ackFailedPublish on', () => {
  let e: Emulator;
  beforeAll(async () => {
    e = await start({ ackFailedPublish: true });
  });

  it('PUBACKs a publish for an unattached device, then sends GATEWAY_DEVICE_NOT_FOUND naming its packet', async () => {
    const raw = await gateway(e);
    const before = e.registry.events.length;
    raw.send(publish('/devices/dev-1/events', 7));
    expect(await raw.next()).toEqual(expect.objectContaining({ cmd: 'puback', messageId: 7 }));
    expect(errorOf(await raw.next())).toMatchObject({
      error_type: 'GATEWAY_DEVICE_NOT_FOUND',
      device_id: 'dev-1',
      mqtt_message_info: { message_type: 'PUBLISH', topic: '/devices/dev-1/events', packet_id: 7 },
    });
    // Acknowledged, and still not recorded: the PUBACK says nothing about delivery.
    expect(e.registry.events.length).toBe(before);
  });

  it('PUBACKs a state over 1/s, then detaches its device with GATEWAY_DETACHMENT_DEVICE_ERROR', async () => {
    const raw = await gateway(e);
    raw.send(publish('/devices/dev-2/attach', 2, '{}'));
    expect(await raw.next()).toMatchObject({ cmd: 'puback', messageId: 2 });
    raw.send(publish('/devices/dev-2/state', 3, 'first'));
    expect(await raw.next()).toMatchObject({ cmd: 'puback', messageId: 3 });
    raw.send(publish('/devices/dev-2/state', 4, 'too soon'));
    expect(await raw.next()).toMatchObject({ cmd: 'puback', messageId: 4 });
    expect(errorOf(await raw.next())).toMatchObject({ error_type: 'GATEWAY_DETACHMENT_DEVICE_ERROR', device_id: 'dev-2' });
    expect(e.registry.states(fleet.registryId, 'dev-2').map((s) => Buffer.from(s.binaryData, 'base64').toString())).toEqual(['first']);
    expect(e.connections()[0]?.attached).toEqual([]);
    // What follows for the detached device is a failed publish too: PUBACK, then GATEWAY_DEVICE_NOT_FOUND.
    raw.send(publish('/devices/dev-2/events', 5));
    expect(await raw.next()).toMatchObject({ cmd: 'puback', messageId: 5 });
    expect(errorOf(await raw.next())).toMatchObject({ error_type: 'GATEWAY_DEVICE_NOT_FOUND', device_id: 'dev-2' });
  });

  it('PUBACKs it to a gateway not subscribed to its errors topic too, the error only recorded', async () => {
    const raw = await gateway(e, false);
    const before = e.registry.errors.length;
    raw.send(publish('/devices/dev-1/state', 9));
    expect(await raw.next()).toMatchObject({ cmd: 'puback', messageId: 9 });
    expect(e.registry.errors.slice(before)).toEqual([
      expect.objectContaining({ gatewayId: 'gw-1', delivered: false, payload: expect.objectContaining({ error_type: 'GATEWAY_DEVICE_NOT_FOUND' }) }),
    ]);
  });

  it('still lets withholdPuback keep the PUBACK back', async () => {
    const raw = await gateway(e);
    e.setFaults({ withholdPuback: ['/devices/dev-1/events'] });
    try {
      raw.send(publish('/devices/dev-1/events', 11));
      expect(errorOf(await raw.next())).toMatchObject({ error_type: 'GATEWAY_DEVICE_NOT_FOUND' });
      raw.send({ cmd: 'pingreq' });
      expect(await raw.next()).toMatchObject({ cmd: 'pingresp' });
    } finally {
      e.clearFaults();
    }
  });
});
