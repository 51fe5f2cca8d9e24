/**
 * The session, and a config-poll chunk, against a bridge that limits PUBLISH packets a second per connection
 * (emulator/publish-rate.ts, at Cloud IoT Core's documented 100), for each reaction to an overrun (slow, drop,
 * close), with and without the relay's pace (lib/gateway/publish-pace.ts). Under every variant the outcome
 * invariant holds; with a pace at or under the limit, everything is confirmed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../../emulator/index.js';
import { BRIDGE_MESSAGES_PER_SECOND } from '../../../lib/gateway/publish-pace.js';
import { DISPOSITIONS } from '../../../lib/relay/outcomes.js';
import { relayBatch, type RelayBatchResult } from '../../../lib/relay/relay-batch.js';
import { makeFleet, type Fleet } from '../../helpers/emulator-fixtures.js';
import { expectOutcomeInvariant } from '../../helpers/outcome-invariant.js';
import { eventBody, inbound, pollBody, record, relayDeps, relaySettings, runSession, uniquePayload, type SessionRun } from '../../helpers/relay-fixtures.js';

const LIMIT = BRIDGE_MESSAGES_PER_SECOND;
const GATEWAY = 'gw-rate';
const PUMPS = Array.from({ length: 10 }, (_, i) => `rate-pump-${String(i + 1).padStart(2, '0')}`);
/** One config-poll chunk: the poller's default of 100 devices. */
const POLLED = Array.from({ length: 100 }, (_, i) => `rate-cfg-${String(i + 1).padStart(3, '0')}`);

let fleet: Fleet;
beforeAll(async () => {
  fleet = await makeFleet({
    gateways: [{ id: GATEWAY, bound: [...PUMPS, ...POLLED] }],
    devices: [...PUMPS.map((id) => ({ id, keyless: true })), ...POLLED.map((id) => ({ id, keyless: true, config: `{"device":"${id}"}` }))],
  });
});

/** Starts an emulator limiting each connection to LIMIT PUBLISHes a second (or as `limits` says), reacting with `overrun`. */
function bridgeThat(overrun: 'slow' | 'drop' | 'close', limits: EmulatorOptions = { connectionMessageRate: LIMIT }): () => Emulator {
  let emulator: Emulator | undefined;
  beforeAll(async () => {
    emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false, rateOverrun: overrun, ...limits });
  });
  afterAll(() => emulator?.close());
  return () => emulator!;
}

/**
 * 12 events for each of 10 devices, in device order round by round: with the attaches and detaches, 140 PUBLISHes,
 * most of them in the first second unless paced.
 */
const batch = () => Array.from({ length: 120 }, (_, i) => record(eventBody(PUMPS[i % PUMPS.length]!)));

async function session(emulator: Emulator, publishRate: number): Promise<SessionRun & { records: ReturnType<typeof batch> }> {
  const records = batch();
  const run = await runSession(emulator, fleet, GATEWAY, records, { options: { publishRate, deadline: Date.now() + 15_000 } });
  return { ...run, records };
}

/** A config-poll chunk of 100 devices beside 20 events of 10 others, relayed as one batch; the invariant checked. */
async function pollChunk(emulator: Emulator, publishRate: number): Promise<RelayBatchResult> {
  const records = [inbound(pollBody(POLLED)), ...Array.from({ length: 20 }, (_, i) => inbound(eventBody(PUMPS[i % PUMPS.length]!)))];
  const settings = relaySettings(emulator, fleet, { gatewayIds: [GATEWAY], publishRate, attachTimeoutMs: 3000, pubackTimeoutMs: 3000, closeTimeoutMs: 3000 });
  const result = await relayBatch(records, relayDeps(emulator, fleet, { settings, deadline: Date.now() + 20_000 }));
  const polled = new Map(result.sessions.flatMap((s) => s.configPoll?.outcomes ?? []).map((o) => [o.deviceId, o]));
  expectOutcomeInvariant({ records, outcomes: result.outcomes, emulator, registryId: fleet.registryId, configsDelivered: polled });
  // Every device of the chunk has exactly one outcome, and nothing is dead-lettered for what the bridge's rate did.
  const outcomes = result.sessions[0]!.configPoll?.outcomes ?? [];
  expect(outcomes.filter((o) => o.deviceId !== GATEWAY).map((o) => o.deviceId).sort()).toEqual([...POLLED].sort());
  for (const o of result.outcomes) expect(o.outcome, `${o.code}: ${o.reason}`).not.toBe('dead-letter');
  return result;
}

const allConfirmed = (result: Pick<RelayBatchResult, 'outcomes'>): void =>
  expect(result.outcomes.filter((o) => o.outcome !== 'confirmed').map((o) => `${o.code}: ${o.reason}`)).toEqual([]);

