/**
 * The session against each variant of the bridge where ClearBlade's behaviour is unconfirmed
 * (docs/protocol.md §8): one emulator per variant.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Emulator, EmulatorOptions } from '../../../emulator/index.js';
import { connackCode, connectDevice, type Fleet } from '../../helpers/emulator-fixtures.js';
import { eventBody, GW, makeRelayFleet, outcomeOf, PUMPS, record, runSession, stateBody, UNBOUND, VALVES, variantEmulator } from '../../helpers/relay-fixtures.js';

let fleet: Fleet;
beforeAll(async () => {
  fleet = await makeRelayFleet();
});

/** Starts an emulator with `options` for the enclosing describe block. */
function variant(options: EmulatorOptions): () => Emulator {
  return variantEmulator(() => fleet, options);
}

describe('authFailureCode 5 (Google)', () => {
  const emulator = variant({ authFailureCode: 5 });
  it('a refused JWT is a credential failure with 5 as with 4', async () => {
    const run = await runSession(emulator(), fleet, GW.assoc, [record(eventBody(PUMPS[0]!))], {
      options: { jwt: await fleet.jwt(GW.assoc, { lifetimeSeconds: 25 * 3600 }) },
    });
    expect(run.report.failure).toMatchObject({ code: 'ERR_CONNECT_REFUSED_AUTH' });
    expect(run.report.failure?.reason).toContain('CONNACK 5');
    expect(run.outcomes[0]).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_CONNECT_REFUSED_AUTH' });
  });
});

describe("duplicateClientId 'refuse' (ClearBlade's documented CONNACK 2)", () => {
  const emulator = variant({ duplicateClientId: 'refuse' });

  it('refuses the session while another connection holds the client ID', async () => {
    const holder = await connectDevice(emulator(), fleet, GW.assoc);
    try {
      const run = await runSession(emulator(), fleet, GW.assoc, [record(eventBody(PUMPS[1]!))]);
      expect(run.report.failure).toMatchObject({ code: 'ERR_TAKEOVER', phase: 'connecting' });
      expect(run.outcomes[0]).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_TAKEOVER' });
    } finally {
      await holder.endAsync();
    }
  });

  it('keeps the session when a second connection tries to take the client ID', async () => {
    emulator().setFaults({ latencyMs: 100 });
    let intruderCode: number | undefined;
    const records = [record(eventBody(PUMPS[2]!)), record(stateBody(PUMPS[2]!))];
    const run = await runSession(emulator(), fleet, GW.assoc, records, {
      whilePublishing: async () => {
        intruderCode = await connackCode(emulator(), fleet, GW.assoc);
      },
    });
    emulator().clearFaults();
    expect(intruderCode).toBe(2);
    expect(run.outcomes.map((o) => o.outcome)).toEqual(['confirmed', 'confirmed']);
  });
});

describe('ackFailedAttach (a refused attach is acknowledged too)', () => {
  const emulator = variant({ ackFailedAttach: true });
  it('still treats the attach as refused, publishes nothing for the device, and delivers the others', async () => {
    const refused = record(eventBody(UNBOUND));
    const fine = record(eventBody(PUMPS[3]!));
    const run = await runSession(emulator(), fleet, GW.assoc, [refused, fine]);
    expect(outcomeOf(run, refused)).toMatchObject({ outcome: 'dead-letter', code: 'ERR_ATTACH_REJECTED' });
    expect(outcomeOf(run, fine).outcome).toBe('confirmed');
    expect(run.report.gatewayErrors.map((e) => e.errorType)).toEqual(['GATEWAY_ATTACHMENT_ERROR']);
    expect(emulator().registry.events.some((e) => e.attributes.deviceId === UNBOUND)).toBe(false);
  });
});

describe("errorShape 'flat' (the packet fields at the top level)", () => {
  const emulator = variant({ errorShape: 'flat' });
  it('correlates errors by packet ID all the same', async () => {
    const refused = record(eventBody(UNBOUND));
    const run = await runSession(emulator(), fleet, GW.assoc, [refused, record(eventBody(PUMPS[4]!))]);
    expect(outcomeOf(run, refused)).toMatchObject({ code: 'ERR_ATTACH_REJECTED' });
    expect(run.report.gatewayErrors[0]?.packetId).toBeGreaterThan(0);
    expect(run.report.uncorrelatedErrors).toBe(0);
  });
});

describe('clockSkewSeconds 0 (the bridge drops the connection right at exp)', () => {
  const emulator = variant({ clockSkewSeconds: 0 });
  it('a gateway JWT that expires mid-session ends it; what was not confirmed goes back', async () => {
    emulator().setFaults({ withholdPuback: [`/devices/${VALVES[0]}/events`] });
    const exp = Math.floor(Date.now() / 1000) + 2;
    const early = record(eventBody(VALVES[1]!));
    const held = record(eventBody(VALVES[0]!));
    const run = await runSession(emulator(), fleet, GW.assoc, [early, held], {
      options: { jwt: await fleet.jwt(GW.assoc, { exp }), pubackTimeoutMs: 8000, deadline: Date.now() + 10_000 },
    });
    emulator().clearFaults();
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
    expect(run.report.failure).toMatchObject({ code: 'ERR_CONNECTION_LOST', phase: 'publishing' });
    expect(run.report.failure?.reason).toContain('JWT expired');
    expect(outcomeOf(run, held)).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
    // Acknowledged, but the session ended before its barrier: it goes back too.
    expect(outcomeOf(run, early)).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
  });
});

