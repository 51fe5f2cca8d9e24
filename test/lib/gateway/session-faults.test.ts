import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../../emulator/index.js';
import { generateTlsMaterial } from '../../../emulator/tls.js';
import { GatewaySession } from '../../../lib/gateway/session.js';
import type { MqttClient } from 'mqtt';
import { connectDevice, type Fleet } from '../../helpers/emulator-fixtures.js';
import { expectOutcomeInvariant, sessionOutcomes } from '../../helpers/outcome-invariant.js';
import { eventBody, GW, makeRelayFleet, outcomeOf, PUMPS, record, runSession, sessionOptions, stateBody, VALVES } from '../../helpers/relay-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;

beforeAll(async () => {
  fleet = await makeRelayFleet();
  emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false });
});
afterEach(() => emulator.clearFaults());
afterAll(() => emulator.close());

const someRecords = (): ReturnType<typeof record>[] => [
  record(eventBody(PUMPS[0]!)),
  record(stateBody(PUMPS[1]!)),
  record(eventBody(PUMPS[1]!, { subfolder: 'x' })),
];

describe('refused CONNECT', () => {
  it.each([
    [4, 'ERR_CONNECT_REFUSED_AUTH', 'retry-backoff'],
    [5, 'ERR_CONNECT_REFUSED_AUTH', 'retry-backoff'],
    [3, 'ERR_CONNECT_REFUSED', 'retry-backoff'],
    [2, 'ERR_TAKEOVER', 'retry-backoff'],
  ] as const)('CONNACK %i fails every record with %s', async (rc, code, outcome) => {
    emulator.setFaults({ refuseConnect: rc });
    const run = await runSession(emulator, fleet, GW.assoc, someRecords());
    expect(run.report.failure).toMatchObject({ code, phase: 'connecting' });
    expect(run.report.failure?.reason).toContain(`CONNACK ${rc}`);
    expect(run.outcomes.every((o) => o.outcome === outcome && o.code === code)).toBe(true);
    expect(run.report.phases).toEqual(['connecting', 'closed']);
  });

  it('reports a JWT the bridge refuses (wrong audience) as a credential failure', async () => {
    const run = await runSession(emulator, fleet, GW.assoc, someRecords(), { options: { jwt: await fleet.jwt(GW.assoc, { aud: 'another-project' }) } });
    expect(run.report.failure).toMatchObject({ code: 'ERR_CONNECT_REFUSED_AUTH' });
    expect(run.report.failure?.reason).toContain('CONNACK 4');
  });

  it('fails TLS when the emulator CA is not trusted (the system roots alone do not vouch for it)', async () => {
    const run = await runSession(emulator, fleet, GW.assoc, someRecords(), { options: { extraCaPem: undefined } });
    expect(run.report.failure?.code).toBe('ERR_TLS');
    expect(run.outcomes.every((o) => o.code === 'ERR_TLS')).toBe(true);
  });

  it('fails TLS when the extra CA is another one: trusting a CA is not trusting anything', async () => {
    const other = await generateTlsMaterial();
    const run = await runSession(emulator, fleet, GW.assoc, someRecords(), { options: { extraCaPem: other.caPem } });
    expect(run.report.failure?.code).toBe('ERR_TLS');
    expect(run.outcomes.every((o) => o.outcome === 'retry-backoff')).toBe(true);
  });

  it('fails with ERR_CONNECT_REFUSED when nothing listens', async () => {
    const run = await runSession(emulator, fleet, GW.assoc, someRecords(), { options: { port: 1 } });
    expect(run.report.failure).toMatchObject({ code: 'ERR_CONNECT_REFUSED' });
    expect(run.report.failure?.reason).toContain('ECONNREFUSED');
  });
});

