/**
 * The relay handler end to end: the exported `handler`, configured only through its environment (key file,
 * CA file, bridge endpoint, dead-letter queue), invoked with SQS events and a Lambda-like context, against the
 * emulator over TLS; SQS calls go through the real SDK to a stand-in endpoint that records them.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/index.js';
import type { RelayHandler } from '../../handlers/relay.js';
import { ConfigStore } from '../../lib/config-store/index.js';
import type { RelayErrorCode } from '../../lib/errors.js';
import { failed, type OutcomeKind, type RecordOutcome } from '../../lib/relay/outcomes.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../helpers/local-dynamodb.js';
import { startSqsStandIn, type SqsStandIn } from '../helpers/local-sqs.js';
import { expectOutcomeInvariant } from '../helpers/outcome-invariant.js';
import { eventBody, GW, lambdaContext, makeRelayFleet, METERS, pollBody, PUMPS, sqsEvent, sqsRecord, stateBody, UNBOUND, valveConfig, VALVES } from '../helpers/relay-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;
let sqs: SqsStandIn;
let db: LocalDynamoDb;
let dir: string;
let handler: RelayHandler;
let relayEnv: Record<string, string>;
const output: string[] = [];

const DLQ = (endpoint: string): string => `${endpoint}/123456789012/relay-dlq.fifo`;

beforeAll(async () => {
  [fleet, db] = await Promise.all([makeRelayFleet(), startLocalDynamoDb()]);
  emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false });
  sqs = await startSqsStandIn((call) => {
    if (call.action === 'SendMessage') {
      return { status: 200, body: { MessageId: 'dlq-1', MD5OfMessageBody: createHash('md5').update(String(call.input.MessageBody)).digest('hex') } };
    }
    const entries = (call.input.Entries ?? []) as { Id: string }[];
    return { status: 200, body: { Successful: entries.map((e) => ({ Id: e.Id })), Failed: [] } };
  });
  dir = await mkdtemp(join(tmpdir(), 'relay-handler-'));
  const keyFile = join(dir, 'gateway-keys.json');
  const keys = Object.fromEntries([GW.assoc, GW.token, GW.east, GW.west].map((g) => [g, { privateKey: fleet.keys[g]!.pair.privateKeyPem }]));
  await writeFile(keyFile, JSON.stringify(keys), { mode: 0o600 });
  relayEnv = {
    IOTCORE_PROJECT: fleet.project,
    IOTCORE_LOCATION: fleet.location,
    IOTCORE_REGISTRY: fleet.registryId,
    IOTCORE_GATEWAY_IDS: [GW.assoc, GW.token, GW.east, GW.west].join(','),
    IOTCORE_MQTT_HOST: emulator.host,
    IOTCORE_MQTT_PORT: String(emulator.port),
    IOTCORE_CA_FILE: emulator.caFile!,
    GATEWAY_KEY_FILE: keyFile,
    RELAY_DEAD_LETTER_QUEUE_URL: DLQ(sqs.endpoint),
    RELAY_PUBACK_TIMEOUT_MS: '500',
    RELAY_DEADLINE_MARGIN_MS: '1000',
    AWS_ENDPOINT_URL_SQS: sqs.endpoint,
    // For the handlers of these tests that are given CONFIG_TABLE; the exported one runs without it.
    AWS_ENDPOINT_URL_DYNAMODB: db.endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    POWERTOOLS_SERVICE_NAME: 'iotcore-relay',
    POWERTOOLS_METRICS_NAMESPACE: 'IotCoreRelayTest',
    POWERTOOLS_LOG_LEVEL: 'DEBUG',
  };
  for (const [k, v] of Object.entries(relayEnv)) vi.stubEnv(k, v);
  // The module reads process.env on its first invocation, as in a Lambda container.
  ({ handler } = await import('../../handlers/relay.js'));
  // Powertools writes INFO and metrics to stdout, WARN and ERROR to stderr: both are captured, in order.
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      output.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return true;
    });
  }
});
afterEach(() => {
  emulator.clearFaults();
  sqs.calls.length = 0;
  output.length = 0;
});
afterAll(async () => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  await emulator.close();
  await sqs.stop();
  await db.stop();
  await rm(dir, { recursive: true, force: true });
});

const logLines = (): Record<string, unknown>[] =>
  output
    .join('')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const JWT_LIKE = /eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+/;

/** Each record's outcome as the handler logged it: exactly one line per record (confirmed ones at DEBUG). */
function loggedOutcomes(): RecordOutcome[] {
  return logLines()
    .filter((l) => l.message === 'record confirmed' || l.message === 'record not confirmed')
    .map((l) =>
      l.message === 'record confirmed'
        ? { messageId: String(l.messageId), outcome: 'confirmed' as const, ...(l.coalescedInto === undefined ? {} : { coalescedInto: String(l.coalescedInto) }) }
        : { messageId: String(l.messageId), outcome: l.outcome as OutcomeKind, code: l.code as RelayErrorCode, reason: String(l.reason) },
    );
}

