/**
 * Relays one queue batch: route the records to their gateways, run one gateway session per gateway (in parallel,
 * each session attaches its devices, publishes, serves poll jobs, detaches), and give every record exactly one
 * outcome. Knows nothing of Lambda or SQS event shapes: lib/sqs/ turns events into `InboundRecord`s and outcomes
 * into the batch response.
 *
 * @example
 * const { outcomes } = await relayBatch(records, { settings, gatewayJwt, deadline: Date.now() + 25_000 });
 */
import { isRelayError, RelayError } from '../errors.js';
import { GatewaySession, type AttachRequest, type PublishRequest, type SessionFailure, type SessionLog, type SessionReport } from '../gateway/session.js';
import type { GatewayErrorType } from '../iotcore/gateway-error.js';
import type { RelaySettings } from '../config.js';
import { pollConfigs, type ConfigSink, type PollResult } from './config-poll.js';
import { confirmed, failed, type RecordOutcome } from './outcomes.js';
import { routeRecords, type GatewayWork, type InboundRecord } from './route-records.js';

export type SessionSettings = Pick<
  RelaySettings,
  | 'registry'
  | 'gatewayIds'
  | 'mqttHost'
  | 'mqttPort'
  | 'extraCaPem'
  | 'connectTimeoutMs'
  | 'attachTimeoutMs'
  | 'pubackTimeoutMs'
  | 'configTimeoutMs'
  | 'closeTimeoutMs'
  | 'publishWindow'
>;

export interface RelayBatchDeps {
  settings: SessionSettings;
  /** A fresh JWT for a gateway; throws RelayError ERR_KEY_UNAVAILABLE / ERR_KEY_INVALID / ERR_CONFIG. */
  gatewayJwt: (gatewayId: string) => Promise<string>;
  /** Absolute time (ms since the epoch) by which every session has closed. */
  deadline: number;
  log?: SessionLog;
  /** Where config-poll results go; by default they are only counted. */
  configSink?: ConfigSink;
}

/** What one gateway session did, for logs and metrics. No secrets. */
export interface SessionSummary {
  gatewayId: string;
  records: number;
  confirmed: number;
  devices: number;
  failure: SessionFailure | undefined;
  phases: string[];
  connectMs: number | undefined;
  attachLatenciesMs: number[];
  publishLatenciesMs: number[];
  gatewayErrors: Partial<Record<GatewayErrorType, number>>;
  uncorrelatedErrors: number;
  durationMs: number;
}

export interface RelayBatchResult {
  /** One per input record, in input order. */
  outcomes: RecordOutcome[];
  sessions: SessionSummary[];
  foreignGroups: string[];
}

export async function relayBatch(records: readonly InboundRecord[], deps: RelayBatchDeps): Promise<RelayBatchResult> {
  const routed = routeRecords(records, deps.settings.gatewayIds);
  const ran = await Promise.all(routed.batches.map((work) => relayGateway(work, deps)));
  const byId = new Map<string, RecordOutcome>();
  for (const o of routed.rejected) byId.set(o.messageId, o);
  for (const r of ran) for (const o of r.outcomes) byId.set(o.messageId, o);
  const outcomes = records.map(
    (r) => byId.get(r.messageId) ?? failed(r.messageId, 'ERR_INTERNAL', 'the record was not accounted for by any session'),
  );
  return { outcomes, sessions: ran.map((r) => r.summary), foreignGroups: routed.foreignGroups };
}

async function relayGateway(work: GatewayWork, deps: RelayBatchDeps): Promise<{ outcomes: RecordOutcome[]; summary: SessionSummary }> {
  const started = Date.now();
  const { gatewayId } = work;
  const s = deps.settings;
  const messageIds = [...work.telemetry.map((t) => t.messageId), ...work.polls.map((p) => p.messageId)];

  let jwt: string;
  try {
    jwt = await deps.gatewayJwt(gatewayId);
  } catch (e) {
    const err = asRelayError(e);
    return {
      outcomes: messageIds.map((id) => failed(id, err.code, err.message, { gatewayId })),
      summary: emptySummary(gatewayId, messageIds.length, { code: err.code, reason: err.message, phase: 'connecting' }, started),
    };
  }

  const session = new GatewaySession({
    registry: s.registry,
    gatewayId,
    host: s.mqttHost,
    port: s.mqttPort,
    extraCaPem: s.extraCaPem,
    jwt,
    deadline: deps.deadline,
    connectTimeoutMs: s.connectTimeoutMs,
    attachTimeoutMs: s.attachTimeoutMs,
    pubackTimeoutMs: s.pubackTimeoutMs,
    closeTimeoutMs: s.closeTimeoutMs,
    publishWindow: s.publishWindow,
    ...(deps.log === undefined ? {} : { log: deps.log }),
  });

  let polls = new Map<string, PollResult>();
  const report = await session.run(async (gw) => {
    await gw.attach(attachRequests(work));
    // Telemetry and poll jobs share the session; neither waits for the other.
    const [published, polled] = await Promise.allSettled([
      gw.publish(work.telemetry.map(publishRequest)),
      work.polls.length === 0
        ? Promise.resolve(new Map<string, PollResult>())
        : pollConfigs(gw, work.polls, { timeoutMs: s.configTimeoutMs, sink: deps.configSink ?? (() => {}) }),
    ]);
    if (polled.status === 'fulfilled') polls = polled.value;
    if (published.status === 'rejected') throw published.reason;
    if (polled.status === 'rejected') throw polled.reason;
  });

  const outcomes = [
    ...work.telemetry.map((t) => telemetryOutcome(t.messageId, t.message.deviceId, report, gatewayId)),
    ...work.polls.map((p) => pollOutcome(p.messageId, polls.get(p.messageId), report, gatewayId)),
  ];
  return { outcomes, summary: summarize(report, outcomes, work, started) };
}

