/**
 * Factories for the relay's tests: a fleet of gateways and devices for the emulator, queue bodies of contract v1
 * with payloads unique per record (so the outcome invariant can find each one among what the emulator received),
 * inbound and SQS records, Lambda contexts, and session/relay settings pointing at an emulator.
 *
 * @example
 * const fleet = await makeRelayFleet();
 * const emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false });
 * const records = [inbound(eventBody('pump-01')), inbound(stateBody('pump-01'))];
 * const { outcomes } = await relayBatch(records, relayDeps(emulator, fleet));
 */
import { randomUUID } from 'node:crypto';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll } from 'vitest';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../emulator/index.js';
import type { RelaySettings } from '../../lib/relay-settings.js';
import { GatewaySession, type AttachRequest, type GatewaySessionOptions, type PublishRequest, type SessionReport } from '../../lib/gateway/session.js';
import { LATE_ERROR_GRACE_MS } from '../../lib/gateway/session-options.js';
import type { RecordOutcome } from '../../lib/relay/outcomes.js';
import { parseQueueMessage } from '../../lib/queue/message.js';
import type { RelayBatchDeps } from '../../lib/relay/relay-batch.js';
import type { InboundRecord } from '../../lib/relay/route-records.js';
import { makeFleet, type Fleet } from './emulator-fixtures.js';
import { expectOutcomeInvariant, sessionOutcomes } from './outcome-invariant.js';

export const GW = {
  /** ASSOCIATION_ONLY, with the pumps and valves bound. */
  assoc: 'gw-assoc',
  /** DEVICE_AUTH_TOKEN_ONLY: devices attach with their own JWT. */
  token: 'gw-token',
  /** Two more association-only gateways, for batches that span gateways. */
  east: 'gw-east',
  west: 'gw-west',
} as const;

export const PUMPS = Array.from({ length: 12 }, (_, i) => `pump-${String(i + 1).padStart(2, '0')}`);
export const VALVES = Array.from({ length: 10 }, (_, i) => `valve-${String(i + 1).padStart(2, '0')}`);
export const METERS = ['meter-01', 'meter-02'];
/** The config each valve is created with (version 1). */
export const valveConfig = (id: string): string => `{"valve":"${id}","open":false}`;
/** Registered, but bound to no gateway. */
export const UNBOUND = 'pump-unbound';

/** One fleet per test file (key generation is the slow part); ES256 keys throughout. */
export async function makeRelayFleet(): Promise<Fleet> {
  return makeFleet({
    gateways: [
      { id: GW.assoc, bound: [...PUMPS, ...VALVES] },
      { id: GW.token, authMethod: 'DEVICE_AUTH_TOKEN_ONLY' },
      { id: GW.east, bound: ['east-01', 'east-02'] },
      { id: GW.west, bound: ['west-01', 'west-02'] },
    ],
    devices: [
      ...[...PUMPS, 'east-01', 'east-02', 'west-01', 'west-02', UNBOUND].map((id) => ({ id, keyless: true })),
      ...VALVES.map((id) => ({ id, keyless: true, config: valveConfig(id) })),
      ...METERS.map((id) => ({ id, config: `{"meter":"${id}","rate":60}` })),
    ],
  });
}

export const registryPath = (fleet: Fleet): RelaySettings['registry'] => ({ project: fleet.project, location: fleet.location, registry: fleet.registryId });

/** Short timeouts: every test runs in seconds. */
export const FAST = {
  connectTimeoutMs: 2000,
  attachTimeoutMs: 1500,
  pubackTimeoutMs: 1500,
  configTimeoutMs: 1500,
  closeTimeoutMs: 1000,
  publishWindow: 32,
};

export async function sessionOptions(
  emulator: Emulator,
  fleet: Fleet,
  gatewayId: string,
  overrides: Partial<GatewaySessionOptions> = {},
): Promise<GatewaySessionOptions> {
  return {
    registry: registryPath(fleet),
    gatewayId,
    host: emulator.host,
    port: emulator.port,
    extraCaPem: emulator.ca,
    jwt: await fleet.jwt(gatewayId),
    deadline: Date.now() + 10_000,
    ...FAST,
    ...overrides,
  };
}

