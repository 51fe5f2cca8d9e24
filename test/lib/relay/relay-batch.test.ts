import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../../emulator/index.js';
import { RelayError } from '../../../lib/errors.js';
import { parseQueueMessage } from '../../../lib/queue/message.js';
import type { DeviceConfigDelivery } from '../../../lib/relay/config-poll.js';
import { logSafeReason } from '../../../lib/relay/outcomes.js';
import { relayBatch, type RelayBatchDeps } from '../../../lib/relay/relay-batch.js';
import type { InboundRecord } from '../../../lib/relay/route-records.js';
import type { Fleet } from '../../helpers/emulator-fixtures.js';
import { expectOutcomeInvariant } from '../../helpers/outcome-invariant.js';
import {
  eventBody,
  GW,
  inbound,
  makeRelayFleet,
  MALFORMED,
  METERS,
  pollBody,
  PUMPS,
  relayDeps,
  relaySettings,
  stateBody,
  UNBOUND,
  valveConfig,
  VALVES,
} from '../../helpers/relay-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;

beforeAll(async () => {
  fleet = await makeRelayFleet();
  emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false });
});
afterEach(() => emulator.clearFaults());
afterAll(() => emulator.close());

/** Relays a batch and checks the outcome invariant. */
async function relay(records: InboundRecord[], overrides: Partial<RelayBatchDeps> = {}, configs?: Map<string, Buffer>) {
  const result = await relayBatch(records, relayDeps(emulator, fleet, overrides));
  expectOutcomeInvariant({ records, outcomes: result.outcomes, emulator, registryId: fleet.registryId, configsDelivered: configs });
  return result;
}

