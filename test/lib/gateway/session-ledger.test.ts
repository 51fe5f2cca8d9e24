import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SentPacket } from '../../../lib/gateway/error-correlation.js';
import { Flight, FlightClock } from '../../../lib/gateway/flights.js';
import { SessionLedger, type DeviceEntry, type Unit } from '../../../lib/gateway/session-ledger.js';
import { parseGatewayError } from '../../../lib/iotcore/gateway-error.js';
import { attachTopic, detachTopic, errorsTopic, eventsTopic, stateTopic } from '../../../lib/iotcore/topics.js';

let clock: FlightClock;
let ledger: SessionLedger;
let lastId: number;

beforeEach(() => {
  vi.useFakeTimers({ now: 5_000_000 });
  clock = new FlightClock();
  ledger = new SessionLedger();
  lastId = 100;
});
afterEach(() => {
  clock.disarm();
  vi.useRealTimers();
});

/** Hands `packet` to the ledger as sent under the next packet ID, as the session does once the link wrote it. */
function send(packet: SentPacket, timeoutMs = 5000): Flight {
  const flight = new Flight(clock, timeoutMs);
  flight.packetId = ++lastId;
  ledger.sent(packet, flight.packetId, flight);
  return flight;
}

function ack(flight: Flight): void {
  flight.ackedAt ??= Date.now();
  flight.settle({ kind: 'acked' });
}

function attach(deviceId: string, acked = true): DeviceEntry {
  const d = ledger.addDevice(deviceId, () => send({ kind: 'attach', deviceId, topic: attachTopic(deviceId) }));
  if (!acked) return d;
  ack(d.attach);
  ledger.decideAttaches([d], 5000);
  return d;
}

function units(...specs: [deviceId: string, topic: string][]): Unit[] {
  return ledger.addUnits(specs.map(([deviceId, topic], i) => ({ keys: [`k-${ledger.units.length + i}`], deviceId, kind: 'event', topic, payload: Buffer.from(`p${i}`) })));
}

function sendUnit(u: Unit): Unit {
  u.flight = send(u);
  return u;
}

function detach(d: DeviceEntry): Flight {
  d.detach = send({ kind: 'detach', deviceId: d.deviceId, topic: detachTopic(d.deviceId) });
  return d.detach;
}

const gatewayError = (type: string, o: Record<string, unknown> = {}) => parseGatewayError(JSON.stringify({ error_type: type, description: 'said the bridge', ...o }))!;

describe('addDevice and decideAttaches', () => {
  it('has the entry before the attach is sent, so an error can name it at once', () => {
    let seen: DeviceEntry | undefined;
    const d = ledger.addDevice('pump-1', () => {
      seen = ledger.devices.get('pump-1');
      return send({ kind: 'attach', deviceId: 'pump-1', topic: attachTopic('pump-1') });
    });
    expect(seen).toBe(d);
    expect(d).toMatchObject({ deviceId: 'pump-1', status: 'attaching', failure: undefined, attachRefused: false, detach: undefined, barrier: false });
    expect(d.attach.packetId).toBe(101);
  });

  it('decides each attach by how its flight ended', () => {
    const [ok, slow, refused, stopped] = ['dev-a', 'dev-b', 'dev-c', 'dev-d'].map((id) => ledger.addDevice(id, () => send({ kind: 'attach', deviceId: id, topic: attachTopic(id) }, 1500)));
    ack(ok!.attach);
    refused!.attach.settle({ kind: 'refused', code: 'ERR_ATTACH_REJECTED', reason: 'no binding' });
    stopped!.attach.settle({ kind: 'stopped', code: 'ERR_DEADLINE', reason: 'deadline came' });
    vi.advanceTimersByTime(1500);
    ledger.decideAttaches([ok!, slow!, refused!, stopped!], 1500);
    expect(ok!.status).toBe('attached');
    expect(ok!.failure).toBeUndefined();
    expect(slow).toMatchObject({ status: 'failed', failure: { code: 'ERR_ATTACH_TIMEOUT', reason: 'the attach of dev-b was neither acknowledged nor refused within 1500 ms' } });
    expect(refused).toMatchObject({ status: 'failed', failure: { code: 'ERR_ATTACH_REJECTED', reason: 'no binding' } });
    expect(stopped).toMatchObject({ status: 'failed', failure: { code: 'ERR_DEADLINE', reason: 'deadline came' } });
  });

  it('leaves a device an errors-topic message already failed as it is', () => {
    const d = ledger.addDevice('pump-1', () => send({ kind: 'attach', deviceId: 'pump-1', topic: attachTopic('pump-1') }));
    ledger.applyGatewayError(gatewayError('GATEWAY_ATTACHMENT_ERROR', { device_id: 'pump-1', mqtt_message_info: { topic: attachTopic('pump-1'), packet_id: d.attach.packetId } }));
    ledger.decideAttaches([d], 5000);
    expect(d.failure).toEqual({ code: 'ERR_ATTACH_REJECTED', reason: 'GATEWAY_ATTACHMENT_ERROR: said the bridge' });
  });

  it('does not attach a device failed meanwhile, even when its PUBACK came', () => {
    const d = ledger.addDevice('pump-1', () => send({ kind: 'attach', deviceId: 'pump-1', topic: attachTopic('pump-1') }));
    ledger.failDevice(d, { code: 'ERR_DEADLINE', reason: 'stopped' });
    ack(d.attach);
    ledger.decideAttaches([d], 5000);
    expect(d).toMatchObject({ status: 'failed', failure: { code: 'ERR_DEADLINE', reason: 'stopped' } });
  });
});

