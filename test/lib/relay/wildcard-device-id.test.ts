/**
 * A device ID that IoT Core allows and MQTT forbids in a topic name: `pump+x`. The emulator holds it as IoT Core
 * would (created and bound to the gateway), and closes any connection that publishes on a topic containing it. The
 * relay must dead-letter the record before any session, so that the records beside it in the batch are relayed in
 * one session over one connection that stays up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../../emulator/index.js';
import { relayBatch } from '../../../lib/relay/relay-batch.js';
import { makeFleet, type Fleet } from '../../helpers/emulator-fixtures.js';
import { expectOutcomeInvariant } from '../../helpers/outcome-invariant.js';
import { eventBody, GW, inbound, pollBody, relayDeps, stateBody } from '../../helpers/relay-fixtures.js';

const PLUS = 'pump+x';
const GOOD = ['pump-01', 'pump-02', 'pump-03'];

let fleet: Fleet;
let emulator: Emulator;
const log: string[] = [];

beforeAll(async () => {
  fleet = await makeFleet({
    gateways: [{ id: GW.assoc, bound: [...GOOD, PLUS] }],
    devices: [...GOOD, PLUS].map((id) => ({ id, keyless: true })),
  });
  emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false, log: (line) => log.push(line) });
});
afterAll(() => emulator.close());

describe('a record for a device whose ID holds a +', () => {
  it('is dead-lettered with its own code while its neighbours are confirmed over one connection that stays up', async () => {
    expect(emulator.registry.getDevice(fleet.registryId, PLUS).id).toBe(PLUS);
    const records = [
      inbound(eventBody(GOOD[0]!), { groupId: GW.assoc }),
      inbound(eventBody(PLUS), { groupId: GW.assoc }),
      inbound(stateBody(GOOD[1]!), { groupId: GW.assoc }),
      inbound(pollBody([GOOD[2]!, PLUS]), { groupId: GW.assoc }),
      inbound(eventBody(GOOD[2]!, { subfolder: 'alarms' }), { groupId: GW.assoc }),
    ];
    const accepted = emulator.connectionsAccepted;
    log.length = 0;

    const result = await relayBatch(records, relayDeps(emulator, fleet));

    expectOutcomeInvariant({ records, outcomes: result.outcomes, emulator, registryId: fleet.registryId });
    const outcome = (i: number) => result.outcomes.find((o) => o.messageId === records[i]!.messageId)!;
    expect(outcome(1)).toMatchObject({ outcome: 'dead-letter', code: 'ERR_DEVICE_ID_MQTT_WILDCARD', field: 'deviceId' });
    expect(outcome(1).reason).toMatch(/"pump\+x" is a valid IoT Core device ID, but its '\+' is an MQTT wildcard/);
    expect(outcome(3)).toMatchObject({ outcome: 'dead-letter', code: 'ERR_DEVICE_ID_MQTT_WILDCARD', field: 'deviceIds[1]' });
    for (const i of [0, 2, 4]) expect(outcome(i).outcome).toBe('confirmed');

    // One connection, closed by the relay's DISCONNECT only: no protocol violation, nothing published for pump+x.
    expect(emulator.connectionsAccepted - accepted).toBe(1);
    expect(log.filter((line) => line.includes('closing'))).toEqual([]);
    expect(log.filter((line) => line.includes(PLUS))).toEqual([]);
    expect(emulator.registry.events.filter((e) => e.attributes.deviceId === PLUS)).toEqual([]);
    expect(emulator.registry.getDevice(fleet.registryId, GW.assoc).lastErrorStatus).toBeUndefined();
  });
});