/** What every reaction is tested for: sessions paced at (and under) the limit, and a config-poll chunk. */
function pacedAndPolled(emulator: () => Emulator, paces: number[], unpacedPoll: (result: RelayBatchResult) => void = () => {}): void {
  it(`with a pace of ${paces.join(' and ')} a second: everything is confirmed`, async () => {
    for (const pace of paces) allConfirmed(await session(emulator(), pace));
  });

  it('a config-poll chunk, without a pace and with one: every device one outcome, nothing confirmed lost', async () => {
    unpacedPoll(await pollChunk(emulator(), 0));
    allConfirmed(await pollChunk(emulator(), LIMIT));
  });
}

describe('slow (the bridge holds PUBACKs back to its rate)', () => {
  const emulator = bridgeThat('slow');

  it('without a pace: everything is confirmed, at the bridge\'s rate', async () => {
    const run = await session(emulator(), 0);
    allConfirmed(run);
    // 140 PUBLISHes at 100 a second.
    expect(run.elapsedMs).toBeGreaterThanOrEqual(1000);
  });

  pacedAndPolled(emulator, [LIMIT]);
});

describe('drop (the bridge drops what is over its rate, unacknowledged)', () => {
  const emulator = bridgeThat('drop');

  it('without a pace: the records over the rate time out and go back; the others are confirmed', async () => {
    const run = await session(emulator(), 0);
    // 10 attaches and 90 records fill the second; the last 30 records are dropped. The detaches come once the
    // dropped records have timed out, a second later, and are answered: the first 90 are confirmed.
    const over = run.records.slice(LIMIT - PUMPS.length);
    for (const r of run.records.slice(0, LIMIT - PUMPS.length)) expect(run.outcomes.find((o) => o.messageId === r.messageId)?.outcome).toBe('confirmed');
    for (const r of over) expect(run.outcomes.find((o) => o.messageId === r.messageId)).toMatchObject({ outcome: 'retry', code: 'ERR_PUBACK_TIMEOUT' });
    const received = new Set(emulator().registry.events.map((e) => e.data));
    expect(over.some((r) => received.has(Buffer.from(JSON.parse(r.body).payload as string).toString('base64')))).toBe(false);
  });

  pacedAndPolled(emulator, [LIMIT, LIMIT / 2]);
});

describe('close (the bridge closes a connection over its rate)', () => {
  const emulator = bridgeThat('close');

  it('without a pace: the session is lost, every record goes back to be retried with the overrun named', async () => {
    const run = await session(emulator(), 0);
    expect(run.report.failure).toMatchObject({ code: 'ERR_CONNECTION_LOST', phase: 'publishing' });
    expect(run.report.failure?.reason).toContain(`right after more than ${LIMIT} PUBLISH packets in one second`);
    expect(DISPOSITIONS.ERR_CONNECTION_LOST.disposition).toBe('retry');
    for (const o of run.outcomes) expect(o).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
    expect(emulator().registry.getDevice(fleet.registryId, GATEWAY).lastErrorStatus).toMatchObject({ code: 8 });
  });

  pacedAndPolled(emulator, [LIMIT, LIMIT / 2], (unpaced) => {
    expect(unpaced.sessions[0]!.failure).toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    for (const o of unpaced.outcomes) expect(o).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
  });
});

describe('512 KB/s per device (the documented throughput; the pace counts packets, not bytes)', () => {
  /** Three events of 200 KB for one device, one small event for another: the third big one is over the second's bytes. */
  const heavy = () => [
    ...[1, 2, 3].map((n) => record(eventBody(PUMPS[0]!, { payload: uniquePayload(`heavy ${n}`).padEnd(200 * 1024, '.') }))),
    record(eventBody(PUMPS[1]!)),
  ];

  describe('drop', () => {
    const emulator = bridgeThat('drop', { deviceByteRate: 512 * 1024 });
    it('the event over the device\'s bytes times out and goes back; the rest is confirmed', async () => {
      const records = heavy();
      const run = await runSession(emulator(), fleet, GATEWAY, records);
      expect(run.outcomes.map((o) => o.code ?? o.outcome)).toEqual(['confirmed', 'confirmed', 'ERR_PUBACK_TIMEOUT', 'confirmed']);
    });
  });

  describe('close', () => {
    const emulator = bridgeThat('close', { deviceByteRate: 512 * 1024 });
    it('the session is lost and every record goes back to be retried', async () => {
      const run = await runSession(emulator(), fleet, GATEWAY, heavy());
      expect(run.report.failure).toMatchObject({ code: 'ERR_CONNECTION_LOST' });
      for (const o of run.outcomes) expect(o).toMatchObject({ outcome: 'retry', code: 'ERR_CONNECTION_LOST' });
    });
  });
});