describe('addUnits', () => {
  it('numbers units across calls and starts them unsent', () => {
    const first = units(['pump-1', eventsTopic('pump-1')]);
    const second = ledger.addUnits([{ keys: ['new', 'old'], deviceId: 'pump-2', kind: 'state', topic: stateTopic('pump-2'), payload: Buffer.from('s') }]);
    expect(first.map((u) => u.unit)).toEqual([0]);
    expect(second).toEqual([{ kind: 'publish', unit: 1, keys: ['new', 'old'], deviceId: 'pump-2', topic: stateTopic('pump-2'), payload: Buffer.from('s'), flight: undefined, sent: false, failure: undefined }]);
    expect(ledger.units).toEqual([...first, ...second]);
    sendUnit(second[0]!);
    expect(ledger.units[1]!.sent).toBe(true);
  });
});

describe('applyGatewayError', () => {
  it('fails the one packet an error names by its ID', () => {
    attach('pump-1');
    const [a, b] = units(['pump-1', eventsTopic('pump-1')], ['pump-1', eventsTopic('pump-1')]).map(sendUnit);
    const match = ledger.applyGatewayError(gatewayError('GATEWAY_INVALID_MQTT_TOPIC', { device_id: 'pump-1', mqtt_message_info: { topic: eventsTopic('pump-1'), packet_id: b!.flight!.packetId } }));
    expect(match).toEqual({ by: 'packet', packets: [b] });
    expect(b!.failure).toEqual({ code: 'ERR_INVALID_TOPIC', reason: 'GATEWAY_INVALID_MQTT_TOPIC: said the bridge' });
    expect(b!.flight!.end).toEqual({ kind: 'refused', code: 'ERR_INVALID_TOPIC', reason: 'GATEWAY_INVALID_MQTT_TOPIC: said the bridge' });
    expect(a!.failure).toBeUndefined();
    expect(a!.flight!.end).toBeUndefined();
    // An invalid topic is about the packet; the device stays attached.
    expect(ledger.devices.get('pump-1')!.status).toBe('attached');
    expect(ledger.gatewayErrors).toHaveLength(1);
  });

  it('fails every sent packet on the topic an error names without an ID, and nothing unsent', () => {
    attach('pump-1');
    const [a, b, other, unsent] = units(['pump-1', eventsTopic('pump-1')], ['pump-1', eventsTopic('pump-1')], ['pump-1', stateTopic('pump-1')], ['pump-1', eventsTopic('pump-1')]);
    [a, b, other].forEach((u) => sendUnit(u!));
    const match = ledger.applyGatewayError(gatewayError('UNKNOWN', { device_id: 'pump-1', topic: eventsTopic('pump-1') }));
    expect(match).toEqual({ by: 'topic', packets: [a, b] });
    expect(a!.failure?.code).toBe('ERR_GATEWAY_ERROR');
    expect(b!.failure?.code).toBe('ERR_GATEWAY_ERROR');
    expect(other!.failure).toBeUndefined();
    expect(unsent!.failure).toBeUndefined();
  });

  it('fails everything of a device an error names by device only', () => {
    const d = attach('pump-1', false);
    const other = attach('pump-2');
    const [sent, queued] = units(['pump-1', eventsTopic('pump-1')], ['pump-1', stateTopic('pump-1')]);
    sendUnit(sent!);
    const [elsewhere] = units(['pump-2', eventsTopic('pump-2')]).map(sendUnit);
    const sub = send({ kind: 'subscribe', deviceId: 'pump-1', topic: '/devices/pump-1/config' });
    const match = ledger.applyGatewayError(gatewayError('GATEWAY_ATTACHMENT_ERROR', { device_id: 'pump-1' }));
    const failure = { code: 'ERR_ATTACH_REJECTED', reason: 'GATEWAY_ATTACHMENT_ERROR: said the bridge' };
    expect(match).toEqual({ by: 'device', deviceId: 'pump-1' });
    expect(d).toMatchObject({ status: 'failed', failure, attachRefused: true });
    expect(d.attach.end).toEqual({ kind: 'refused', ...failure });
    expect(sent!.failure).toEqual(failure);
    expect(sent!.flight!.end).toEqual({ kind: 'refused', ...failure });
    expect(queued!.failure).toEqual(failure);
    expect(sub.end).toEqual({ kind: 'refused', ...failure });
    expect(other.status).toBe('attached');
    expect(elsewhere!.failure).toBeUndefined();
  });

  it('does not call an acknowledged attach refused when a later error names the device', () => {
    const d = attach('pump-1');
    ledger.applyGatewayError(gatewayError('GATEWAY_ATTACHMENT_ERROR', { device_id: 'pump-1' }));
    expect(d.status).toBe('failed');
    expect(d.attachRefused).toBe(false);
  });

  it('does not call an attach refused for an error by device of another kind', () => {
    const d = attach('pump-1', false);
    ledger.applyGatewayError(gatewayError('GATEWAY_DEVICE_NOT_FOUND', { device_id: 'pump-1' }));
    expect(d).toMatchObject({ status: 'failed', attachRefused: false });
  });

  it('counts an error that names nothing sent as uncorrelated and changes nothing', () => {
    const d = attach('pump-1');
    const [u] = units(['pump-1', eventsTopic('pump-1')]).map(sendUnit);
    const match = ledger.applyGatewayError(gatewayError('GATEWAY_DEVICE_NOT_FOUND', { device_id: 'stranger', mqtt_message_info: { topic: eventsTopic('stranger'), packet_id: 999 } }));
    expect(match).toEqual({ by: 'none' });
    expect(ledger.uncorrelated).toBe(1);
    expect(ledger.gatewayErrors).toHaveLength(1);
    expect(d.status).toBe('attached');
    expect(u!.failure).toBeUndefined();
  });

  it('marks an attach the bridge refused by packet, even when it was also acknowledged first', () => {
    const refused = ledger.addDevice('pump-1', () => send({ kind: 'attach', deviceId: 'pump-1', topic: attachTopic('pump-1') }));
    ledger.applyGatewayError(gatewayError('GATEWAY_ATTACHMENT_ERROR', { mqtt_message_info: { topic: attachTopic('pump-1'), packet_id: refused.attach.packetId } }));
    expect(refused).toMatchObject({ status: 'failed', attachRefused: true });
    expect(refused.attach.end?.kind).toBe('refused');

    // The bridge may PUBACK a failed attach and then send the error: refused all the same.
    const both = ledger.addDevice('pump-2', () => send({ kind: 'attach', deviceId: 'pump-2', topic: attachTopic('pump-2') }));
    both.attach.ackedAt = Date.now();
    ledger.applyGatewayError(gatewayError('GATEWAY_ATTACHMENT_ERROR', { mqtt_message_info: { topic: attachTopic('pump-2'), packet_id: both.attach.packetId } }));
    expect(both).toMatchObject({ status: 'failed', attachRefused: true });

    // An attach that timed out and is then named by an error was refused too.
    const late = ledger.addDevice('pump-3', () => send({ kind: 'attach', deviceId: 'pump-3', topic: attachTopic('pump-3') }));
    late.attach.settle({ kind: 'timeout' });
    ledger.applyGatewayError(gatewayError('GATEWAY_ATTACHMENT_ERROR', { mqtt_message_info: { topic: attachTopic('pump-3'), packet_id: late.attach.packetId } }));
    expect(late).toMatchObject({ status: 'failed', attachRefused: true });
  });

  it('does not call an attach refused when its PUBACK ended it before the error came', () => {
    const d = attach('pump-1');
    ledger.applyGatewayError(gatewayError('GATEWAY_ATTACHMENT_ERROR', { mqtt_message_info: { topic: attachTopic('pump-1'), packet_id: d.attach.packetId } }));
    expect(d).toMatchObject({ status: 'failed', attachRefused: false });
    expect(d.attach.end).toEqual({ kind: 'acked' });
  });

  it.each([
    ['GATEWAY_DEVICE_NOT_FOUND', 'ERR_DEVICE_NOT_FOUND'],
    ['GATEWAY_DETACHMENT_DEVICE_ERROR', 'ERR_DEVICE_DETACHED'],
  ])('fails the unsent units of a device when a publish of it gets %s', (type, code) => {
    const d = attach('pump-1');
    const [named, waiting, queued] = units(['pump-1', eventsTopic('pump-1')], ['pump-1', stateTopic('pump-1')], ['pump-1', eventsTopic('pump-1', 'later')]);
    sendUnit(named!);
    sendUnit(waiting!);
    ledger.applyGatewayError(gatewayError(type, { mqtt_message_info: { topic: eventsTopic('pump-1'), packet_id: named!.flight!.packetId } }));
    const failure = { code, reason: `${type}: said the bridge` };
    expect(named!.failure).toEqual(failure);
    expect(d).toMatchObject({ status: 'failed', failure });
    expect(queued!.failure).toEqual(failure);
    // A PUBLISH already on its way keeps waiting for its own answer.
    expect(waiting!.failure).toBeUndefined();
    expect(waiting!.flight!.end).toBeUndefined();
  });

  it('refuses a detach an error names', () => {
    const d = attach('pump-1');
    const f = detach(d);
    ledger.applyGatewayError(gatewayError('GATEWAY_DETACHMENT_DEVICE_ERROR', { mqtt_message_info: { topic: detachTopic('pump-1'), packet_id: f.packetId } }));
    expect(f.end).toEqual({ kind: 'refused', code: 'ERR_DEVICE_DETACHED', reason: 'GATEWAY_DETACHMENT_DEVICE_ERROR: said the bridge' });
  });

  it('keeps a SUBSCRIBE sent twice as one subscription under both IDs', () => {
    const topic = errorsTopic('gw-1');
    const packet: SentPacket = { kind: 'subscribe', deviceId: 'gw-1', topic };
    const flight = new Flight(clock, 5000);
    ledger.sent(packet, 7, flight);
    ledger.sent(packet, 8, flight);
    const byTopic = ledger.applyGatewayError(gatewayError('UNKNOWN', { topic }));
    expect(byTopic).toEqual({ by: 'topic', packets: [packet] });
    expect(flight.end?.kind).toBe('refused');

    const again = new Flight(clock, 5000);
    const second: SentPacket = { kind: 'subscribe', deviceId: 'gw-1', topic: '/devices/gw-1/config' };
    ledger.sent(second, 9, again);
    ledger.sent(second, 10, again);
    expect(ledger.applyGatewayError(gatewayError('UNKNOWN', { topic: second.topic, packet_id: 9 }))).toEqual({ by: 'packet', packets: [second] });
    expect(again.end).toEqual({ kind: 'refused', code: 'ERR_GATEWAY_ERROR', reason: 'UNKNOWN: said the bridge' });
  });
});