describe('relay handler', () => {
  it('relays a FIFO batch across gateways, dead-letters the malformed, logs and measures without a secret', async () => {
    const token = await fleet.jwt(METERS[0]!);
    const records = [
      sqsRecord(eventBody(PUMPS[0]!, { subfolder: 'alarms/high' }), { groupId: GW.assoc }),
      sqsRecord(stateBody(PUMPS[0]!, { encoding: 'base64' }), { groupId: GW.assoc }),
      sqsRecord('{"v":1,"deviceId":"pump/01","payload":"x"}', { groupId: GW.assoc }),
      sqsRecord(eventBody(METERS[0]!, { deviceToken: token }), { groupId: GW.token }),
      sqsRecord(eventBody('east-01', { encoding: 'base64' }), { groupId: GW.east }),
      sqsRecord(eventBody('west-02'), { groupId: GW.west }),
      sqsRecord(eventBody(UNBOUND), { groupId: GW.assoc }),
      sqsRecord(`{"v":1,"deviceId":"meter-02","payload":"x","deviceToken":"${token}","type":"reboot"}`, { groupId: GW.token }),
      sqsRecord(eventBody(VALVES[0]!, { subfolder: 'flow' }), { groupId: GW.assoc }),
      sqsRecord(stateBody(PUMPS[0]!), { groupId: GW.assoc }),
    ];
    const event = sqsEvent(records);

    const response = await handler(event, lambdaContext(15_000));

    // Everything was either confirmed or dead-lettered: nothing goes back.
    expect(response).toEqual({ batchItemFailures: [] });
    const sends = sqs.calls.filter((c) => c.action === 'SendMessage').map((c) => c.input);
    expect(sends.map((s) => s.MessageDeduplicationId).sort()).toEqual([records[2]!.messageId, records[6]!.messageId, records[7]!.messageId].sort());
    const codes = Object.fromEntries(sends.map((s) => [s.MessageDeduplicationId, (s.MessageAttributes as Record<string, { StringValue: string }>)['relay.errorCode']!.StringValue]));
    expect(codes).toEqual({ [records[2]!.messageId]: 'ERR_INVALID_DEVICE_ID', [records[6]!.messageId]: 'ERR_ATTACH_REJECTED', [records[7]!.messageId]: 'ERR_UNKNOWN_TYPE' });

    // The outcomes the response encodes obey the invariant.
    const lines = logLines();
    const summary = lines.find((l) => l.message === 'batch relayed');
    expect(summary).toMatchObject({ records: 10, confirmed: 7, deadLettered: 3, retried: 0, sessions: 4, service: 'iotcore-relay' });
    const failures = lines.filter((l) => l.message === 'record not confirmed');
    expect(failures.map((l) => l.messageId).sort()).toEqual([records[2]!.messageId, records[6]!.messageId, records[7]!.messageId].sort());
    const outcomes = loggedOutcomes();
    expect(outcomes.find((o) => o.messageId === records[1]!.messageId)).toMatchObject({ outcome: 'confirmed', coalescedInto: records[9]!.messageId });
    expectOutcomeInvariant({ records, outcomes, emulator, registryId: fleet.registryId });

    // EMF metrics: counts, latencies, failures by code.
    const emf = lines.filter((l) => '_aws' in l);
    const counts = Object.assign({}, ...emf);
    expect(counts).toMatchObject({ RecordsReceived: 10, RecordsConfirmed: 7, RecordsDeadLettered: 3, RecordsFailedBack: 0, Sessions: 4 });
    expect(counts.PublishLatency).toBeDefined();
    expect(counts.AttachLatency).toBeDefined();
    // One duration per session, each the session's own as its log line gives it.
    const sessionLines = lines.filter((l) => l.message === 'gateway session' || l.message === 'gateway session ended early');
    expect([counts.SessionDuration].flat().sort()).toEqual(sessionLines.map((l) => l.durationMs).sort());
    expect(sessionLines).toHaveLength(4);
    expect(emf.some((l) => l.code === 'ERR_ATTACH_REJECTED' && l.RecordFailures === 1)).toBe(true);
    expect(emf.some((l) => l.errorType === 'GATEWAY_ATTACHMENT_ERROR' && l.GatewayErrors === 1)).toBe(true);

    // No JWT anywhere in the output, though a device token sat in a dead-lettered record.
    expect(output.join('')).not.toMatch(JWT_LIKE);
    expect(output.join('')).not.toContain(token.split('.')[2]!);
  });

  it('fails every record back on a lost connection, to come back after RELAY_RETRY_SECONDS, not the queue timeout', async () => {
    emulator.setFaults({ closeAtPhase: 'publish' });
    const records = [sqsRecord(eventBody(PUMPS[1]!), { groupId: GW.assoc, receiveCount: 2 }), sqsRecord(eventBody('west-01'), { groupId: GW.west })];
    const response = await handler(sqsEvent(records), lambdaContext(15_000));
    expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(records.map((r) => r.messageId).sort());
    const lines = logLines();
    expectOutcomeInvariant({ records, outcomes: loggedOutcomes(), emulator, registryId: fleet.registryId });
    expect(lines.filter((l) => l.message === 'record not confirmed').map((l) => l.code)).toEqual(['ERR_CONNECTION_LOST', 'ERR_CONNECTION_LOST']);
    expect(lines.filter((l) => l.message === 'gateway session ended early').map((l) => l.failureCode)).toEqual(['ERR_CONNECTION_LOST', 'ERR_CONNECTION_LOST']);
    // A plain retry comes back soon: the queue's own visibility timeout would hold each gateway's group for minutes.
    const visibility = sqs.calls.filter((c) => c.action === 'ChangeMessageVisibilityBatch');
    expect(visibility).toHaveLength(1);
    const entries = (visibility[0]!.input as { Entries: { ReceiptHandle: string; VisibilityTimeout: number }[] }).Entries;
    expect(entries.map((e) => [e.ReceiptHandle, e.VisibilityTimeout]).sort()).toEqual(records.map((r) => [r.receiptHandle, 5]).sort());
  });

  it('returns before the Lambda deadline when the bridge is too slow', async () => {
    emulator.setFaults({ latencyMs: 1500 });
    const records = [sqsRecord(eventBody(PUMPS[2]!), { groupId: GW.assoc })];
    const started = Date.now();
    const response = await handler(sqsEvent(records), lambdaContext(2500));
    expect(Date.now() - started).toBeLessThan(2500);
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: records[0]!.messageId }]);
    expectOutcomeInvariant({ records, outcomes: loggedOutcomes(), emulator, registryId: fleet.registryId });
    const failure = logLines().find((l) => l.message === 'record not confirmed');
    expect(failure).toMatchObject({ outcome: 'retry', code: 'ERR_DEADLINE' });
  });
});