function parseError(body: string): string {
  try {
    parseQueueMessage(body);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('fixture: this body parses');
}

const outcomeOf = (result: Awaited<ReturnType<typeof relay>>, r: InboundRecord) => result.outcomes.find((o) => o.messageId === r.messageId)!;

describe('relayBatch', () => {
  it('relays a FIFO batch that mixes gateways: one session each, in parallel', async () => {
    const meterToken = await fleet.jwt(METERS[0]!);
    const records = [
      inbound(eventBody(PUMPS[0]!, { subfolder: 'alarms/high' }), { groupId: GW.assoc }),
      inbound(eventBody('east-01', { encoding: 'base64' }), { groupId: GW.east }),
      inbound(stateBody(PUMPS[0]!), { groupId: GW.assoc }),
      inbound(eventBody('west-01'), { groupId: GW.west }),
      inbound(eventBody(METERS[0]!, { deviceToken: meterToken, encoding: 'base64' }), { groupId: GW.token }),
      inbound(stateBody('east-02', { encoding: 'base64' }), { groupId: GW.east }),
      inbound(stateBody(PUMPS[0]!), { groupId: GW.assoc }),
      inbound(eventBody('west-02', { subfolder: 'diag' }), { groupId: GW.west }),
    ];
    const result = await relay(records);
    expect(result.outcomes.map((o) => o.outcome)).toEqual(records.map(() => 'confirmed'));
    expect(result.sessions.map((s) => s.gatewayId).sort()).toEqual([GW.assoc, GW.east, GW.token, GW.west].sort());
    expect(result.sessions.every((s) => s.failure === undefined && s.phases.at(-1) === 'closed')).toBe(true);
    // The older state of pump-01 was coalesced into the newer one.
    expect(outcomeOf(result, records[2]!).coalescedInto).toBe(records[6]!.messageId);
    // Each gateway relayed its own devices.
    const gatewayOf = (deviceId: string) => emulator.registry.events.filter((e) => e.attributes.deviceId === deviceId).at(-1)?.attributes.gatewayId;
    expect(gatewayOf('east-01')).toBe(GW.east);
    expect(gatewayOf('west-02')).toBe(GW.west);
    expect(gatewayOf(METERS[0]!)).toBe(GW.token);
  });

  it(`dead-letters ${MALFORMED.length} malformed records, each with its own reason, and delivers the good ones beside them`, async () => {
    const bad = MALFORMED.map((c) => ({ c, record: inbound(c.body, { groupId: GW.assoc }) }));
    const good = [inbound(eventBody(PUMPS[1]!), { groupId: GW.assoc }), inbound(stateBody(PUMPS[2]!), { groupId: GW.assoc }), inbound(eventBody(PUMPS[3]!, { encoding: 'base64' }), { groupId: GW.assoc })];
    const records = [good[0]!, ...bad.slice(0, 20).map((b) => b.record), good[1]!, ...bad.slice(20).map((b) => b.record), good[2]!];
    const result = await relay(records);
    for (const g of good) expect(outcomeOf(result, g).outcome).toBe('confirmed');
    for (const { c, record } of bad) {
      const o = outcomeOf(result, record);
      expect(o, c.name).toMatchObject({ outcome: 'dead-letter', code: c.code });
      if (c.field !== undefined) {
        expect(o.field, c.name).toBe(c.field);
        expect(o.reason, c.name).toContain(c.field);
      }
      // Its own reason: exactly what is wrong with this body, read on its own.
      expect(o.reason, c.name).toBe(logSafeReason(parseError(c.body)));
    }
  });

  it('sends the attach payload with the newest token of a device', async () => {
    const expired = await fleet.jwt(METERS[1]!, { iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 });
    const fresh = await fleet.jwt(METERS[1]!);
    const records = [inbound(eventBody(METERS[1]!, { deviceToken: expired })), inbound(eventBody(METERS[1]!, { deviceToken: fresh }))].map((r) => ({ ...r, groupId: GW.token }));
    const result = await relay(records);
    expect(result.outcomes.map((o) => o.outcome)).toEqual(['confirmed', 'confirmed']);
    const refused = await relay([inbound(eventBody(METERS[1]!, { deviceToken: expired }), { groupId: GW.token })]);
    expect(refused.outcomes[0]).toMatchObject({ outcome: 'dead-letter', code: 'ERR_ATTACH_REJECTED' });
  });

  it('fails back only the records of a gateway whose key is unavailable', async () => {
    const records = [inbound(eventBody(PUMPS[4]!), { groupId: GW.assoc }), inbound(eventBody('east-01'), { groupId: GW.east })];
    const result = await relay(records, {
      gatewayJwt: async (gatewayId) => {
        if (gatewayId === GW.assoc) throw new RelayError('ERR_KEY_UNAVAILABLE', 'secret gw-keys could not be read: ThrottlingException');
        return fleet.jwt(gatewayId);
      },
    });
    expect(outcomeOf(result, records[0]!)).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_KEY_UNAVAILABLE', gatewayId: GW.assoc });
    expect(outcomeOf(result, records[1]!).outcome).toBe('confirmed');
  });

  it('fails back everything with ERR_DEADLINE when no time is left', async () => {
    const records = [inbound(eventBody(PUMPS[5]!), { groupId: GW.assoc }), inbound(eventBody('west-01'), { groupId: GW.west })];
    const result = await relay(records, { deadline: Date.now() });
    expect(result.outcomes.map((o) => [o.outcome, o.code])).toEqual([
      ['retry', 'ERR_DEADLINE'],
      ['retry', 'ERR_DEADLINE'],
    ]);
  });

  it('gives a lost connection to every record of that gateway only', async () => {
    emulator.setFaults({ closeAtPhase: 'attach' });
    const records = [inbound(eventBody(PUMPS[6]!), { groupId: GW.assoc })];
    const result = await relay(records);
    expect(result.outcomes[0]).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
    expect(result.sessions[0]!.failure).toMatchObject({ code: 'ERR_CONNECTION_LOST', phase: 'attaching' });
  });
});

describe('config-poll records', () => {
  it('are served in the session: each device\'s current config goes to the sink, and the job is confirmed', async () => {
    const configs = new Map<string, Buffer>();
    const sink = (d: DeviceConfigDelivery): void => {
      configs.set(d.deviceId, d.payload);
    };
    const poll = inbound(pollBody([VALVES[0]!, VALVES[1]!]), { groupId: GW.assoc });
    const telemetry = inbound(eventBody(VALVES[0]!), { groupId: GW.assoc });
    const result = await relay([poll, telemetry], { configSink: sink }, configs);
    expect(result.outcomes.map((o) => o.outcome)).toEqual(['confirmed', 'confirmed']);
    expect(configs.get(VALVES[0]!)?.toString()).toBe(valveConfig(VALVES[0]!));
    expect(configs.get(VALVES[1]!)?.toString()).toBe(valveConfig(VALVES[1]!));
  });

  it('fail with the device\'s own reason when one device cannot be served', async () => {
    const poll = inbound(pollBody([VALVES[2]!, UNBOUND]), { groupId: GW.assoc });
    const result = await relay([poll], { configSink: () => {} });
    expect(result.outcomes[0]).toMatchObject({ outcome: 'dead-letter', code: 'ERR_ATTACH_REJECTED' });
  });

  it('prefer a retry when one device failed for a passing reason', async () => {
    emulator.setFaults({ dropPublish: [`/devices/${VALVES[3]}/attach`] });
    const poll = inbound(pollBody([VALVES[3]!, UNBOUND]), { groupId: GW.assoc });
    const result = await relay([poll], { configSink: () => {}, settings: relaySettings(emulator, fleet, { attachTimeoutMs: 300 }) });
    expect(result.outcomes[0]).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_ATTACH_TIMEOUT' });
  });

  it('fail back when the sink refuses the config', async () => {
    const poll = inbound(pollBody([VALVES[4]!]), { groupId: GW.assoc });
    const result = await relay([poll], {
      configSink: () => {
        throw new RelayError('ERR_STORE_CONFLICT', 'a newer config was stored meanwhile');
      },
    });
    expect(result.outcomes[0]).toMatchObject({ outcome: 'retry', code: 'ERR_STORE_CONFLICT' });
  });
});