describe('stateRateLimit (the bridge detaches a device over 1 state/s)', () => {
  const emulator = variant({ stateRateLimit: true });
  it('an error naming the device un-confirms its records, PUBACKed ones included; DEVICE_NOT_FOUND follows', async () => {
    const device = PUMPS[5]!;
    // The first session stores a state for the device...
    const first = await runSession(emulator(), fleet, GW.assoc, [record(stateBody(device))]);
    expect(first.outcomes[0]!.outcome).toBe('confirmed');
    // ...so the second one's state, within the same second, gets the device detached (GATEWAY_DETACHMENT_DEVICE_ERROR).
    emulator().setFaults({ latencyMs: 20 });
    const before = record(eventBody(device, { subfolder: 'before' }));
    const state = record(stateBody(device));
    const after = [record(eventBody(device, { subfolder: 'after' })), record(eventBody(device, { subfolder: 'after' }))];
    const other = record(eventBody(PUMPS[6]!));
    const run = await runSession(emulator(), fleet, GW.assoc, [before, state, ...after, other]);
    emulator().clearFaults();
    const types = run.report.gatewayErrors.map((e) => e.errorType);
    expect(types).toContain('GATEWAY_DETACHMENT_DEVICE_ERROR');
    expect(types).toContain('GATEWAY_DEVICE_NOT_FOUND');
    for (const r of [before, state, ...after]) {
      expect(['ERR_DEVICE_DETACHED', 'ERR_DEVICE_NOT_FOUND']).toContain(outcomeOf(run, r).code);
    }
    // `before` was received and PUBACKed, and still goes back: the error named its device before the barrier.
    expect(emulator().registry.events.some((e) => e.attributes.deviceId === device && e.attributes.subFolder === 'before')).toBe(true);
    expect(outcomeOf(run, other).outcome).toBe('confirmed');
  });
});

describe('deadline against a slow broker, with every record in flight', () => {
  const emulator = variant({ latencyMs: 400 });
  it('returns in time when the deadline falls while publishing, and counts the PUBACKs that arrive while detaching', async () => {
    // CONNACK and SUBACK come together (the SUBSCRIBE rides behind the CONNECT), then attach and publish PUBACKs
    // 400 ms apart: publishing runs from about 0.8 s (plus the TLS handshake) to 1.2 s; work stops at 1.1 s, and
    // the detach acknowledgements (400 ms) fit in the 700 ms left.
    const deadline = Date.now() + 1800;
    const records = VALVES.slice(2, 8).map((d) => record(eventBody(d)));
    const run = await runSession(emulator(), fleet, GW.assoc, records, { options: { deadline, closeTimeoutMs: 700 } });
    expect(Date.now()).toBeLessThanOrEqual(deadline + 50);
    expect(run.report.failure).toMatchObject({ code: 'ERR_DEADLINE', phase: 'publishing' });
    expect(run.report.phases).toContain('detaching');
    // The PUBACKs already on their way when work stopped arrive during the detach, before its acknowledgements:
    // they still confirm their records.
    expect(run.outcomes.map((o) => o.outcome)).toEqual(records.map(() => 'confirmed'));
  });
});

describe('packetsBeforeConnack: drop (a bridge that does not read what comes before its CONNACK)', () => {
  const emulator = variant({ packetsBeforeConnack: 'drop' });
  it('subscribes again after the CONNACK and delivers the batch', async () => {
    const records = [record(eventBody(PUMPS[9]!)), record(stateBody(PUMPS[9]!))];
    const run = await runSession(emulator(), fleet, GW.assoc, records);
    expect(run.report.failure).toBeUndefined();
    expect(run.outcomes.map((o) => o.outcome)).toEqual(['confirmed', 'confirmed']);
  });

  it('still matches errors to the attach they are about', async () => {
    const refused = record(eventBody(UNBOUND));
    const run = await runSession(emulator(), fleet, GW.assoc, [refused]);
    expect(outcomeOf(run, refused)).toMatchObject({ outcome: 'dead-letter', code: 'ERR_ATTACH_REJECTED' });
  });
});

describe('packetsBeforeConnack: close (a bridge that closes on packets before its CONNACK)', () => {
  const emulator = variant({ packetsBeforeConnack: 'close' });
  it('loses the connection while connecting, every record going back', async () => {
    const r = record(eventBody(PUMPS[10]!));
    const run = await runSession(emulator(), fleet, GW.assoc, [r]);
    expect(run.report.failure).toMatchObject({ code: 'ERR_CONNECTION_LOST', phase: 'connecting' });
    expect(outcomeOf(run, r)).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
  });

  it('works with subscribeBeforeConnack: false (RELAY_SUBSCRIBE_BEFORE_CONNACK=false)', async () => {
    const r = record(eventBody(PUMPS[10]!));
    const run = await runSession(emulator(), fleet, GW.assoc, [r], { options: { subscribeBeforeConnack: false } });
    expect(run.report.failure).toBeUndefined();
    expect(outcomeOf(run, r).outcome).toBe('confirmed');
  });
});