describe('connection lost', () => {
  it.each([
    ['connect', 'connecting'],
    ['subscribe', 'subscribing'],
    ['attach', 'attaching'],
  ] as const)('at the first %s packet: nothing is confirmed, no reconnect', async (phase, sessionPhase) => {
    emulator.setFaults({ closeAtPhase: phase });
    const run = await runSession(emulator, fleet, GW.assoc, someRecords());
    expect(run.report.failure).toMatchObject({ code: 'ERR_CONNECTION_LOST', phase: sessionPhase });
    expect(run.outcomes.every((o) => o.outcome === 'retry' && o.code === 'ERR_CONNECTION_LOST')).toBe(true);
    expect(run.report.phases).not.toContain('detaching');
  });

  it('while publishing: what got no PUBACK goes back', async () => {
    // CONNECT, SUBSCRIBE, 2 attaches, then 2 publishes are handled; the connection closes after the 6th packet.
    emulator.setFaults({ closeAfterPackets: 6 });
    const records = [record(eventBody(PUMPS[0]!)), record(eventBody(PUMPS[1]!)), record(eventBody(PUMPS[0]!)), record(eventBody(PUMPS[1]!))];
    const run = await runSession(emulator, fleet, GW.assoc, records);
    expect(run.report.failure).toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    // Even records whose PUBACK arrived go back: the detach barrier never came, so a late error was not ruled out.
    expect(run.outcomes.every((o) => o.outcome === 'retry' && o.code === 'ERR_CONNECTION_LOST')).toBe(true);
    expect(run.report.phases).not.toContain('detaching');
  });

  it('while detaching: acknowledged records are not confirmed without the barrier', async () => {
    emulator.setFaults({ closeAtPhase: 'detach' });
    const records = someRecords();
    const run = await runSession(emulator, fleet, GW.assoc, records);
    expect(run.report.phases).toContain('detaching');
    expect(run.report.publishLatenciesMs).toEqual([]);
    expect(run.outcomes.every((o) => o.outcome === 'retry' && o.code === 'ERR_CONNECTION_LOST')).toBe(true);
    expect(run.outcomes[0]!.reason).toContain('detach');
  });
});

describe('acknowledgements that never come', () => {
  it('a withheld PUBACK fails its record back; the rest are confirmed', async () => {
    emulator.setFaults({ withholdPuback: [`/devices/${PUMPS[2]}/events/#`] });
    const lost = record(eventBody(PUMPS[2]!, { subfolder: 'slow' }));
    const fine = record(eventBody(PUMPS[3]!));
    const run = await runSession(emulator, fleet, GW.assoc, [lost, fine], { options: { pubackTimeoutMs: 300 } });
    expect(outcomeOf(run, lost)).toMatchObject({ outcome: 'retry', code: 'ERR_PUBACK_TIMEOUT' });
    expect(outcomeOf(run, fine).outcome).toBe('confirmed');
    // The bridge did receive it: the retry will be a duplicate, never a loss.
    expect(emulator.registry.events.some((e) => e.attributes.deviceId === PUMPS[2] && e.attributes.subFolder === 'slow')).toBe(true);
  });

  it('a dropped PUBLISH times out the same way', async () => {
    emulator.setFaults({ dropPublish: [`/devices/${PUMPS[4]}/state`] });
    const dropped = record(stateBody(PUMPS[4]!));
    const run = await runSession(emulator, fleet, GW.assoc, [dropped, record(eventBody(PUMPS[4]!))], { options: { pubackTimeoutMs: 300 } });
    expect(outcomeOf(run, dropped)).toMatchObject({ outcome: 'retry', code: 'ERR_PUBACK_TIMEOUT' });
  });

  it('an attach that is neither acknowledged nor refused times out, and nothing is published for it', async () => {
    emulator.setFaults({ dropPublish: [`/devices/${VALVES[0]}/attach`] });
    const stuck = record(eventBody(VALVES[0]!));
    const fine = record(eventBody(VALVES[1]!));
    const run = await runSession(emulator, fleet, GW.assoc, [stuck, fine], { options: { attachTimeoutMs: 300 } });
    expect(outcomeOf(run, stuck)).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_ATTACH_TIMEOUT' });
    expect(outcomeOf(run, fine).outcome).toBe('confirmed');
    expect(run.report.attachments.get(VALVES[0]!)).toMatchObject({ ok: false, code: 'ERR_ATTACH_TIMEOUT' });
  });

  it('a detach that is never acknowledged leaves its device without the final barrier', async () => {
    emulator.setFaults({ dropPublish: [`/devices/${VALVES[2]}/detach`] });
    const unbarriered = record(eventBody(VALVES[2]!));
    const fine = record(eventBody(VALVES[3]!));
    const run = await runSession(emulator, fleet, GW.assoc, [unbarriered, fine], { options: { closeTimeoutMs: 400 } });
    expect(outcomeOf(run, unbarriered)).toMatchObject({ outcome: 'retry', code: 'ERR_PUBACK_TIMEOUT' });
    expect(outcomeOf(run, unbarriered).reason).toContain('final barrier');
    expect(outcomeOf(run, fine).outcome).toBe('confirmed');
  });
});

