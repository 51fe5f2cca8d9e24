import { Metrics } from '@aws-lambda-powertools/metrics';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../../emulator/index.js';
import { ConfigStore } from '../../../lib/config-store/index.js';
import { RelayError } from '../../../lib/errors.js';
import type { SessionLog } from '../../../lib/gateway/session.js';
import { parseQueueMessage } from '../../../lib/queue/message.js';
import { logSafeReason } from '../../../lib/relay/outcomes.js';
import { relayBatch, type RelayBatchDeps, type RelayBatchResult, type RelayConfigStore } from '../../../lib/relay/relay-batch.js';
import type { InboundRecord } from '../../../lib/relay/route-records.js';
import type { Fleet } from '../../helpers/emulator-fixtures.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../../helpers/local-dynamodb.js';
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
let db: LocalDynamoDb;
let store: ConfigStore;

beforeAll(async () => {
  [fleet, db] = await Promise.all([makeRelayFleet(), startLocalDynamoDb()]);
  emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false });
  store = new ConfigStore({ tableName: db.tableName, client: db.client });
});
afterEach(() => emulator.clearFaults());
afterAll(async () => {
  await Promise.all([emulator.close(), db.stop()]);
});

/** Every device the batch's config polls accounted for, with its outcome. */
const polledDevices = (result: RelayBatchResult): Map<string, unknown> =>
  new Map(result.sessions.flatMap((s) => s.configPoll?.outcomes ?? []).map((o) => [o.deviceId, o]));

/** Relays a batch and checks the outcome invariant. */
async function relay(records: InboundRecord[], overrides: Partial<RelayBatchDeps> = {}) {
  const result = await relayBatch(records, relayDeps(emulator, fleet, overrides));
  expectOutcomeInvariant({ records, outcomes: result.outcomes, emulator, registryId: fleet.registryId, configsDelivered: polledDevices(result) });
  return result;
}

