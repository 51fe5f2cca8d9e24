/**
 * Relays one queue batch: route the records to their gateways, run one gateway session per gateway (in parallel,
 * each session attaches its devices, publishes, serves poll jobs, detaches), and give every record exactly one
 * outcome. Afterwards it notes in the config store which devices it relayed for, so the scheduled poller polls
 * their configs. Knows nothing of Lambda or SQS event shapes: lib/sqs/ turns events into `InboundRecord`s and
 * outcomes into the batch response.
 *
 * A `config-poll` record is served in the session of its gateway, beside that gateway's telemetry, never in a
 * connection of its own (docs/design.md rule 1). Its outcome:
 * - confirmed when the poll ran to completion, whatever number of its devices delivered no config: those are
 *   reported in logs and metrics, and the next schedule polls them again (retrying the job would not bind an
 *   unbound device);
 * - failed back with the session's code when the session failed before the poll could run, or stopped while
 *   devices could still deliver; with the store's code when a config that arrived could not be written;
 * - failed back with ERR_ATTACH_LIMIT, to be shown again at once, when serving it too would have attached more
 *   devices than the gateway may hold (lib/relay/config-poll.ts, `admitPollJobs`): the gateway's next batch
 *   serves it, so the jobs run in sequence.
 *
 * @example
 * const { outcomes } = await relayBatch(records, { settings, gatewayJwt, deadline: Date.now() + 25_000, configStore });
 */
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import type { ConfigWriter } from '../config-store/config-store.js';
import { withDeadline } from '../deadline.js';
import { isRelayError, RelayError } from '../errors.js';
import { GatewaySession, type AttachRequest, type PublishRequest, type SessionFailure, type SessionLog, type SessionReport } from '../gateway/session.js';
import type { GatewayErrorType } from '../iotcore/gateway-error.js';
import { MAX_ATTACHED_PER_GATEWAY } from '../iotcore/limits.js';
import type { RelaySettings } from '../relay-settings.js';
import { admitPollJobs, runConfigPoll, type ConfigPollOutcome, type ConfigPollResult } from './config-poll.js';
import { confirmed, confirmedTelemetry, dispositionOf, failed, type Disposition, type RecordOutcome } from './outcomes.js';
import { routeRecords, type GatewayWork, type InboundRecord, type PollItem } from './route-records.js';

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
> &
  Partial<Pick<RelaySettings, 'subscribeBeforeConnack' | 'publishRate' | 'lateErrorGraceMs' | 'mqttVersion'>>;

/** What the relay needs of the config store (lib/config-store): write polled configs, note relayed devices. */
export interface RelayConfigStore extends ConfigWriter {
  noteRelayed(deviceIds: readonly string[], at: Date): Promise<void>;
}

export interface RelayBatchDeps {
  settings: SessionSettings;
  /** A fresh JWT for a gateway; throws RelayError ERR_KEY_UNAVAILABLE / ERR_KEY_INVALID / ERR_CONFIG. */
  gatewayJwt: (gatewayId: string) => Promise<string>;
  /** Absolute time (ms since the epoch) by which every session has closed. */
  deadline: number;
  log?: SessionLog;
  /**
   * Where polled configs are written and relayed devices noted. Without it, polled configs are only counted and
   * nothing is noted.
   */
  configStore?: RelayConfigStore;
  /** Receives the config poll's metrics and NoteRelayedFailures; the caller publishes them. */
  metrics?: Pick<Metrics, 'addMetric'>;
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
  /** Errors after a device's final barrier, and of those the ones after the grace window (only counted). */
  lateErrors: number;
  lateErrorsAfterGrace: number;
  durationMs: number;
  /** What the session's poll jobs found, device by device; undefined when it had none or never got to them. */
  configPoll: ConfigPollResult | undefined;
  /** Poll jobs left for a later session by the attach limit. */
  deferredPolls: number;
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
  if (deps.configStore !== undefined) await noteRelayed(outcomes, deps.configStore, deps);
  return { outcomes, sessions: ran.map((r) => r.summary), foreignGroups: routed.foreignGroups };
}

