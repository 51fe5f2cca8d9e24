import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Flight, FlightClock } from '../../../lib/gateway/flights.js';
import { SessionLedger, type DeviceEntry, type Unit } from '../../../lib/gateway/session-ledger.js';
import { attachResult, sessionReport, type ReportContext, type SessionFailure } from '../../../lib/gateway/session-report.js';
import { parseGatewayError } from '../../../lib/iotcore/gateway-error.js';

let clock: FlightClock;
let ledger: SessionLedger;

beforeEach(() => {
  vi.useFakeTimers({ now: 7_000_000 });
  clock = new FlightClock();
  ledger = new SessionLedger();
});
afterEach(() => {
  clock.disarm();
  vi.useRealTimers();
});

const context = (o: Partial<ReportContext> = {}): ReportContext => ({
  gatewayId: 'gw-1',
  stopped: undefined,
  lost: false,
  phases: ['connecting', 'subscribing', 'attaching', 'publishing', 'detaching', 'closed'],
  connectMs: 40,
  maxPublishesInFlight: 1,
  pubackTimeoutMs: 1500,
  ...o,
});

const LOST: SessionFailure = { code: 'ERR_CONNECTION_LOST', reason: 'the bridge closed the connection while publishing', phase: 'publishing' };

/** Acknowledges `flight` after `ms`, as a PUBACK would. */
function ackAfter(flight: Flight, ms: number): void {
  vi.advanceTimersByTime(ms);
  flight.ackedAt = Date.now();
  flight.settle({ kind: 'acked' });
}

/** An attached device; `detach` says how its detach went ('none': never sent). */
function device(deviceId: string, detach: 'acked' | 'timeout' | 'none' = 'acked', attachMs = 10): DeviceEntry {
  const d = ledger.addDevice(deviceId, () => new Flight(clock, 5000));
  ackAfter(d.attach, attachMs);
  ledger.decideAttaches([d], 5000);
  if (detach !== 'none') {
    d.detach = new Flight(clock, 1000);
    if (detach === 'acked') ackAfter(d.detach, 1);
    else d.detach.settle({ kind: 'timeout' });
  }
  ledger.markBarriers([d]);
  return d;
}

function unit(deviceId: string, keys: string[] = [`r-${ledger.units.length}`]): Unit {
  return ledger.addUnits([{ keys, deviceId, kind: 'event', topic: `/devices/${deviceId}/events`, payload: Buffer.from('x') }])[0]!;
}

/** A unit whose PUBLISH was sent, waiting for its PUBACK. */
function sentUnit(deviceId: string, timeoutMs: number): Unit & { flight: Flight } {
  const u = unit(deviceId);
  u.flight = new Flight(clock, timeoutMs);
  return u as Unit & { flight: Flight };
}

/** What the report says of the unit's newest record. */
const resultOf = (u: Unit, ctx: Partial<ReportContext> = {}) => sessionReport(ledger, context(ctx)).records.get(u.keys[0]!);

/** A unit whose PUBLISH was sent and acknowledged `ms` later. */
function ackedUnit(deviceId: string, ms = 5, keys?: string[]): Unit {
  const u = unit(deviceId, keys);
  u.flight = new Flight(clock, 1500);
  ackAfter(u.flight, ms);
  return u;
}