describe('barriers', () => {
  it('sets a barrier on an answered detach only: acked, refused, or acknowledged late', () => {
    const [acked, refused, late, silent, none] = ['dev-a', 'dev-b', 'dev-c', 'dev-d', 'dev-e'].map((id) => attach(id));
    ack(detach(acked!));
    detach(refused!).settle({ kind: 'refused', code: 'ERR_DEVICE_DETACHED', reason: 'r' });
    const lateFlight = detach(late!);
    lateFlight.settle({ kind: 'timeout' });
    lateFlight.ackedAt = Date.now();
    detach(silent!).settle({ kind: 'timeout' });
    ledger.markBarriers([acked!, refused!, late!, silent!, none!]);
    expect([acked, refused, late, silent, none].map((d) => d!.barrier)).toEqual([true, true, true, false, false]);
  });

  it('lets no error about a device change anything once its barrier is set', () => {
    const d = attach('pump-1');
    const [u] = units(['pump-1', eventsTopic('pump-1')]).map(sendUnit);
    ack(u!.flight!);
    ack(detach(d));
    ledger.markBarriers([d]);
    const byPacket = ledger.applyGatewayError(gatewayError('GATEWAY_DEVICE_NOT_FOUND', { mqtt_message_info: { topic: eventsTopic('pump-1'), packet_id: u!.flight!.packetId } }));
    const byAttach = ledger.applyGatewayError(gatewayError('GATEWAY_ATTACHMENT_ERROR', { mqtt_message_info: { topic: attachTopic('pump-1'), packet_id: d.attach.packetId } }));
    const byDevice = ledger.applyGatewayError(gatewayError('GATEWAY_DEVICE_NOT_FOUND', { device_id: 'pump-1' }));
    expect([byPacket.by, byAttach.by, byDevice.by]).toEqual(['packet', 'packet', 'device']);
    expect(u!.failure).toBeUndefined();
    expect(d).toMatchObject({ status: 'attached', failure: undefined, attachRefused: false });
    expect(ledger.gatewayErrors).toHaveLength(3);
  });

  it('still applies errors to a device whose detach was not answered', () => {
    const d = attach('pump-1');
    const [u] = units(['pump-1', eventsTopic('pump-1')]).map(sendUnit);
    ack(u!.flight!);
    detach(d).settle({ kind: 'timeout' });
    ledger.markBarriers([d]);
    ledger.applyGatewayError(gatewayError('GATEWAY_DEVICE_NOT_FOUND', { device_id: 'pump-1' }));
    expect(u!.failure?.code).toBe('ERR_DEVICE_NOT_FOUND');
    expect(d.status).toBe('failed');
  });
});