export function relaySettings(emulator: Emulator, fleet: Fleet, overrides: Partial<RelaySettings> = {}): RelaySettings {
  return {
    registry: registryPath(fleet),
    gatewayIds: [GW.assoc, GW.token, GW.east, GW.west],
    mqttHost: emulator.host,
    mqttPort: emulator.port,
    extraCaPem: emulator.ca,
    caFile: emulator.caFile,
    ...FAST,
    jwtLifetimeSeconds: 3600,
    deadlineMarginMs: 500,
    deadLetterQueueUrl: undefined,
    sourceQueueUrl: undefined,
    backoffBaseSeconds: 30,
    backoffMaxSeconds: 900,
    retrySeconds: 5,
    subscribeBeforeConnack: true,
    publishRate: 0,
    lateErrorGraceMs: LATE_ERROR_GRACE_MS,
    mqttVersion: 4,
    ...overrides,
  };
}

export function relayDeps(emulator: Emulator, fleet: Fleet, overrides: Partial<RelayBatchDeps> = {}): RelayBatchDeps {
  return {
    settings: relaySettings(emulator, fleet),
    gatewayJwt: (gatewayId) => fleet.jwt(gatewayId),
    deadline: Date.now() + 10_000,
    ...overrides,
  };
}

// --- queue bodies ------------------------------------------------------------------------------------------------

export interface BodyOptions {
  subfolder?: string;
  encoding?: 'utf8' | 'base64';
  deviceToken?: string;
  /** The payload text; unique by default. */
  payload?: string;
}

/** A payload no other record of any test carries. */
export const uniquePayload = (label: string): string => JSON.stringify({ label, nonce: randomUUID() });

export function eventBody(deviceId: string, o: BodyOptions = {}): string {
  return telemetryBody(deviceId, 'event', o);
}

export function stateBody(deviceId: string, o: BodyOptions = {}): string {
  return telemetryBody(deviceId, 'state', o);
}

function telemetryBody(deviceId: string, type: 'event' | 'state', o: BodyOptions): string {
  const text = o.payload ?? uniquePayload(`${type} of ${deviceId}`);
  const body: Record<string, unknown> = { v: 1, deviceId, type };
  if (o.subfolder !== undefined) body.subfolder = o.subfolder;
  if (o.encoding === 'base64') {
    body.payload = Buffer.from(text).toString('base64');
    body.encoding = 'base64';
  } else {
    body.payload = text;
  }
  if (o.deviceToken !== undefined) body.deviceToken = o.deviceToken;
  return JSON.stringify(body);
}

export const pollBody = (deviceIds: string[]): string => JSON.stringify({ v: 1, type: 'config-poll', deviceIds });

export function inbound(body: string, o: { groupId?: string; receiveCount?: number; messageId?: string } = {}): InboundRecord {
  return { messageId: o.messageId ?? randomUUID(), body, groupId: o.groupId, receiveCount: o.receiveCount ?? 1 };
}

// --- SQS and Lambda shapes ---------------------------------------------------------------------------------------

export const QUEUE_ARN = 'arn:aws:sqs:us-east-1:123456789012:relay.fifo';

