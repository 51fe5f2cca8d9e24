/**
 * The session against a bridge whose errors come late (emulator `lateErrorsMs`, `lateErrorsPastDetach`): a publish
 * acknowledged, then reported lost (fault `acknowledgeThenFail`) by an error that follows the detach PUBACK. The
 * grace window after the final barrier (RELAY_LATE_ERROR_GRACE_MS) decides whether that error still un-confirms
 * the record; late errors are counted in the report and the relay's metrics either way.
 */
import { Metrics } from '@aws-lambda-powertools/metrics';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../../emulator/index.js';
import { GatewaySession } from '../../../lib/gateway/session.js';
import { relaySqsBatch } from '../../../lib/sqs/relay-sqs-batch.js';
import { sqsQueueActions } from '../../../lib/queue/queue-actions.js';
import type { Fleet } from '../../helpers/emulator-fixtures.js';
import { startSqsStandIn, type SqsStandIn } from '../../helpers/local-sqs.js';
import { expectOutcomeInvariant, sessionOutcomes } from '../../helpers/outcome-invariant.js';
import {
  attachRequests,
  eventBody,
  GW,
  lambdaContext,
  makeRelayFleet,
  outcomeOf,
  PUMPS,
  publishRequests,
  record,
  relaySettings,
  runSession,
  sessionOptions,
  sqsEvent,
  sqsRecord,
  type TestRecord,
} from '../../helpers/relay-fixtures.js';

/** How late the bridge's errors come, behind the PUBACKs and the detach PUBACK alike. */
const LATE_MS = 150;

let fleet: Fleet;
let emulator: Emulator;

beforeAll(async () => {
  fleet = await makeRelayFleet();
  emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false, lateErrorsMs: LATE_MS, lateErrorsPastDetach: true });
});
afterEach(() => emulator.clearFaults());
afterAll(() => emulator.close());

const lost = (device: string): TestRecord => record(eventBody(device, { subfolder: 'lost' }));
const receivedEvents = (device: string): number => emulator.registry.events.filter((e) => e.attributes.deviceId === device && e.attributes.subFolder === 'lost').length;

describe('grace window 0 (RELAY_LATE_ERROR_GRACE_MS=0)', () => {
  it('a late error after the barrier is only counted, and the record it names stays confirmed: the documented gap', async () => {
    const [failing, slow] = [PUMPS[0]!, PUMPS[1]!];
    // `slow`'s detach is never answered, so the session stays open past `failing`'s barrier until the error comes.
    emulator.setFaults({ acknowledgeThenFail: [`/devices/${failing}/events/lost`], withholdPuback: [`/devices/${slow}/detach`] });
    const gap = lost(failing);
    const other = record(eventBody(slow));
    const records = [gap, other];
    const session = new GatewaySession(await sessionOptions(emulator, fleet, GW.assoc, { lateErrorGraceMs: 0, closeTimeoutMs: 3 * LATE_MS }));
    const report = await session.run(async (s) => {
      await s.attach(attachRequests(records));
      await s.publish(publishRequests(records));
    });
    const outcomes = sessionOutcomes(report, records);

    expect(report.gatewayErrors.map((e) => e.errorType)).toEqual(['GATEWAY_DEVICE_NOT_FOUND']);
    expect({ lateErrors: report.lateErrors, lateErrorsAfterGrace: report.lateErrorsAfterGrace }).toEqual({ lateErrors: 1, lateErrorsAfterGrace: 1 });
    expect(outcomeOf({ outcomes }, gap).outcome).toBe('confirmed');
    expect(outcomeOf({ outcomes }, other)).toMatchObject({ outcome: 'retry', code: 'ERR_PUBACK_TIMEOUT' });
    // Confirmed, yet the bridge never kept it: the promise does not hold for an error later than the window.
    expect(receivedEvents(failing)).toBe(0);
    expect(() => expectOutcomeInvariant({ records, outcomes, emulator, registryId: fleet.registryId })).toThrow(/confirmed event/);
  });

  it('a late error that comes after the session closed is not even seen', async () => {
    const failing = PUMPS[2]!;
    emulator.setFaults({ acknowledgeThenFail: [`/devices/${failing}/events/lost`] });
    const gap = lost(failing);
    const session = new GatewaySession(await sessionOptions(emulator, fleet, GW.assoc, { lateErrorGraceMs: 0 }));
    const report = await session.run(async (s) => {
      await s.attach(attachRequests([gap]));
      await s.publish(publishRequests([gap]));
    });
    expect(report.records.get(gap.messageId)?.status).toBe('confirmed');
    expect({ errors: report.gatewayErrors.length, late: report.lateErrors }).toEqual({ errors: 0, late: 0 });
    // The bridge raised it, and lost it with the connection.
    const raised = emulator.registry.errors.filter((e) => (e.payload as { device_id?: string }).device_id === failing);
    expect(raised.map((e) => (e.payload as { error_type: string }).error_type)).toEqual(['GATEWAY_DEVICE_NOT_FOUND']);
  });
});