describe('applyPubackRefusal (a 5.0 PUBACK with a failure reason code)', () => {
  it("fails the refused record with the reason code's failure, and its device before the window could send its next", () => {
    const d = attach('pump-1');
    const [refused, queued] = units(['pump-1', eventsTopic('pump-1')], ['pump-1', eventsTopic('pump-1')]);
    const other = units(['pump-2', eventsTopic('pump-2')])[0]!;
    // What the session's window does when a flight ends: send the next unit unless it has failed.
    let sentNext: boolean | undefined;
    refused!.flight = new Flight(clock, 5000, () => (sentNext = queued!.failure === undefined));
    refused!.flight.packetId = ++lastId;
    ledger.sent(refused!, refused!.flight.packetId, refused!.flight);
    ledger.applyPubackRefusal(refused!, { reasonCode: 0x87, reasonString: "Device 'pump-1' is not attached" });
    const failure = { code: 'ERR_DEVICE_NOT_FOUND', reason: "PUBACK 0x87 (not authorized): Device 'pump-1' is not attached" };
    expect(refused!.failure).toEqual(failure);
    expect(refused!.flight.end).toEqual({ kind: 'refused', ...failure });
    expect(refused!.flight.ackedAt).toBeUndefined();
    expect(d.status).toBe('failed');
    expect(queued!.failure).toEqual(failure);
    expect(sentNext).toBe(false);
    expect(other.failure).toBeUndefined();
  });

  it('refuses an attach for good (nothing to detach), and counts a refused detach as its barrier', () => {
    const d = attach('pump-1', false);
    ledger.applyPubackRefusal({ kind: 'attach', deviceId: 'pump-1', topic: attachTopic('pump-1') }, { reasonCode: 0x87, reasonString: undefined });
    expect(d.attachRefused).toBe(true);
    expect(d.failure).toMatchObject({ code: 'ERR_ATTACH_REJECTED' });
    const e = attach('pump-2');
    const flight = detach(e);
    ledger.applyPubackRefusal({ kind: 'detach', deviceId: 'pump-2', topic: detachTopic('pump-2') }, { reasonCode: 0x80, reasonString: undefined });
    expect(flight.end).toMatchObject({ kind: 'refused' });
    ledger.markBarriers([e]);
    expect(e.barrier).toBe(true);
  });
});

describe('failDevice', () => {
  it('keeps the first failure and fails only the units not yet sent', () => {
    const d = attach('pump-1');
    const [sent, queued] = units(['pump-1', eventsTopic('pump-1')], ['pump-1', eventsTopic('pump-1')]);
    sendUnit(sent!);
    ledger.failDevice(d, { code: 'ERR_DEADLINE', reason: 'first' });
    ledger.failDevice(d, { code: 'ERR_TAKEOVER', reason: 'second' });
    expect(d.failure).toEqual({ code: 'ERR_DEADLINE', reason: 'first' });
    expect(queued!.failure).toEqual({ code: 'ERR_DEADLINE', reason: 'first' });
    expect(sent!.failure).toBeUndefined();
  });
});
