/**
 * The session against a bridge that acknowledges publishes it then refuses (`ackFailedPublish`, with
 * `ackFailedAttach` for attaches): a PUBACK followed by an errors-topic message naming the packet or its device.
 * A PUBACK is never enough to confirm a record: the error wins, whichever comes first, and only the records it names
 * go back.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Emulator, EmulatorOptions } from '../../../emulator/index.js';
import type { Fleet } from '../../helpers/emulator-fixtures.js';
import { eventBody, GW, makeRelayFleet, outcomeOf, PUMPS, record, runSession, stateBody, UNBOUND, VALVES, variantEmulator } from '../../helpers/relay-fixtures.js';

let fleet: Fleet;
beforeAll(async () => {
  fleet = await makeRelayFleet();
});

/** Starts an emulator with `options` for the enclosing describe block; its connection log is kept. */
function variant(options: EmulatorOptions): { emulator: () => Emulator; log: string[] } {
  const log: string[] = [];
  return { emulator: variantEmulator(() => fleet, { log: (line) => log.push(line), ...options }), log };
}

const storedStates = (e: Emulator, deviceId: string): number => e.registry.states(fleet.registryId, deviceId).length;

describe('ackFailedPublish: a state over 1/s is PUBACKed, then its device detached (GATEWAY_DETACHMENT_DEVICE_ERROR)', () => {
  const { emulator, log } = variant({ ackFailedPublish: true, stateRateLimit: true });

  it('fails the acknowledged state with ERR_DEVICE_DETACHED, never confirmed, and confirms the neighbours', async () => {
    const device = PUMPS[0]!;
    // A first session stores a state for the device, so the next one's, within the same second, is over the rate.
    const first = await runSession(emulator(), fleet, GW.assoc, [record(stateBody(device))]);
    expect(first.outcomes[0]!.outcome).toBe('confirmed');
    const states = storedStates(emulator(), device);

    const state = record(stateBody(device));
    const neighbours = [record(eventBody(PUMPS[1]!)), record(stateBody(PUMPS[2]!)), record(eventBody(VALVES[0]!))];
    const run = await runSession(emulator(), fleet, GW.assoc, [state, ...neighbours]);

    // The bridge acknowledged the state before refusing it...
    expect(log.some((l) => l.includes(`for the refused PUBLISH to /devices/${device}/state (ackFailedPublish)`))).toBe(true);
    expect(run.report.gatewayErrors.map((e) => [e.errorType, e.deviceId])).toEqual([['GATEWAY_DETACHMENT_DEVICE_ERROR', device]]);
    // ...and the record goes back with the code of the error that named it.
    expect(outcomeOf(run, state)).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_DEVICE_DETACHED' });
    expect(storedStates(emulator(), device)).toBe(states);
    for (const r of neighbours) expect(outcomeOf(run, r).outcome).toBe('confirmed');
  });

  it("un-confirms the device's records around it too, the PUBACKed ones before it included", async () => {
    const device = PUMPS[3]!;
    const first = await runSession(emulator(), fleet, GW.assoc, [record(stateBody(device))]);
    expect(first.outcomes[0]!.outcome).toBe('confirmed');

    emulator().setFaults({ latencyMs: 20 });
    const before = record(eventBody(device, { subfolder: 'before' }));
    const state = record(stateBody(device));
    const after = record(eventBody(device, { subfolder: 'after' }));
    const neighbour = record(eventBody(PUMPS[4]!));
    const run = await runSession(emulator(), fleet, GW.assoc, [before, state, after, neighbour]);
    emulator().clearFaults();

    // `before` was received and acknowledged, and still goes back: the detachment names its device before the barrier.
    expect(emulator().registry.events.some((e) => e.attributes.deviceId === device && e.attributes.subFolder === 'before')).toBe(true);
    for (const r of [before, state, after]) expect(outcomeOf(run, r)).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_DEVICE_DETACHED' });
    expect(outcomeOf(run, neighbour).outcome).toBe('confirmed');
  });

  it('confirms everything when nothing is refused: the option changes only the answer to a refusal', async () => {
    const records = [record(eventBody(PUMPS[5]!)), record(stateBody(PUMPS[6]!)), record(eventBody(VALVES[1]!))];
    const run = await runSession(emulator(), fleet, GW.assoc, records);
    expect(run.outcomes.map((o) => o.outcome)).toEqual(['confirmed', 'confirmed', 'confirmed']);
    expect(run.report.gatewayErrors).toEqual([]);
  });
});

describe('ackFailedPublish with ackFailedAttach: a refused attach and everything after it acknowledged', () => {
  const { emulator } = variant({ ackFailedPublish: true, ackFailedAttach: true, stateRateLimit: false });

  it('dead-letters the refused device, publishes nothing for it, and confirms the others', async () => {
    const refused = [record(eventBody(UNBOUND)), record(stateBody(UNBOUND))];
    const fine = [record(eventBody(PUMPS[7]!)), record(stateBody(PUMPS[8]!))];
    const run = await runSession(emulator(), fleet, GW.assoc, [...refused, ...fine]);
    for (const r of refused) expect(outcomeOf(run, r)).toMatchObject({ outcome: 'dead-letter', code: 'ERR_ATTACH_REJECTED' });
    for (const r of fine) expect(outcomeOf(run, r).outcome).toBe('confirmed');
    expect(run.report.gatewayErrors.map((e) => e.errorType)).toEqual(['GATEWAY_ATTACHMENT_ERROR']);
    expect(emulator().registry.events.some((e) => e.attributes.deviceId === UNBOUND)).toBe(false);
  });
});
