/**
 * Fault injection: latency on every packet the bridge sends, lost acknowledgements, lost publishes, connections
 * closed at a chosen point, refused CONNECTs, kicked clients; all changeable while the emulator runs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator } from '../../emulator/index.js';
import { topicMatches } from '../../emulator/faults.js';
import { closed, connackCode, makeFleet, publishOutcome, rawConnectPacket, rawSession } from '../helpers/emulator-fixtures.js';
import { deviceConnections } from '../helpers/device-connections.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;

beforeAll(async () => {
  fleet = await makeFleet({ gateways: [{ id: 'gw-1', bound: ['dev-1'] }], devices: ['dev-1', 'dev-2'] });
  emulator = await startEmulator({ registry: fleet.document, adminPort: null });
});
afterEach(() => emulator.clearFaults());
afterAll(() => emulator.close());

const connected = deviceConnections(() => ({ bridge: emulator, fleet }));

const eventCount = () => emulator.registry.events.length;

describe('latencyMs', () => {
  it('delays CONNACK, SUBACK and PUBACK, and can be changed at run time', async () => {
    emulator.setFaults({ latencyMs: 250 });
    let t = Date.now();
    const c = await connected('dev-1');
    expect(Date.now() - t).toBeGreaterThanOrEqual(240);
    t = Date.now();
    await c.subscribeAsync('/devices/dev-1/commands/#', { qos: 1 });
    expect(Date.now() - t).toBeGreaterThanOrEqual(240);
    t = Date.now();
    expect(await publishOutcome(c, '/devices/dev-1/events', 'slow', { barrier: false })).toBe('acked');
    expect(Date.now() - t).toBeGreaterThanOrEqual(240);
    emulator.faults.latencyMs = 0;
    t = Date.now();
    expect(await publishOutcome(c, '/devices/dev-1/events', 'fast', { barrier: false })).toBe('acked');
    expect(Date.now() - t).toBeLessThan(200);
  });

  it('is taken from the options at start', async () => {
    const e = await startEmulator({ registry: fleet.document, adminPort: null, latencyMs: 200 });
    try {
      expect(e.faults.latencyMs).toBe(200);
      const t = Date.now();
      expect(await connackCode(e, fleet, 'dev-2')).toBe(0);
      expect(Date.now() - t).toBeGreaterThanOrEqual(190);
    } finally {
      await e.close();
    }
  });
});

describe('withholdPuback and dropPublish', () => {
  it('records but never acknowledges publishes matching withholdPuback', async () => {
    emulator.setFaults({ withholdPuback: ['/devices/+/events/#'] });
    const c = await connected('dev-1');
    const before = eventCount();
    expect(await publishOutcome(c, '/devices/dev-1/events/a', 'recorded')).toBe('unacked');
    expect(await publishOutcome(c, '/devices/dev-1/events', 'also recorded')).toBe('unacked');
    expect(eventCount()).toBe(before + 2);
    expect(await publishOutcome(c, '/devices/dev-1/state', 'state is acked')).toBe('acked');
  });

  it('withholds the PUBACK of an attach that still happens', async () => {
    emulator.setFaults({ withholdPuback: ['/devices/+/attach'] });
    const c = await connected('gw-1');
    expect(await publishOutcome(c, '/devices/dev-1/attach', '{}')).toBe('unacked');
    expect(emulator.connections().find((x) => x.deviceId === 'gw-1')?.attached).toEqual(['dev-1']);
    expect(await publishOutcome(c, '/devices/dev-1/events', 'for dev-1')).toBe('acked');
  });

  it('neither records nor acknowledges publishes matching dropPublish', async () => {
    emulator.setFaults({ dropPublish: ['/devices/dev-1/events'] });
    const c = await connected('dev-1');
    const before = eventCount();
    expect(await publishOutcome(c, '/devices/dev-1/events', 'lost')).toBe('unacked');
    expect(eventCount()).toBe(before);
    expect(await publishOutcome(c, '/devices/dev-1/events/sub', 'not matched')).toBe('acked');
    expect(eventCount()).toBe(before + 1);
  });
});

describe('acknowledgeThenFail', () => {
  it('acknowledges a matching publish, records nothing, and reports it failed on the errors topic', async () => {
    emulator.setFaults({ acknowledgeThenFail: ['/devices/dev-1/events/a'] });
    const raw = await rawSession(emulator);
    raw.send(await rawConnectPacket(fleet, 'gw-1'));
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '/devices/gw-1/errors', qos: 0 }] });
    expect(await raw.next()).toMatchObject({ cmd: 'suback' });
    const publish = (topic: string, messageId: number) => ({ cmd: 'publish' as const, topic, messageId, qos: 1 as const, payload: Buffer.from('x'), retain: false, dup: false });
    raw.send(publish('/devices/dev-1/attach', 2));
    expect(await raw.next()).toMatchObject({ cmd: 'puback', messageId: 2 });
    const before = eventCount();
    raw.sendTogether(publish('/devices/dev-1/events/a', 3), publish('/devices/dev-1/events/b', 4));
    expect(await raw.next()).toMatchObject({ cmd: 'puback', messageId: 3 });
    const error = await raw.next();
    expect(error).toMatchObject({ cmd: 'publish', topic: '/devices/gw-1/errors' });
    expect(JSON.parse(String((error as { payload: Buffer }).payload))).toMatchObject({
      error_type: 'GATEWAY_DEVICE_NOT_FOUND',
      device_id: 'dev-1',
      mqtt_message_info: { message_type: 'PUBLISH', topic: '/devices/dev-1/events/a', packet_id: 3 },
    });
    // What does not match is recorded and acknowledged as usual.
    expect(await raw.next()).toMatchObject({ cmd: 'puback', messageId: 4 });
    expect(emulator.registry.events.slice(before).map((e) => e.attributes.subFolder)).toEqual(['b']);
    raw.send({ cmd: 'disconnect' });
    await raw.closed;
  });
});

describe('closing connections', () => {
  it('closeAfterPackets: handles the n-th packet, then closes; counts per connection', async () => {
    emulator.setFaults({ closeAfterPackets: 3 });
    const c = await connected('dev-1');
    await c.subscribeAsync('/devices/dev-1/commands/#', { qos: 0 });
    const before = eventCount();
    expect(await publishOutcome(c, '/devices/dev-1/events', 'third', { barrier: false })).toBe('acked');
    await closed(c);
    expect(eventCount()).toBe(before + 1);
    const again = await connected('dev-1');
    expect(again.connected).toBe(true);
  });

  it('closeAtPhase connect: no CONNACK', async () => {
    emulator.setFaults({ closeAtPhase: 'connect' });
    const raw = await rawSession(emulator);
    raw.send(await rawConnectPacket(fleet, 'dev-1'));
    await expect(raw.next()).rejects.toThrow(/closed/);
    emulator.clearFaults();
    expect(await connackCode(emulator, fleet, 'dev-1')).toBe(0);
  });

  it('closeAtPhase subscribe: no SUBACK, no subscription', async () => {
    emulator.setFaults({ closeAtPhase: 'subscribe' });
    const c = await connected('dev-1');
    const acked = c.subscribeAsync('/devices/dev-1/config', { qos: 1 }).then(() => 'subacked', () => 'refused');
    await closed(c);
    expect(await Promise.race([acked, new Promise((r) => setTimeout(() => r('nothing'), 100))])).not.toBe('subacked');
  });

  it.each([
    ['attach', 'nothing before', [], 0],
    ['publish', 'after an attach', ['attach'], 0],
    ['detach', 'after an attach and a publish', ['attach', 'publish'], 1],
  ] as const)('closeAtPhase %s (%s): what came before is done, the closing packet is not', async (phase, _story, before, expectedEvents) => {
    emulator.setFaults({ closeAtPhase: phase });
    const c = await connected('gw-1');
    const start = eventCount();
    const done: readonly string[] = before;
    if (done.includes('attach')) expect(await publishOutcome(c, '/devices/dev-1/attach', '{}')).toBe('acked');
    if (done.includes('publish')) expect(await publishOutcome(c, '/devices/dev-1/events', 'x')).toBe('acked');
    const topic = phase === 'publish' ? '/devices/dev-1/events' : `/devices/dev-1/${phase}`;
    expect(await publishOutcome(c, topic, '{}')).toBe('closed');
    expect(eventCount() - start).toBe(expectedEvents);
    expect(emulator.connections().find((x) => x.deviceId === 'gw-1')).toBeUndefined();
  });

  it('closeAtPhaseOnce: the first attach of any connection closes it, the fault clears itself, the next attach goes through', async () => {
    emulator.setFaults({ closeAtPhase: 'attach', closeAtPhaseOnce: true });
    const first = await connected('gw-1');
    expect(await publishOutcome(first, '/devices/dev-1/attach', '{}')).toBe('closed');
    expect(emulator.faults.closeAtPhase).toBeUndefined();
    expect(emulator.faults.closeAtPhaseOnce).toBeUndefined();
    const second = await connected('gw-1');
    expect(await publishOutcome(second, '/devices/dev-1/attach', '{}')).toBe('acked');
  });

  it('a closeAtPhase set again without closeAtPhaseOnce is persistent', () => {
    emulator.setFaults({ closeAtPhase: 'attach', closeAtPhaseOnce: true });
    emulator.setFaults({ closeAtPhase: 'detach' });
    expect(emulator.faults).toMatchObject({ closeAtPhase: 'detach', closeAtPhaseOnce: undefined });
  });

  it('refuseConnect answers every CONNECT with the given code until cleared', async () => {
    emulator.setFaults({ refuseConnect: 3 });
    expect(await connackCode(emulator, fleet, 'dev-1')).toBe(3);
    emulator.setFaults({ refuseConnect: 5 });
    expect(await connackCode(emulator, fleet, 'dev-2')).toBe(5);
    emulator.clearFaults();
    expect(await connackCode(emulator, fleet, 'dev-1')).toBe(0);
  });

  it('kick closes a client as a takeover would, without counting a takeover', async () => {
    const c = await connected('dev-2');
    expect(emulator.kick('nobody')).toBe(false);
    expect(emulator.kick('dev-2')).toBe(true);
    await closed(c);
    expect(emulator.takeovers).toBe(0);
    expect(emulator.registry.getDevice(fleet.registryId, 'dev-2').lastErrorStatus?.code).toBe(6);
    const byClientId = await connected('dev-2');
    expect(emulator.kick(fleet.clientId('dev-2'))).toBe(true);
    await closed(byClientId);
  });
});

describe('validation', () => {
  it.each([
    [{ withholdPuback: ['/devices/#/x'] }, /withholdPuback/],
    [{ dropPublish: ['a+b'] }, /dropPublish/],
    [{ acknowledgeThenFail: ['#/x'] }, /acknowledgeThenFail/],
    [{ closeAfterPackets: 0 }, /closeAfterPackets/],
    [{ closeAtPhase: 'teardown' as never }, /closeAtPhase/],
    [{ refuseConnect: 6 as never }, /refuseConnect/],
    [{ latencyMs: -1 }, /latencyMs/],
    [{ closeAtPhase: 'attach' as const, closeAtPhaseOnce: 1 as never }, /closeAtPhaseOnce must be true or false/],
    [{ closeAtPhaseOnce: true }, /closeAtPhaseOnce goes with a closeAtPhase/],
    [{ dropErrors: 'yes' as never }, /dropErrors/],
  ])('refuses %j', (faults, message) => {
    expect(() => emulator.setFaults(faults)).toThrow(message);
  });

  it('clears an optional fault given as undefined, and keeps the others', () => {
    emulator.setFaults({ latencyMs: 5, closeAtPhase: 'attach' });
    emulator.setFaults({ closeAtPhase: undefined, latencyMs: undefined });
    expect(emulator.faults.closeAtPhase).toBeUndefined();
    expect(emulator.faults.latencyMs).toBe(5);
    emulator.clearFaults();
    expect(emulator.faults).toEqual({ latencyMs: 0, withholdPuback: [], dropPublish: [] });
  });

  it('matches topic filters as MQTT does', () => {
    expect(topicMatches('/devices/+/events/#', '/devices/d-1/events')).toBe(true);
    expect(topicMatches('/devices/+/events/#', '/devices/d-1/events/a/b')).toBe(true);
    expect(topicMatches('/devices/+/events', '/devices/d-1/events/a')).toBe(false);
    expect(topicMatches('/devices/+/state', '/devices/d-1/events')).toBe(false);
    expect(topicMatches('#', '/devices/d-1/state')).toBe(true);
  });
});

describe('dropErrors', () => {
  it('loses errors-topic messages on the way, still recorded as sent, and acknowledges nothing more or less', async () => {
    emulator.setFaults({ dropErrors: true });
    const gw = await connected('gw-1');
    await gw.subscribeAsync('/devices/gw-1/errors', { qos: 0 });
    const heard: string[] = [];
    gw.on('message', (topic) => heard.push(topic));
    const before = emulator.registry.errors.length;
    expect(await publishOutcome(gw, '/devices/dev-1/events', 'not attached')).toBe('unacked');
    expect(heard).toEqual([]);
    expect(emulator.registry.errors.slice(before)).toMatchObject([{ gatewayId: 'gw-1', delivered: true, payload: { error_type: 'GATEWAY_DEVICE_NOT_FOUND' } }]);
    emulator.setFaults({ dropErrors: false });
    expect(await publishOutcome(gw, '/devices/dev-1/events', 'not attached')).toBe('unacked');
    expect(heard).toEqual(['/devices/gw-1/errors']);
  });
});