describe('records', () => {
  it('confirms a record only with its PUBACK and its device barrier', () => {
    const u = ackedUnit('pump-1', 27);
    device('pump-1');
    const report = sessionReport(ledger, context());
    expect(report.records.get(u.keys[0]!)).toEqual({ status: 'confirmed', deviceId: 'pump-1', latencyMs: 27 });
    expect(report.publishLatenciesMs).toEqual([27]);
  });

  it.each([
    ['whose detach was not acknowledged', 'timeout', {}, 'ERR_PUBACK_TIMEOUT', "the detach of pump-1 (the session's final barrier) was not acknowledged in time"],
    ['whose device had no time to detach', 'none', { stopped: { code: 'ERR_DEADLINE', reason: 'deadline', phase: 'publishing' } }, 'ERR_DEADLINE', 'no time was left to detach pump-1 and close the session cleanly'],
    [
      'whose barrier never came after the connection was lost',
      'timeout',
      { lost: true, stopped: LOST },
      'ERR_CONNECTION_LOST',
      'the bridge closed the connection while publishing; the detach of pump-1 was never answered, so a late error could not be ruled out',
    ],
  ] as const)('does not confirm an acknowledged record %s', (_label, detach, ctx: Partial<ReportContext>, code, reason) => {
    const u = ackedUnit('pump-1');
    device('pump-1', detach);
    const report = sessionReport(ledger, context(ctx));
    expect(report.records.get(u.keys[0]!)).toEqual({ status: 'failed', deviceId: 'pump-1', code, reason });
    expect(report.publishLatenciesMs).toEqual([]);
  });

  it('names no device it does not know of', () => {
    const u = ackedUnit('ghost-1');
    expect(resultOf(u)).toMatchObject({ code: 'ERR_DEADLINE', reason: 'no time was left to detach the device and close the session cleanly' });
  });

  it('lets an error naming the record win over its PUBACK and the barrier', () => {
    const u = ackedUnit('pump-1');
    u.failure = { code: 'ERR_INVALID_TOPIC', reason: 'GATEWAY_INVALID_MQTT_TOPIC' };
    device('pump-1');
    expect(resultOf(u)).toEqual({ status: 'failed', deviceId: 'pump-1', code: 'ERR_INVALID_TOPIC', reason: 'GATEWAY_INVALID_MQTT_TOPIC' });
  });

  it('fails a record with no PUBACK in time as ERR_PUBACK_TIMEOUT', () => {
    device('pump-1');
    const u = sentUnit('pump-1', 1500);
    vi.advanceTimersByTime(1500);
    expect(u.flight.end).toEqual({ kind: 'timeout' });
    expect(resultOf(u)).toEqual({ status: 'failed', deviceId: 'pump-1', code: 'ERR_PUBACK_TIMEOUT', reason: 'no PUBACK within 1500 ms' });
  });

  it('confirms a record whose PUBACK came after its timeout, once the barrier is there', () => {
    device('pump-1');
    const u = sentUnit('pump-1', 100);
    vi.advanceTimersByTime(100);
    u.flight.ackedAt = Date.now() + 20;
    expect(resultOf(u)).toEqual({ status: 'confirmed', deviceId: 'pump-1', latencyMs: 120 });
  });

  it.each([
    ['refused', { kind: 'refused', code: 'ERR_DEVICE_NOT_FOUND', reason: 'GATEWAY_DEVICE_NOT_FOUND: gone' }],
    ['stopped', { kind: 'stopped', code: 'ERR_TAKEOVER', reason: 'another connection took the gateway' }],
  ] as const)('gives a %s record its flight end', (_label, end) => {
    device('pump-1');
    const u = sentUnit('pump-1', 1500);
    u.flight.settle(end);
    expect(resultOf(u)).toEqual({ status: 'failed', deviceId: 'pump-1', code: end.code, reason: end.reason });
  });

  it('gives a record never sent the stop reason, or ERR_INTERNAL without one', () => {
    const u = unit('pump-1');
    const stopped = { code: 'ERR_DEADLINE' as const, reason: 'the invocation deadline came', phase: 'publishing' as const };
    expect(resultOf(u, { stopped })).toEqual({ status: 'failed', deviceId: 'pump-1', code: 'ERR_DEADLINE', reason: 'the invocation deadline came' });
    expect(resultOf(u)).toEqual({ status: 'failed', deviceId: 'pump-1', code: 'ERR_INTERNAL', reason: 'record never sent' });
  });

  it('gives a record still waiting the stop reason, or ERR_INTERNAL without one', () => {
    const u = sentUnit('pump-1', 1500);
    expect(resultOf(u, { stopped: LOST })).toMatchObject({ code: 'ERR_CONNECTION_LOST', reason: LOST.reason });
    expect(resultOf(u)).toMatchObject({ code: 'ERR_INTERNAL', reason: 'publish left undecided' });
  });

  it('points every coalesced key at the newest record and gives it the same result', () => {
    const u = ackedUnit('pump-1', 8, ['newest', 'older', 'oldest']);
    const failed = unit('pump-2', ['n2', 'o2']);
    device('pump-1');
    const records = sessionReport(ledger, context()).records;
    expect(records.get('newest')).toEqual({ status: 'confirmed', deviceId: 'pump-1', latencyMs: 8 });
    expect(records.get('older')).toEqual({ status: 'confirmed', deviceId: 'pump-1', latencyMs: 8, coalescedInto: 'newest' });
    expect(records.get('oldest')).toEqual({ status: 'confirmed', deviceId: 'pump-1', latencyMs: 8, coalescedInto: 'newest' });
    expect(records.get('o2')).toEqual({ status: 'failed', deviceId: 'pump-2', code: 'ERR_INTERNAL', reason: 'record never sent', coalescedInto: 'n2' });
    expect(records.get('n2')).not.toHaveProperty('coalescedInto');
    expect(records.size).toBe(5);
    expect(u.keys).toEqual(['newest', 'older', 'oldest']);
  });
});

describe('attachments', () => {
  it('gives an attached device its latency and a failed one its failure', () => {
    device('pump-1', 'acked', 33);
    const refused = ledger.addDevice('pump-2', () => new Flight(clock, 5000));
    ledger.failDevice(refused, { code: 'ERR_ATTACH_REJECTED', reason: 'not bound' });
    const report = sessionReport(ledger, context());
    expect(report.attachments.get('pump-1')).toEqual({ ok: true, latencyMs: 33 });
    expect(report.attachments.get('pump-2')).toEqual({ ok: false, code: 'ERR_ATTACH_REJECTED', reason: 'not bound' });
    expect(report.attachLatenciesMs).toEqual([33]);
  });

  it('reports an attach left undecided as ERR_INTERNAL', () => {
    const d = ledger.addDevice('pump-1', () => new Flight(clock, 5000));
    expect(attachResult(d)).toEqual({ ok: false, code: 'ERR_INTERNAL', reason: 'attach left undecided' });
  });
});

describe('the rest of the report', () => {
  it('passes the context through and copies the errors', () => {
    ledger.applyGatewayError(parseGatewayError(JSON.stringify({ error_type: 'UNKNOWN', device_id: 'nobody' }))!);
    const ctx = context({ stopped: LOST, maxPublishesInFlight: 7, connectMs: 12 });
    const report = sessionReport(ledger, ctx);
    expect(report).toMatchObject({ gatewayId: 'gw-1', failure: LOST, phases: ctx.phases, connectMs: 12, maxPublishesInFlight: 7, uncorrelatedErrors: 1 });
    expect(report.gatewayErrors).toEqual(ledger.gatewayErrors);
    expect(report.gatewayErrors).not.toBe(ledger.gatewayErrors);
  });
});