/**
 * Notes the devices whose telemetry was confirmed, so the poller finds them (`lastRelayedAt`). Best effort: the
 * records are on the bridge already and must not go back for this, so a failure is logged and counted, and the
 * write is abandoned at the deadline rather than holding the invocation past it.
 */
async function noteRelayed(outcomes: readonly RecordOutcome[], store: RelayConfigStore, deps: RelayBatchDeps): Promise<void> {
  const deviceIds = [...new Set(outcomes.flatMap((o) => (o.outcome === 'confirmed' && o.deviceId !== undefined ? [o.deviceId] : [])))];
  if (deviceIds.length === 0) return;
  try {
    // Past the deadline the write is not even started.
    await withDeadline(() => store.noteRelayed(deviceIds, new Date()), deps.deadline, 'ERR_DEADLINE');
  } catch (e) {
    deps.log?.warn('devices relayed for were not noted; the poller skips them until their next relay', {
      devices: deviceIds.length,
      code: isRelayError(e) ? e.code : 'ERR_STORE_UNAVAILABLE',
      error: (e as Error)?.message ?? String(e),
    });
    deps.metrics?.addMetric('NoteRelayedFailures', MetricUnit.Count, 1);
  }
}

async function relayGateway(work: GatewayWork, deps: RelayBatchDeps): Promise<{ outcomes: RecordOutcome[]; summary: SessionSummary }> {
  const started = Date.now();
  const { gatewayId } = work;
  const s = deps.settings;

  // Not awaited here: the session connects to the bridge while the key is fetched and the JWT signed. A key that
  // cannot be had ends the session with its error, before any CONNECT is sent.
  const jwt = deps.gatewayJwt(gatewayId).catch((e: unknown) => {
    throw asRelayError(e);
  });

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
    ...(s.subscribeBeforeConnack === undefined ? {} : { subscribeBeforeConnack: s.subscribeBeforeConnack }),
    ...(s.publishRate === undefined ? {} : { publishRate: s.publishRate }),
    ...(s.lateErrorGraceMs === undefined ? {} : { lateErrorGraceMs: s.lateErrorGraceMs }),
    ...(s.mqttVersion === undefined ? {} : { protocolVersion: s.mqttVersion }),
    ...(deps.log === undefined ? {} : { log: deps.log }),
  });

  const telemetryAttach = attachRequests(work);
  const plan = admitPollJobs(
    work.polls,
    telemetryAttach.map((r) => r.deviceId),
    gatewayId,
  );
  let poll: ConfigPollResult | undefined;
  const report = await session.run(async (gw) => {
    // Telemetry devices first: their records wait for nothing but their own attaches, and a poll of up to 1,000
    // devices attaches beside the publishing.
    if (telemetryAttach.length > 0) await gw.attach(telemetryAttach);
    const [published, polled] = await Promise.allSettled([
      work.telemetry.length === 0 ? Promise.resolve() : gw.publish(work.telemetry.map(publishRequest)),
      plan.admitted.length === 0
        ? Promise.resolve(undefined)
        : runConfigPoll(gw, plan.deviceIds, deps.configStore, {
            waitMs: s.configTimeoutMs,
            overLimit: plan.overLimit,
            // Store writes leave the close its time to detach: the detaches are the telemetry's final barrier.
            deadline: deps.deadline - s.closeTimeoutMs,
            ...(deps.metrics === undefined ? {} : { metrics: deps.metrics }),
            ...(deps.log === undefined ? {} : { log: deps.log }),
          }),
    ]);
    if (polled.status === 'fulfilled') poll = polled.value;
    if (published.status === 'rejected') throw published.reason;
    if (polled.status === 'rejected') throw polled.reason;
  });

  const outcomes = [
    ...work.telemetry.map((t) => telemetryOutcome(t.messageId, t.message.deviceId, report, gatewayId)),
    ...plan.admitted.map((p) => pollOutcome(p, poll, report, gatewayId)),
    ...plan.deferred.map((p) =>
      failed(
        p.messageId,
        'ERR_ATTACH_LIMIT',
        `serving this job beside the batch's other jobs would attach more than ${MAX_ATTACHED_PER_GATEWAY} devices to ${gatewayId} at once`,
        // Back at once, first in its group: the next batch of the gateway serves it, without the group waiting
        // out a visibility timeout.
        { gatewayId, returnAfterSeconds: 0 },
      ),
    ),
  ];
  return { outcomes, summary: { ...summarize(report, outcomes, work, started), configPoll: poll, deferredPolls: plan.deferred.length } };
}