describe('grace window at least as long as the delay', () => {
  it('the late error un-confirms its record with the error code; the other records stay confirmed', async () => {
    const [failing, fine] = [PUMPS[3]!, PUMPS[4]!];
    emulator.setFaults({ acknowledgeThenFail: [`/devices/${failing}/events/lost`] });
    const gap = lost(failing);
    const others = [record(eventBody(fine)), record(eventBody(fine, { subfolder: 'alarms' }))];
    // runSession checks the outcome invariant.
    const run = await runSession(emulator, fleet, GW.assoc, [gap, ...others], { options: { lateErrorGraceMs: 2 * LATE_MS } });
    expect(outcomeOf(run, gap)).toMatchObject({ outcome: 'retry', code: 'ERR_DEVICE_NOT_FOUND' });
    expect(others.map((r) => outcomeOf(run, r).outcome)).toEqual(['confirmed', 'confirmed']);
    expect({ lateErrors: run.report.lateErrors, lateErrorsAfterGrace: run.report.lateErrorsAfterGrace }).toEqual({ lateErrors: 1, lateErrorsAfterGrace: 0 });
    // The session waited out the window, which counts from the last PUBACK of a record to confirm, and no longer.
    expect(run.elapsedMs).toBeGreaterThanOrEqual(2 * LATE_MS);
    expect(run.elapsedMs).toBeLessThan(2 * LATE_MS + 1_000);
  });

  it('costs nothing when no record would be confirmed', async () => {
    emulator.setFaults({ withholdPuback: [`/devices/${PUMPS[5]}/events`] });
    const r = record(eventBody(PUMPS[5]!));
    const run = await runSession(emulator, fleet, GW.assoc, [r], { options: { lateErrorGraceMs: 5_000, pubackTimeoutMs: 100 } });
    expect(outcomeOf(run, r)).toMatchObject({ outcome: 'retry', code: 'ERR_PUBACK_TIMEOUT' });
    expect(run.elapsedMs).toBeLessThan(2_000);
  });
});

describe('relay metrics', () => {
  let sqs: SqsStandIn;
  beforeAll(async () => {
    sqs = await startSqsStandIn((call) => {
      const entries = (call.input.Entries ?? []) as { Id: string }[];
      return { status: 200, body: { Successful: entries.map((e) => ({ Id: e.Id })), Failed: [] } };
    });
  });
  afterAll(() => sqs.stop());

  it('LateGatewayErrors and LateGatewayErrorsAfterGrace count the late errors of the batch', async () => {
    const failing = PUMPS[6]!;
    emulator.setFaults({ acknowledgeThenFail: [`/devices/${failing}/events/lost`] });
    const gap = sqsRecord(eventBody(failing, { subfolder: 'lost' }), { groupId: GW.assoc });
    const fine = sqsRecord(eventBody(PUMPS[7]!), { groupId: GW.assoc });
    const metrics = new Metrics({ namespace: 'iotcore-relay-test', serviceName: 'relay' });
    const silent = { debug() {}, info() {}, warn() {}, error() {} };
    const result = await relaySqsBatch(sqsEvent([gap, fine]), lambdaContext(10_000), {
      settings: relaySettings(emulator, fleet, { lateErrorGraceMs: 2 * LATE_MS }),
      gatewayJwt: (gatewayId) => fleet.jwt(gatewayId),
      queueActions: sqsQueueActions(() => sqs.client),
      logger: silent,
      metrics,
      env: { AWS_ENDPOINT_URL_SQS: sqs.endpoint },
      random: () => 1,
    });
    expectOutcomeInvariant({ records: [gap, fine], outcomes: result.outcomes, emulator, registryId: fleet.registryId });
    expect(result.outcomes.map((o) => [o.outcome, o.code])).toEqual([
      ['retry', 'ERR_DEVICE_NOT_FOUND'],
      ['confirmed', undefined],
    ]);
    const emf = metrics.serializeMetrics() as unknown as Record<string, unknown>;
    expect({ late: emf['LateGatewayErrors'], afterGrace: emf['LateGatewayErrorsAfterGrace'] }).toEqual({ late: 1, afterGrace: 0 });
  });
});