describe('relay handler and the config store', () => {
  it('stores polled configs in CONFIG_TABLE and notes the devices it relayed for', async () => {
    const { createRelayHandler } = await import('../../handlers/relay.js');
    const relay = createRelayHandler({ env: { ...relayEnv, CONFIG_TABLE: db.tableName } });
    const store = new ConfigStore({ tableName: db.tableName, client: db.client });
    const since = new Date(Date.now() - 1000);
    const records = [sqsRecord(pollBody([VALVES[1]!, UNBOUND]), { groupId: GW.assoc }), sqsRecord(eventBody(PUMPS[5]!), { groupId: GW.assoc })];

    const response = await relay(sqsEvent(records), lambdaContext(10_000));

    // The unbound device is reported, not a reason to retry the job.
    expect(response).toEqual({ batchItemFailures: [] });
    expect((await store.getConfig(VALVES[1]!))?.bytes.toString()).toBe(valveConfig(VALVES[1]!));
    expect(await store.recentlyRelayed(since)).toEqual([PUMPS[5]]);
    const lines = logLines();
    expect(lines.find((l) => l.message === 'config missing')).toMatchObject({ deviceId: UNBOUND, reason: 'attach-rejected', level: 'WARN' });
    expect(lines.find((l) => l.message === 'config poll')).toMatchObject({ gatewayId: GW.assoc, devices: 3, missing: 1 });
    const counts = Object.assign({}, ...lines.filter((l) => '_aws' in l));
    expect(counts).toMatchObject({ DevicesPolled: 3, ConfigsMissing: 1, ConfigsNotStored: 0 });
    expect(counts.ConfigPollDuration).toBeTypeOf('number');
  });

  it('without CONFIG_TABLE, says configs are not stored and counts them', async () => {
    const { createRelayHandler } = await import('../../handlers/relay.js');
    const relay = createRelayHandler({ env: relayEnv });
    const response = await relay(sqsEvent([sqsRecord(pollBody([VALVES[2]!]), { groupId: GW.assoc })]), lambdaContext(10_000));
    expect(response).toEqual({ batchItemFailures: [] });
    const lines = logLines();
    expect(lines.find((l) => String(l.message).startsWith('CONFIG_TABLE is not set'))).toMatchObject({ level: 'WARN' });
    expect(Object.assign({}, ...lines.filter((l) => '_aws' in l))).toMatchObject({ ConfigsNotStored: 2, DevicesPolled: 2 });
  });
});