describe('deadline', () => {
  it('stops a session the broker is too slow for, detaches in the time left and returns before the deadline', async () => {
    emulator.setFaults({ latencyMs: 400 });
    // CONNACK and SUBACK at 400 ms, attach PUBACKs at 800 ms: work stops at 700 ms, while attaching.
    const deadline = Date.now() + 1200;
    const records = [record(eventBody(PUMPS[5]!)), record(eventBody(PUMPS[6]!)), record(stateBody(PUMPS[5]!))];
    const run = await runSession(emulator, fleet, GW.assoc, records, { options: { deadline, closeTimeoutMs: 500 } });
    const returnedAt = Date.now();
    expect(returnedAt).toBeLessThanOrEqual(deadline + 50);
    expect(run.report.failure).toMatchObject({ code: 'ERR_DEADLINE' });
    expect(run.outcomes.filter((o) => o.outcome !== 'confirmed').every((o) => o.outcome === 'retry' && o.code === 'ERR_DEADLINE')).toBe(true);
    expect(run.outcomes.some((o) => o.outcome !== 'confirmed')).toBe(true);
  });

  it('gives up at once when the deadline has already passed', async () => {
    const run = await runSession(emulator, fleet, GW.assoc, someRecords(), { options: { deadline: Date.now() - 1 } });
    expect(run.report.failure?.code).toBe('ERR_DEADLINE');
    expect(run.elapsedMs).toBeLessThan(200);
    expect(run.outcomes.every((o) => o.code === 'ERR_DEADLINE')).toBe(true);
  });
});

describe('takeover (the bridge closes the older of two connections with one client ID)', () => {
  it('a second connection ends the session; unconfirmed records go back and the session does not reconnect', async () => {
    // Hold the session in publishing: the PUBACK for this record never comes, the intruder connects meanwhile.
    emulator.setFaults({ withholdPuback: [`/devices/${PUMPS[7]}/events`] });
    const takeoversBefore = emulator.takeovers;
    let intruder: MqttClient | undefined;
    const held = record(eventBody(PUMPS[7]!));
    const run = await runSession(emulator, fleet, GW.assoc, [held], {
      options: { pubackTimeoutMs: 5000 },
      whilePublishing: async () => {
        intruder = await connectDevice(emulator, fleet, GW.assoc);
      },
    });
    expect(emulator.takeovers).toBe(takeoversBefore + 1);
    // Ended by the takeover, long before the PUBACK timeout.
    expect(run.elapsedMs).toBeLessThan(4000);
    // MQTT 3.1.1 lets the bridge say nothing about why it closes; the record goes back as for any lost connection.
    expect(run.report.failure?.code).toBe('ERR_CONNECTION_LOST');
    expect(outcomeOf(run, held)).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
    // No reconnect: the intruder still holds the client ID.
    expect(intruder?.connected).toBe(true);
    expect(emulator.connections().filter((c) => c.deviceId === GW.assoc)).toHaveLength(1);
    await intruder?.endAsync();
  });

  it('a kick while attaching ends the session the same way', async () => {
    emulator.setFaults({ latencyMs: 200 });
    const records = [record(eventBody(PUMPS[8]!))];
    const session = new GatewaySession(await sessionOptions(emulator, fleet, GW.assoc));
    const report = await session.run(async (s) => {
      const attaching = s.attach([{ deviceId: PUMPS[8]! }]);
      expect(emulator.kick(GW.assoc)).toBe(true);
      await attaching;
      await s.publish([{ key: records[0]!.messageId, deviceId: PUMPS[8]!, kind: 'event', payload: Buffer.from('x') }]);
    });
    const outcomes = sessionOutcomes(report, records);
    expectOutcomeInvariant({ records, outcomes, emulator, registryId: fleet.registryId });
    expect(report.failure).toMatchObject({ code: 'ERR_CONNECTION_LOST', phase: 'attaching' });
    expect(outcomes[0]).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
  });
});