/** A log that keeps every line. */
function recordingLog(): SessionLog & { lines: { message: string; extra: Record<string, unknown> }[] } {
  const lines: { message: string; extra: Record<string, unknown> }[] = [];
  const keep = (message: string, extra: Record<string, unknown> = {}) => void lines.push({ message, extra });
  return { lines, debug: keep, info: keep, warn: keep };
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
  it('are served in the session beside telemetry: each config is stored, the devices relayed for are noted, the job is confirmed', async () => {
    const poll = inbound(pollBody([VALVES[0]!, VALVES[1]!]), { groupId: GW.assoc });
    const telemetry = inbound(eventBody(VALVES[0]!), { groupId: GW.assoc });
    const before = new Date(Date.now() - 1000);
    const takeovers = emulator.takeovers;

    const result = await relay([poll, telemetry], { configStore: store });

    expect(result.outcomes.map((o) => o.outcome)).toEqual(['confirmed', 'confirmed']);
    expect((await store.getConfig(VALVES[0]!))?.bytes.toString()).toBe(valveConfig(VALVES[0]!));
    expect((await store.getConfig(VALVES[1]!))?.bytes.toString()).toBe(valveConfig(VALVES[1]!));
    // One session, one connection: the poll did not open a second one beside the telemetry's.
    expect(result.sessions).toHaveLength(1);
    expect(emulator.takeovers).toBe(takeovers);
    // Only the device whose telemetry was relayed is noted for the poller.
    const recent = await store.recentlyRelayed(before);
    expect(recent).toContain(VALVES[0]);
    expect(recent).not.toContain(VALVES[1]);
  });

  it('are confirmed when a device cannot be attached, which is reported, not retried', async () => {
    const metrics = new Metrics({ namespace: 'RelayBatchTest', serviceName: 'relay-batch-test' });
    const log = recordingLog();
    const poll = inbound(pollBody([VALVES[2]!, UNBOUND]), { groupId: GW.assoc });
    const result = await relay([poll], { configStore: store, metrics, log });
    expect(result.outcomes[0]).toMatchObject({ outcome: 'confirmed' });
    expect(polledDevices(result).get(UNBOUND)).toMatchObject({ status: 'missing', reason: 'attach-rejected', code: 'ERR_ATTACH_REJECTED' });
    expect(polledDevices(result).get(VALVES[2]!)).toMatchObject({ status: 'changed', version: 1 });
    expect(log.lines.find((l) => l.message === 'config missing')?.extra).toMatchObject({ deviceId: UNBOUND, reason: 'attach-rejected' });
    expect(metrics.serializeMetrics()).toMatchObject({ ConfigsMissing: 1, DevicesPolled: 3 });
  });

  it('are confirmed when an attach times out: the next schedule polls the device again', async () => {
    emulator.setFaults({ dropPublish: [`/devices/${VALVES[3]}/attach`] });
    const poll = inbound(pollBody([VALVES[3]!, VALVES[4]!]), { groupId: GW.assoc });
    const result = await relay([poll], { configStore: store, settings: relaySettings(emulator, fleet, { attachTimeoutMs: 300 }) });
    expect(result.outcomes[0]).toMatchObject({ outcome: 'confirmed' });
    expect(polledDevices(result).get(VALVES[3]!)).toMatchObject({ status: 'missing', reason: 'attach-failed', code: 'ERR_ATTACH_TIMEOUT' });
    expect(await store.getConfig(VALVES[4]!)).toBeDefined();
  });

  it('fail back with the store\'s code when a config arrived but could not be stored', async () => {
    const conflicted: RelayConfigStore = {
      putConfig: () => Promise.reject(new RelayError('ERR_STORE_CONFLICT', 'a newer config was stored meanwhile')),
      noteRelayed: () => Promise.resolve(),
    };
    const poll = inbound(pollBody([VALVES[4]!]), { groupId: GW.assoc });
    const result = await relay([poll], { configStore: conflicted });
    expect(result.outcomes[0]).toMatchObject({ outcome: 'retry', code: 'ERR_STORE_CONFLICT' });

    const noTable = new ConfigStore({ tableName: 'no-such-table', client: db.client });
    const again = await relay([inbound(pollBody([VALVES[4]!]), { groupId: GW.assoc })], { configStore: noTable });
    expect(again.outcomes[0]).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_STORE_UNAVAILABLE' });
  });

  it('fail back with the session\'s code when the session fails before the poll can run', async () => {
    emulator.setFaults({ closeAtPhase: 'subscribe' });
    const poll = inbound(pollBody([VALVES[5]!]), { groupId: GW.assoc });
    const result = await relay([poll], { configStore: store });
    expect(result.outcomes[0]).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
    expect(result.sessions[0]!.configPoll).toBeUndefined();
  });

  it('fail back when the connection is lost while configs could still arrive', async () => {
    // CONNECT, the errors subscription and the attach are handled; then the bridge drops the connection.
    emulator.setFaults({ closeAfterPackets: 3 });
    const poll = inbound(pollBody([VALVES[6]!]), { groupId: GW.assoc });
    const result = await relay([poll], { configStore: store });
    expect(result.outcomes[0]).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
  });

  it('are only counted when there is no config store', async () => {
    const metrics = new Metrics({ namespace: 'RelayBatchTest', serviceName: 'relay-batch-test' });
    const poll = inbound(pollBody([VALVES[7]!]), { groupId: GW.assoc });
    const result = await relay([poll], { metrics });
    expect(result.outcomes[0]).toMatchObject({ outcome: 'confirmed' });
    expect(polledDevices(result).get(VALVES[7]!)).toEqual({ deviceId: VALVES[7], status: 'received' });
    expect(await store.getConfig(VALVES[7]!)).toBeUndefined();
    expect(metrics.serializeMetrics()).toMatchObject({ ConfigsNotStored: 2, DevicesPolled: 2 });
  });
});

describe('noting the devices relayed for', () => {
  it('never fails the batch: a failed write is logged and counted, and the records stay confirmed', async () => {
    const metrics = new Metrics({ namespace: 'RelayBatchTest', serviceName: 'relay-batch-test' });
    const log = recordingLog();
    const broken: RelayConfigStore = { putConfig: () => Promise.reject(new Error('unused')), noteRelayed: () => Promise.reject(new Error('ProvisionedThroughputExceededException')) };
    const records = [inbound(eventBody(PUMPS[7]!), { groupId: GW.assoc }), inbound(stateBody(PUMPS[8]!), { groupId: GW.assoc })];
    const result = await relay(records, { configStore: broken, metrics, log });
    expect(result.outcomes.map((o) => o.outcome)).toEqual(['confirmed', 'confirmed']);
    expect(log.lines.find((l) => l.message.startsWith('devices relayed for were not noted'))?.extra).toMatchObject({ devices: 2 });
    expect(metrics.serializeMetrics()).toMatchObject({ NoteRelayedFailures: 1 });
  });

  it('gives up at the deadline instead of holding the invocation', async () => {
    const log = recordingLog();
    const hanging: RelayConfigStore = { putConfig: () => new Promise(() => {}), noteRelayed: () => new Promise(() => {}) };
    const started = Date.now();
    const result = await relay([inbound(eventBody(PUMPS[9]!), { groupId: GW.assoc })], { configStore: hanging, log, deadline: Date.now() + 1500 });
    expect(result.outcomes[0]!.outcome).toBe('confirmed');
    expect(Date.now() - started).toBeLessThan(2500);
    expect(log.lines.find((l) => l.message.startsWith('devices relayed for were not noted'))?.extra).toMatchObject({ code: 'ERR_DEADLINE' });
  });
});
