/**
 * The relay over MQTT 5.0 (RELAY_MQTT_VERSION=5) against the emulator's `mqtt5` option: the batch is confirmed as
 * over 3.1.1, a refusing PUBACK fails its record at once with a specific code, even when the errors topic loses its
 * message, and an emulator without the option refuses the session with an error that names the setting.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { relayBatch } from '../../../lib/relay/relay-batch.js';
import type { Fleet } from '../../helpers/emulator-fixtures.js';
import { expectOutcomeInvariant } from '../../helpers/outcome-invariant.js';
import { startInterceptingProxy } from '../../reliability/mqtt-intercepting-proxy.js';
import {
  eventBody,
  GW,
  inbound,
  makeRelayFleet,
  METERS,
  outcomeOf,
  pollBody,
  PUMPS,
  record,
  relayDeps,
  relaySettings,
  runSession,
  stateBody,
  UNBOUND,
  VALVES,
  variantEmulator,
} from '../../helpers/relay-fixtures.js';

const V5 = { protocolVersion: 5 } as const;

let fleet: Fleet;
beforeAll(async () => {
  fleet = await makeRelayFleet();
});
const five = variantEmulator(() => fleet, { mqtt5: true });
const fiveRated = variantEmulator(() => fleet, { mqtt5: true, stateRateLimit: true });
const only311 = variantEmulator(() => fleet, {});
afterEach(() => {
  for (const e of [five, fiveRated, only311]) e().clearFaults();
});

describe('a relay batch over MQTT 5.0', () => {
  it('confirms every record of several gateways, and a config poll', async () => {
    const records = [
      inbound(eventBody(PUMPS[0]!), { groupId: GW.assoc }),
      inbound(stateBody(PUMPS[0]!), { groupId: GW.assoc }),
      inbound(eventBody(PUMPS[1]!, { subfolder: 'alarms' }), { groupId: GW.assoc }),
      inbound(eventBody('east-01'), { groupId: GW.east }),
      inbound(stateBody('west-02'), { groupId: GW.west }),
      inbound(pollBody([VALVES[0]!]), { groupId: GW.assoc }),
    ];
    const deps = relayDeps(five(), fleet, { settings: relaySettings(five(), fleet, { mqttVersion: 5 }) });
    const result = await relayBatch(records, deps);
    const polled = new Map(result.sessions.flatMap((s) => s.configPoll?.outcomes ?? []).map((o) => [o.deviceId, o]));
    expectOutcomeInvariant({ records, outcomes: result.outcomes, emulator: five(), registryId: fleet.registryId, configsDelivered: polled });
    expect(result.outcomes.map((o) => o.outcome)).toEqual(records.map(() => 'confirmed'));
    expect(result.sessions.every((s) => s.failure === undefined)).toBe(true);
  });
});

describe('a refusing PUBACK', () => {
  it('fails a refused attach with ERR_ATTACH_REJECTED from its reason code, and delivers the others', async () => {
    const refused = record(eventBody(UNBOUND));
    const fine = record(eventBody(PUMPS[2]!));
    const run = await runSession(five(), fleet, GW.assoc, [refused, fine], { options: V5 });
    expect(outcomeOf(run, refused)).toMatchObject({ outcome: 'dead-letter', code: 'ERR_ATTACH_REJECTED' });
    expect(outcomeOf(run, refused).reason).toMatch(/^PUBACK 0x87 \(not authorized\): Device 'pump-unbound' could not be attached/);
    expect(outcomeOf(run, fine).outcome).toBe('confirmed');
  });

  it("fails the publishes of a device the bridge no longer has attached with ERR_DEVICE_NOT_FOUND, the errors topic lost, neighbours confirmed", async () => {
    // The second state within a second has the device detached (0x97); its records behind it already on the wire
    // (a window of 4: the state and 3 events) are for a device the bridge no longer has attached (0x87), and the
    // 3 still queued are not sent. No errors-topic message arrives at all.
    fiveRated().setFaults({ dropErrors: true });
    const device = PUMPS[3]!;
    const first = await runSession(fiveRated(), fleet, GW.assoc, [record(stateBody(device))], { options: V5 });
    expect(first.outcomes[0]!.outcome).toBe('confirmed');
    const state = record(stateBody(device));
    const behind = Array.from({ length: 6 }, () => record(eventBody(device, { subfolder: 'behind' })));
    const neighbours = [record(eventBody(PUMPS[4]!)), record(stateBody(PUMPS[5]!)), record(eventBody(PUMPS[4]!))];
    const refusedBefore = fiveRated().registry.errors.length;
    const started = Date.now();
    const run = await runSession(fiveRated(), fleet, GW.assoc, [state, ...behind, ...neighbours], { options: { ...V5, publishWindow: 4, pubackTimeoutMs: 5000 } });
    expect(run.report.gatewayErrors).toEqual([]);
    expect(outcomeOf(run, state)).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_DEVICE_DETACHED' });
    expect(outcomeOf(run, state).reason).toMatch(/^PUBACK 0x97 \(quota exceeded\): pump-04 was detached/);
    for (const r of behind.slice(0, 3)) {
      expect(outcomeOf(run, r)).toMatchObject({ outcome: 'retry', code: 'ERR_DEVICE_NOT_FOUND' });
      expect(outcomeOf(run, r).reason).toBe("PUBACK 0x87 (not authorized): Device 'pump-04' is not attached to gateway 'gw-assoc'.");
    }
    for (const r of behind.slice(3)) expect(outcomeOf(run, r)).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_DEVICE_DETACHED' });
    // The bridge saw the 3 in flight, not the 3 queued behind them.
    const notAttached = fiveRated().registry.errors.slice(refusedBefore).filter((e) => e.payload.error_type === 'GATEWAY_DEVICE_NOT_FOUND');
    expect(notAttached.length).toBe(3);
    expect(neighbours.map((r) => outcomeOf(run, r).outcome)).toEqual(['confirmed', 'confirmed', 'confirmed']);
    // Known at once: no PUBACK timeout was waited out.
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('over 3.1.1 the same loss leaves only the PUBACK timeout, and the invariant holds all the same', async () => {
    fiveRated().setFaults({ dropErrors: true });
    const device = PUMPS[6]!;
    await runSession(fiveRated(), fleet, GW.assoc, [record(stateBody(device))]);
    const state = record(stateBody(device));
    const behind = record(eventBody(device, { subfolder: 'behind' }));
    const neighbour = record(eventBody(PUMPS[7]!));
    const run = await runSession(fiveRated(), fleet, GW.assoc, [state, behind, neighbour], { options: { pubackTimeoutMs: 600 } });
    expect(outcomeOf(run, state)).toMatchObject({ outcome: 'retry', code: 'ERR_PUBACK_TIMEOUT' });
    expect(outcomeOf(run, behind)).toMatchObject({ outcome: 'retry', code: 'ERR_PUBACK_TIMEOUT' });
    expect(outcomeOf(run, neighbour).outcome).toBe('confirmed');
  });
});

describe('a refusing SUBACK', () => {
  it('refuses the errors topic of a device that is no gateway with 0x87, and the session fails as over 3.1.1', async () => {
    const r = record(eventBody(PUMPS[9]!));
    const run = await runSession(five(), fleet, METERS[0]!, [r], { options: V5 });
    expect(run.report.failure).toMatchObject({ code: 'ERR_SUBSCRIBE_REJECTED', phase: 'subscribing' });
    expect(run.report.failure?.reason).toContain('(SUBACK 0x87)');
    expect(outcomeOf(run, r)).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_SUBSCRIBE_REJECTED' });
  });
});

describe('a DISCONNECT from the bridge (5.0 lets a server say why it ends the connection)', () => {
  it('ends the session with ERR_CONNECTION_LOST, quoting the reason code and string; what was confirmed stays so', async () => {
    // The emulator never sends DISCONNECT: a proxy in front of it replaces the PUBACK of one record with one.
    const late = record(eventBody(PUMPS[10]!));
    const early = record(eventBody(PUMPS[11]!));
    const lateTopic = `/devices/${PUMPS[10]}/events`;
    let lateId: number | undefined;
    const proxy = await startInterceptingProxy(five(), {
      protocolVersion: 5,
      hooks: {
        fromClient: (p) => {
          if (p.cmd === 'publish' && p.topic === lateTopic) lateId = p.messageId;
        },
        fromBridge: (p, link) => {
          if (p.cmd !== 'puback' || p.messageId !== lateId) return 'forward';
          link.toClient({ cmd: 'disconnect', reasonCode: 0x89, properties: { reasonString: 'busy' } });
          return 'withhold';
        },
      },
    });
    try {
      const run = await runSession(five(), fleet, GW.assoc, [early, late], { options: { ...V5, host: proxy.host, port: proxy.port, extraCaPem: proxy.ca } });
      expect(run.report.failure).toMatchObject({ code: 'ERR_CONNECTION_LOST', phase: 'publishing' });
      expect(run.report.failure?.reason).toContain('(the bridge sent DISCONNECT with reason code 0x89: busy)');
      expect(outcomeOf(run, late)).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
      // Acknowledged, but the session ended before its barrier: it goes back too.
      expect(outcomeOf(run, early)).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
    } finally {
      await proxy.close();
    }
  });
});

describe('MQTT 5.0 against a bridge that speaks 3.1.1 only', () => {
  it('fails the session while connecting with ERR_CONNECT_REFUSED, naming RELAY_MQTT_VERSION', async () => {
    const r = record(eventBody(PUMPS[8]!));
    const run = await runSession(only311(), fleet, GW.assoc, [r], { options: V5 });
    expect(run.report.failure).toMatchObject({ code: 'ERR_CONNECT_REFUSED', phase: 'connecting' });
    expect(run.report.failure?.reason).toBe(
      `${only311().host}:${only311().port} refused the connection: CONNACK 0x01, unsupported protocol version; the bridge does not accept MQTT 5.0 connections; set RELAY_MQTT_VERSION=4`,
    );
    expect(outcomeOf(run, r)).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_CONNECT_REFUSED' });
  });
});