/**
 * Every distinct device once. A device's token is taken from its newest record that carries one: producers refresh
 * tokens, so the newest is the least likely to have expired.
 */
function attachRequests(work: GatewayWork): AttachRequest[] {
  const requests = new Map<string, AttachRequest>();
  for (const { message } of work.telemetry) {
    const current = requests.get(message.deviceId);
    const token = message.deviceToken ?? current?.token;
    requests.set(message.deviceId, token === undefined ? { deviceId: message.deviceId } : { deviceId: message.deviceId, token });
  }
  for (const { message } of work.polls) for (const d of message.deviceIds) if (!requests.has(d)) requests.set(d, { deviceId: d });
  return [...requests.values()];
}

function publishRequest(t: GatewayWork['telemetry'][number]): PublishRequest {
  const m = t.message;
  const request: PublishRequest = { key: t.messageId, deviceId: m.deviceId, kind: m.type, payload: m.payload };
  if (m.subfolder !== undefined) request.subfolder = m.subfolder;
  return request;
}

function telemetryOutcome(messageId: string, deviceId: string, report: SessionReport, gatewayId: string): RecordOutcome {
  const r = report.records.get(messageId);
  const extra = { gatewayId, deviceId, ...(r?.coalescedInto === undefined ? {} : { coalescedInto: r.coalescedInto }) };
  if (r === undefined) {
    const f = report.failure ?? { code: 'ERR_INTERNAL' as const, reason: 'the session never took the record' };
    return failed(messageId, f.code, f.reason, extra);
  }
  return r.status === 'confirmed' ? confirmed(messageId, extra) : failed(messageId, r.code, r.reason, extra);
}

function pollOutcome(messageId: string, result: PollResult | undefined, report: SessionReport, gatewayId: string): RecordOutcome {
  if (result === undefined) {
    const f = report.failure ?? { code: 'ERR_INTERNAL' as const, reason: 'the poll job never ran' };
    return failed(messageId, f.code, f.reason, { gatewayId });
  }
  return result.ok ? confirmed(messageId, { gatewayId }) : failed(messageId, result.code, result.reason, { gatewayId });
}

function summarize(report: SessionReport, outcomes: RecordOutcome[], work: GatewayWork, started: number): SessionSummary {
  const gatewayErrors: Partial<Record<GatewayErrorType, number>> = {};
  for (const e of report.gatewayErrors) gatewayErrors[e.errorType] = (gatewayErrors[e.errorType] ?? 0) + 1;
  return {
    gatewayId: work.gatewayId,
    records: outcomes.length,
    confirmed: outcomes.filter((o) => o.outcome === 'confirmed').length,
    devices: report.attachments.size,
    failure: report.failure,
    phases: report.phases,
    connectMs: report.connectMs,
    attachLatenciesMs: report.attachLatenciesMs,
    publishLatenciesMs: report.publishLatenciesMs,
    gatewayErrors,
    uncorrelatedErrors: report.uncorrelatedErrors,
    durationMs: Date.now() - started,
  };
}

function emptySummary(gatewayId: string, records: number, failure: SessionFailure, started: number): SessionSummary {
  return {
    gatewayId,
    records,
    confirmed: 0,
    devices: 0,
    failure,
    phases: [],
    connectMs: undefined,
    attachLatenciesMs: [],
    publishLatenciesMs: [],
    gatewayErrors: {},
    uncorrelatedErrors: 0,
    durationMs: Date.now() - started,
  };
}

function asRelayError(e: unknown): RelayError {
  if (isRelayError(e)) return e;
  return new RelayError('ERR_INTERNAL', `unexpected: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}
