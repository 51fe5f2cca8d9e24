/**
 * Telemetry and state from a device connected by itself (docs/protocol.md §2, §4): recorded before the PUBACK,
 * routed by eventNotificationConfigs, size limits, the state rate.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_EVENT_BYTES, MAX_STATE_BYTES } from '../../lib/iotcore/limits.js';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator } from '../../emulator/index.js';
import { closed, connectDevice, makeFleet, publishOutcome } from '../helpers/emulator-fixtures.js';
import { deviceConnections } from '../helpers/device-connections.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;

beforeAll(async () => {
  fleet = await makeFleet({
    devices: ['dev-a', 'dev-b', 'dev-c'],
    registry: {
      eventNotificationConfigs: [
        { subfolderMatches: 'alarms', pubsubTopicName: 'projects/test-project/topics/alarms' },
        { pubsubTopicName: 'projects/test-project/topics/telemetry' },
      ],
    },
  });
  emulator = await startEmulator({ registry: fleet.document, adminPort: null });
});
afterAll(() => emulator.close());

const connected = deviceConnections(() => ({ bridge: emulator, fleet }));

describe('events', () => {
  it('records an event as the registry topic would carry it, then PUBACKs', async () => {
    const c = await connected('dev-a');
    const before = emulator.registry.events.length;
    const outcome = await publishOutcome(c, '/devices/dev-a/events', Buffer.from([0, 1, 2, 255]));
    expect(outcome).toBe('acked');
    const msg = emulator.registry.events.at(-1)!;
    expect(emulator.registry.events.length).toBe(before + 1);
    expect(msg.topic).toBe('projects/test-project/topics/telemetry');
    expect(Buffer.from(msg.data, 'base64')).toEqual(Buffer.from([0, 1, 2, 255]));
    const device = emulator.registry.getDevice(fleet.registryId, 'dev-a');
    expect(msg.attributes).toEqual({
      deviceId: 'dev-a',
      deviceNumId: device.numId,
      deviceRegistryId: fleet.registryId,
      deviceRegistryLocation: fleet.location,
      projectId: fleet.project,
      subFolder: '',
    });
    expect(device.lastEventTime).toBe(msg.publishTime);
  });

  it('routes by exact subfolder match, else to the default topic, keeping the subfolder verbatim', async () => {
    const c = await connected('dev-a');
    expect(await publishOutcome(c, '/devices/dev-a/events/alarms', 'x')).toBe('acked');
    expect(emulator.registry.events.at(-1)).toMatchObject({ topic: 'projects/test-project/topics/alarms', attributes: { subFolder: 'alarms' } });
    expect(await publishOutcome(c, '/devices/dev-a/events/alarms/high', 'y')).toBe('acked');
    expect(emulator.registry.events.at(-1)).toMatchObject({ topic: 'projects/test-project/topics/telemetry', attributes: { subFolder: 'alarms/high' } });
  });

  it('records QoS 0 events too, and treats a retained publish as not retained', async () => {
    const c = await connected('dev-a');
    const before = emulator.registry.events.length;
    c.publish('/devices/dev-a/events', 'fire-and-forget', { qos: 0 });
    expect(await publishOutcome(c, '/devices/dev-a/events', 'kept?', { retain: true })).toBe('acked');
    expect(emulator.registry.events.slice(before).map((m) => Buffer.from(m.data, 'base64').toString())).toEqual(['fire-and-forget', 'kept?']);
  });

  it('accepts 256 KB and closes the connection for one byte more, with lastErrorStatus', async () => {
    const c = await connected('dev-b');
    expect(await publishOutcome(c, '/devices/dev-b/events', Buffer.alloc(MAX_EVENT_BYTES, 1))).toBe('acked');
    const before = emulator.registry.events.length;
    expect(await publishOutcome(c, '/devices/dev-b/events', Buffer.alloc(MAX_EVENT_BYTES + 1, 1))).toBe('closed');
    expect(emulator.registry.events.length).toBe(before);
    expect(emulator.registry.getDevice(fleet.registryId, 'dev-b').lastErrorStatus).toMatchObject({ code: 3 });
  });

  it('closes the connection without PUBACK when no Pub/Sub topic matches, and sets lastErrorStatus', async () => {
    const noDefault = await makeFleet({
      devices: ['dev-n'],
      registry: { eventNotificationConfigs: [{ subfolderMatches: 'alarms', pubsubTopicName: 'projects/test-project/topics/alarms' }] },
    });
    const e = await startEmulator({ registry: noDefault.document, adminPort: null });
    try {
      const c = await connectDevice(e, noDefault, 'dev-n');
      expect(await publishOutcome(c, '/devices/dev-n/events/alarms', 'routed')).toBe('acked');
      expect(await publishOutcome(c, '/devices/dev-n/events', 'nowhere')).toBe('closed');
      expect(e.registry.events.map((m) => Buffer.from(m.data, 'base64').toString())).toEqual(['routed']);
      expect(e.registry.getDevice(noDefault.registryId, 'dev-n').lastErrorStatus).toMatchObject({ code: 9 });
    } finally {
      await e.close();
    }
  });
});

describe('state', () => {
  it('stores state and PUBACKs; the size limit is 64 KB', async () => {
    const c = await connected('dev-c');
    expect(await publishOutcome(c, '/devices/dev-c/state', Buffer.alloc(MAX_STATE_BYTES, 7))).toBe('acked');
    const stored = emulator.registry.states(fleet.registryId, 'dev-c');
    expect(Buffer.from(stored[0]!.binaryData, 'base64').length).toBe(MAX_STATE_BYTES);
    expect(emulator.registry.getDevice(fleet.registryId, 'dev-c').lastStateTime).toBe(stored[0]!.updateTime);
    await new Promise((r) => setTimeout(r, 1_050));
    expect(await publishOutcome(c, '/devices/dev-c/state', Buffer.alloc(MAX_STATE_BYTES + 1))).toBe('closed');
    expect(emulator.registry.states(fleet.registryId, 'dev-c')).toHaveLength(1);
  });

  it('closes the connection of a device updating its state twice within a second', async () => {
    const c = await connected('dev-a');
    const before = emulator.registry.states(fleet.registryId, 'dev-a').length;
    expect(await publishOutcome(c, '/devices/dev-a/state', 'one')).toBe('acked');
    expect(await publishOutcome(c, '/devices/dev-a/state', 'two')).toBe('closed');
    expect(emulator.registry.states(fleet.registryId, 'dev-a')).toHaveLength(before + 1);
    expect(emulator.registry.getDevice(fleet.registryId, 'dev-a').lastErrorStatus).toMatchObject({ code: 8 });
  });

  it('takes any rate with stateRateLimit off', async () => {
    const e = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false });
    try {
      const c = await connectDevice(e, fleet, 'dev-b');
      for (const s of ['one', 'two', 'three']) expect(await publishOutcome(c, '/devices/dev-b/state', s)).toBe('acked');
      expect(e.registry.states(fleet.registryId, 'dev-b').map((s) => Buffer.from(s.binaryData, 'base64').toString())).toEqual(['three', 'two', 'one']);
      await c.endAsync();
    } finally {
      await e.close();
    }
  });
});

it('a device may only publish on its own topics: another device topic closes the connection', async () => {
  const c = await connected('dev-a');
  const before = emulator.registry.events.length;
  expect(await publishOutcome(c, '/devices/dev-b/events', 'spoof')).toBe('closed');
  expect(emulator.registry.events.length).toBe(before);
  await closed(c);
});