/**
 * Every distinct device of the telemetry once (poll jobs attach their own devices). A device's token is taken from
 * its newest record that carries one: producers refresh tokens, so the newest is the least likely to have expired.
 */
function attachRequests(work: GatewayWork): AttachRequest[] {
  const requests = new Map<string, AttachRequest>();
  for (const { message } of work.telemetry) {
    const current = requests.get(message.deviceId);
    const token = message.deviceToken ?? current?.token;
    requests.set(message.deviceId, token === undefined ? { deviceId: message.deviceId } : { deviceId: message.deviceId, token });
  }
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
  if (r?.status === 'confirmed') return confirmedTelemetry(messageId, gatewayId, deviceId, r.coalescedInto);
  const extra = { gatewayId, deviceId, ...(r?.coalescedInto === undefined ? {} : { coalescedInto: r.coalescedInto }) };
  if (r === undefined) {
    const f = report.failure ?? { code: 'ERR_INTERNAL' as const, reason: 'the session never took the record' };
    return failed(messageId, f.code, f.reason, extra);
  }
  return failed(messageId, r.code, r.reason, extra);
}

/** Of several store failures of one job, the one that brings the job back soonest decides its outcome. */
const RANK: Record<Disposition, number> = { retry: 0, 'retry-backoff': 1, 'dead-letter': 2 };

function pollOutcome(job: PollItem, result: ConfigPollResult | undefined, report: SessionReport, gatewayId: string): RecordOutcome {
  if (result === undefined) {
    const f = report.failure ?? { code: 'ERR_INTERNAL' as const, reason: 'the poll job never ran' };
    return failed(job.messageId, f.code, f.reason, { gatewayId });
  }
  if (result.interrupted !== undefined) {
    return failed(job.messageId, result.interrupted.code, `the session stopped during the config poll: ${result.interrupted.reason}`, { gatewayId });
  }
  // Configs that arrived but could not be written are fetched again by a retry; a missing config is not a reason
  // to retry (the module comment says why). A store failure that no retry can fix only gets reported.
  const devices = new Set(job.message.deviceIds);
  let worst: Extract<ConfigPollOutcome, { status: 'store-failed' }> | undefined;
  for (const o of result.outcomes) {
    if (o.status !== 'store-failed' || !devices.has(o.deviceId) || dispositionOf(o.code) === 'dead-letter') continue;
    if (worst === undefined || RANK[dispositionOf(o.code)] < RANK[dispositionOf(worst.code)]) worst = o;
  }
  if (worst !== undefined) {
    return failed(job.messageId, worst.code, `the config of ${worst.deviceId} arrived but was not stored: ${worst.detail}`, { gatewayId });
  }
  return confirmed(job.messageId, { gatewayId });
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
    lateErrors: report.lateErrors,
    lateErrorsAfterGrace: report.lateErrorsAfterGrace,
    durationMs: Date.now() - started,
    configPoll: undefined,
    deferredPolls: 0,
  };
}

function asRelayError(e: unknown): RelayError {
  if (isRelayError(e)) return e;
  return new RelayError('ERR_INTERNAL', `unexpected: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}