export function sqsRecord(body: string, o: { groupId?: string; receiveCount?: number; messageId?: string; arn?: string } = {}): SQSRecord {
  const messageId = o.messageId ?? randomUUID();
  return {
    messageId,
    receiptHandle: `receipt-${messageId}`,
    body,
    attributes: {
      ApproximateReceiveCount: String(o.receiveCount ?? 1),
      SentTimestamp: String(Date.now()),
      SenderId: 'AIDATEST',
      ApproximateFirstReceiveTimestamp: String(Date.now()),
      ...(o.groupId === undefined ? {} : { MessageGroupId: o.groupId, MessageDeduplicationId: messageId, SequenceNumber: '1' }),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: o.arn ?? QUEUE_ARN,
    awsRegion: 'us-east-1',
  };
}

export const sqsEvent = (records: SQSRecord[]): SQSEvent => ({ Records: records });

/** The part of Lambda's context the relay reads: the time left, counted down from now. */
export function lambdaContext(remainingMs: number): Pick<Context, 'getRemainingTimeInMillis' | 'awsRequestId'> {
  const end = Date.now() + remainingMs;
  return { getRemainingTimeInMillis: () => Math.max(0, end - Date.now()), awsRequestId: randomUUID() };
}

/** A record of a session-level test: an SQS-like message ID and a contract v1 body. */
export interface TestRecord {
  messageId: string;
  body: string;
}

export const record = (body: string): TestRecord => ({ messageId: randomUUID(), body });

/** What a session is handed for telemetry records, read from their bodies as the relay reads them. */
export function publishRequests(records: readonly TestRecord[]): PublishRequest[] {
  return records.map((r) => {
    const m = parseQueueMessage(r.body);
    if (m.type === 'config-poll') throw new Error('fixture: a poll job is not published');
    const request: PublishRequest = { key: r.messageId, deviceId: m.deviceId, kind: m.type, payload: m.payload };
    if (m.subfolder !== undefined) request.subfolder = m.subfolder;
    return request;
  });
}

/** Every distinct device of the records once, with the token its newest record carries. */
export function attachRequests(records: readonly TestRecord[]): AttachRequest[] {
  const out = new Map<string, AttachRequest>();
  for (const r of records) {
    const m = parseQueueMessage(r.body);
    if (m.type === 'config-poll') continue;
    const token = m.deviceToken ?? out.get(m.deviceId)?.token;
    out.set(m.deviceId, token === undefined ? { deviceId: m.deviceId } : { deviceId: m.deviceId, token });
  }
  return [...out.values()];
}

export interface SessionRun {
  session: GatewaySession;
  report: SessionReport;
  outcomes: RecordOutcome[];
  /** ms from the start of `run()` to its end. */
  elapsedMs: number;
}

/**
 * Runs a whole gateway session over `records` (attach, publish, close) and checks the outcome invariant before
 * returning, so no session test can forget it.
 */
export async function runSession(
  emulator: Emulator,
  fleet: Fleet,
  gatewayId: string,
  records: readonly TestRecord[],
  o: { options?: Partial<GatewaySessionOptions>; whilePublishing?: (s: GatewaySession) => Promise<void> } = {},
): Promise<SessionRun> {
  const session = new GatewaySession(await sessionOptions(emulator, fleet, gatewayId, o.options));
  const started = Date.now();
  const report = await session.run(async (s) => {
    await s.attach(attachRequests(records));
    await Promise.all([s.publish(publishRequests(records)), o.whilePublishing?.(s)]);
  });
  const elapsedMs = Date.now() - started;
  const outcomes = sessionOutcomes(report, records);
  expectOutcomeInvariant({ records, outcomes, emulator, registryId: fleet.registryId });
  return { session, report, outcomes, elapsedMs };
}

/**
 * An emulator over the relay fleet with `options`, for the enclosing describe block: started before it (the state
 * rate limit off unless the options turn it on), closed after it. `fleet` is read when it starts.
 */
export function variantEmulator(fleet: () => Fleet, options: EmulatorOptions): () => Emulator {
  let emulator: Emulator | undefined;
  beforeAll(async () => {
    emulator = await startEmulator({ registry: fleet().document, adminPort: null, stateRateLimit: false, ...options });
  });
  afterAll(() => emulator?.close());
  return () => emulator!;
}

/** The outcome of one record of a run. */
export function outcomeOf(run: Pick<SessionRun, 'outcomes'>, r: TestRecord): RecordOutcome {
  const o = run.outcomes.find((x) => x.messageId === r.messageId);
  if (o === undefined) throw new Error(`fixture: no outcome for ${r.messageId}`);
  return o;
}

// --- malformed records -------------------------------------------------------------------------------------------

export interface MalformedCase {
  name: string;
  body: string;
  code: string;
  /** The field the reason must name, when the fault is in one. */
  field?: string;
}

const base = { v: 1, deviceId: PUMPS[0], payload: 'ok' };
const withFields = (o: Record<string, unknown>): string => JSON.stringify({ ...base, ...o });
const without = (key: string): string => JSON.stringify(Object.fromEntries(Object.entries(base).filter(([k]) => k !== key)));
/** Hostile input, one fault each; every one must be dead-lettered with its own reason. */
export const MALFORMED: MalformedCase[] = [
  { name: 'not JSON', body: '{"v":1,', code: 'ERR_INVALID_MESSAGE' },
  { name: 'empty body', body: '', code: 'ERR_INVALID_MESSAGE' },
  { name: 'a JSON array', body: '[1,2]', code: 'ERR_INVALID_MESSAGE' },
  { name: 'JSON null', body: 'null', code: 'ERR_INVALID_MESSAGE' },
  { name: 'a JSON string', body: '"pump-01"', code: 'ERR_INVALID_MESSAGE' },
  { name: 'a body over 1 MB', body: withFields({ payload: 'x'.repeat(1024 * 1024) }), code: 'ERR_INVALID_MESSAGE' },
  { name: 'no version', body: without('v'), code: 'ERR_UNSUPPORTED_VERSION', field: 'v' },
  { name: 'version 2', body: withFields({ v: 2 }), code: 'ERR_UNSUPPORTED_VERSION', field: 'v' },
  { name: 'version as a string', body: withFields({ v: '1' }), code: 'ERR_UNSUPPORTED_VERSION', field: 'v' },
  { name: 'an unknown field', body: withFields({ priority: 'high' }), code: 'ERR_INVALID_FIELD', field: 'priority' },
  { name: 'a __proto__ key', body: '{"v":1,"deviceId":"pump-01","payload":"x","__proto__":{"polluted":true}}', code: 'ERR_INVALID_FIELD', field: '__proto__' },
  { name: 'an unknown type', body: withFields({ type: 'command' }), code: 'ERR_UNKNOWN_TYPE', field: 'type' },
  { name: 'a numeric type', body: withFields({ type: 7 }), code: 'ERR_UNKNOWN_TYPE', field: 'type' },
  { name: 'no device ID', body: without('deviceId'), code: 'ERR_INVALID_DEVICE_ID', field: 'deviceId' },
  { name: 'a numeric device ID', body: withFields({ deviceId: 42 }), code: 'ERR_INVALID_DEVICE_ID', field: 'deviceId' },
  { name: 'a device ID too short', body: withFields({ deviceId: 'ab' }), code: 'ERR_INVALID_DEVICE_ID', field: 'deviceId' },
  { name: 'a device ID too long', body: withFields({ deviceId: `p${'x'.repeat(255)}` }), code: 'ERR_INVALID_DEVICE_ID', field: 'deviceId' },
  { name: 'a goog-prefixed device ID', body: withFields({ deviceId: 'google-pump' }), code: 'ERR_INVALID_DEVICE_ID', field: 'deviceId' },
  { name: 'a device ID starting with a digit', body: withFields({ deviceId: '1pump' }), code: 'ERR_INVALID_DEVICE_ID', field: 'deviceId' },
  { name: 'a device ID climbing topic levels', body: withFields({ deviceId: 'pump/../gw-assoc' }), code: 'ERR_INVALID_DEVICE_ID', field: 'deviceId' },
  { name: 'a wildcard device ID', body: withFields({ deviceId: 'pump-#' }), code: 'ERR_INVALID_DEVICE_ID', field: 'deviceId' },
  { name: 'a device ID with NUL', body: withFields({ deviceId: 'pump\u0000x' }), code: 'ERR_INVALID_DEVICE_ID', field: 'deviceId' },
  { name: 'a device ID with a space', body: withFields({ deviceId: 'pump 01' }), code: 'ERR_INVALID_DEVICE_ID', field: 'deviceId' },
  { name: 'an empty subfolder', body: withFields({ subfolder: '' }), code: 'ERR_INVALID_SUBFOLDER', field: 'subfolder' },
  { name: 'a + in the subfolder', body: withFields({ subfolder: 'a/+/b' }), code: 'ERR_INVALID_SUBFOLDER', field: 'subfolder' },
  { name: 'a # subfolder', body: withFields({ subfolder: '#' }), code: 'ERR_INVALID_SUBFOLDER', field: 'subfolder' },
  { name: 'a leading / in the subfolder', body: withFields({ subfolder: '/alarms' }), code: 'ERR_INVALID_SUBFOLDER', field: 'subfolder' },
  { name: 'an empty level in the subfolder', body: withFields({ subfolder: 'a//b' }), code: 'ERR_INVALID_SUBFOLDER', field: 'subfolder' },
  { name: 'NUL in the subfolder', body: withFields({ subfolder: 'a\u0000b' }), code: 'ERR_INVALID_SUBFOLDER', field: 'subfolder' },
  { name: 'a subfolder too long', body: withFields({ subfolder: 's'.repeat(257) }), code: 'ERR_INVALID_SUBFOLDER', field: 'subfolder' },
  { name: 'a numeric subfolder', body: withFields({ subfolder: 5 }), code: 'ERR_INVALID_SUBFOLDER', field: 'subfolder' },
  { name: 'a subfolder on state', body: withFields({ type: 'state', subfolder: 'x' }), code: 'ERR_INVALID_FIELD', field: 'subfolder' },
  { name: 'no payload', body: without('payload'), code: 'ERR_INVALID_FIELD', field: 'payload' },
  { name: 'a numeric payload', body: withFields({ payload: 21.5 }), code: 'ERR_INVALID_FIELD', field: 'payload' },
  { name: 'an object payload', body: withFields({ payload: { t: 1 } }), code: 'ERR_INVALID_FIELD', field: 'payload' },
  { name: 'an unknown encoding', body: withFields({ encoding: 'hex', payload: 'abcd' }), code: 'ERR_INVALID_FIELD', field: 'encoding' },
  { name: 'base64 with bad characters', body: withFields({ encoding: 'base64', payload: 'not base64!' }), code: 'ERR_INVALID_BASE64', field: 'payload' },
  { name: 'base64 without padding', body: withFields({ encoding: 'base64', payload: 'YWJjZA' }), code: 'ERR_INVALID_BASE64', field: 'payload' },
  { name: 'base64url instead of base64', body: withFields({ encoding: 'base64', payload: '-_-_' }), code: 'ERR_INVALID_BASE64', field: 'payload' },
  { name: 'an event over 256 KB', body: withFields({ payload: 'e'.repeat(256 * 1024 + 1) }), code: 'ERR_PAYLOAD_TOO_LARGE', field: 'payload' },
  { name: 'a state over 64 KB', body: withFields({ type: 'state', encoding: 'base64', payload: Buffer.alloc(64 * 1024 + 1, 1).toString('base64') }), code: 'ERR_PAYLOAD_TOO_LARGE', field: 'payload' },
  { name: 'a numeric device token', body: withFields({ deviceToken: 12345 }), code: 'ERR_INVALID_FIELD', field: 'deviceToken' },
  { name: 'a device token that is no JWT', body: withFields({ deviceToken: 'letmein' }), code: 'ERR_INVALID_FIELD', field: 'deviceToken' },
  { name: 'device IDs on an event', body: withFields({ deviceIds: ['pump-02'] }), code: 'ERR_INVALID_FIELD', field: 'deviceIds' },
  { name: 'a poll job without devices', body: JSON.stringify({ v: 1, type: 'config-poll', deviceIds: [] }), code: 'ERR_INVALID_FIELD', field: 'deviceIds' },
  { name: 'a poll job with a bad device ID', body: JSON.stringify({ v: 1, type: 'config-poll', deviceIds: ['valve-01', 'x'] }), code: 'ERR_INVALID_DEVICE_ID', field: 'deviceIds[1]' },
  { name: 'a poll job with a payload', body: JSON.stringify({ v: 1, type: 'config-poll', deviceIds: ['valve-01'], payload: 'x' }), code: 'ERR_INVALID_FIELD', field: 'payload' },
];