describe('relay handler, misconfigured', () => {
  it('fails every record back and says which settings are wrong, all of them at once', async () => {
    const { createRelayHandler } = await import('../../handlers/relay.js');
    const relay = createRelayHandler({ env: { ...relayEnv, IOTCORE_MQTT_PORT: 'eighty', IOTCORE_LOCATION: '', GATEWAY_KEY_SECRET: 'also-a-secret' } });
    const records = [sqsRecord(eventBody(PUMPS[3]!), { groupId: GW.assoc }), sqsRecord('not json', { groupId: GW.assoc })];
    const response = await relay(sqsEvent(records), lambdaContext(5000));
    expect(response.batchItemFailures.map((f) => f.itemIdentifier)).toEqual(records.map((r) => r.messageId));
    // Nothing was relayed: every record's one outcome is the failure the response carries.
    const outcomes = response.batchItemFailures.map((f) => failed(f.itemIdentifier, 'ERR_CONFIG', 'misconfigured'));
    expectOutcomeInvariant({ records, outcomes, emulator, registryId: fleet.registryId });
    const error = logLines().find((l) => l.level === 'ERROR');
    expect(error).toMatchObject({ message: 'relay is misconfigured; every record goes back', code: 'ERR_CONFIG' });
    expect(String(error?.error)).toMatch(/^3 settings are wrong: /);
    for (const name of ['IOTCORE_MQTT_PORT', 'IOTCORE_LOCATION', 'GATEWAY_KEY_SECRET']) expect(String(error?.error)).toContain(name);
  });

  it('backs off every record of a gateway whose key cannot be read, by receive count', async () => {
    const { createRelayHandler } = await import('../../handlers/relay.js');
    const relay = createRelayHandler({ env: { ...relayEnv, GATEWAY_KEY_FILE: join(dir, 'missing.json'), RELAY_QUEUE_URL: `${sqs.endpoint}/123456789012/relay.fifo` } });
    const records = [sqsRecord(eventBody(PUMPS[4]!), { groupId: GW.assoc, receiveCount: 4 })];
    const response = await relay(sqsEvent(records), lambdaContext(5000));
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: records[0]!.messageId }]);
    expectOutcomeInvariant({ records, outcomes: loggedOutcomes(), emulator, registryId: fleet.registryId });
    const failure = logLines().find((l) => l.message === 'record not confirmed');
    expect(failure).toMatchObject({ outcome: 'retry-backoff' });
    expect(String(failure?.code)).toMatch(/^ERR_KEY_/);
    const change = sqs.calls.find((c) => c.action === 'ChangeMessageVisibilityBatch');
    const timeout = (change?.input.Entries as { VisibilityTimeout: number }[])[0]!.VisibilityTimeout;
    // 30 s * 2^3, jittered between half and all of it.
    expect(timeout).toBeGreaterThanOrEqual(120);
    expect(timeout).toBeLessThanOrEqual(240);
  });
});
