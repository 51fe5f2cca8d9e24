/**
 * The one adapter between Lambda's SQS integration and the relay: an SQS event in, `{ batchItemFailures }` out.
 * It computes the session deadline from the Lambda context, runs `relayBatch()`, and carries each outcome out:
 *
 * | outcome         | what happens here                                                                       |
 * |-----------------|-----------------------------------------------------------------------------------------|
 * | `confirmed`     | left out of batchItemFailures: SQS deletes the record                                   |
 * | `retry`         | listed in batchItemFailures, after ChangeMessageVisibility to its `returnAfterSeconds`  |
 * |                 | or RELAY_RETRY_SECONDS (not the queue's long visibility timeout, which holds its group) |
 * | `retry-backoff` | listed, after ChangeMessageVisibility to the backoff for its receive count              |
 * | `dead-letter`   | SendMessage to RELAY_DEAD_LETTER_QUEUE_URL with the reason as attributes, then left out; |
 * |                 | without that URL (or if the send fails) listed with visibility 0, so the queue's own     |
 * |                 | redrive policy moves it after maxReceiveCount receives instead of timeouts               |
 *
 * Why not Powertools' BatchProcessor: it runs a handler per record and collects per-record failures. Here the
 * unit of work is the batch: one MQTT session per gateway carries every record of that gateway, records are
 * confirmed only by the session's final barrier, and several records of a device share one attach. Per-record
 * handlers cannot express that; the batch response it builds is the only part we need, and it is this file.
 *
 * @example
 * export const handler = (event: SQSEvent, context: Context) => relaySqsBatch(event, context, deps);
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { RelaySettings } from '../relay-settings.js';
import { withDeadline } from '../deadline.js';
import { isRelayError } from '../errors.js';
import type { SessionLog } from '../gateway/session.js';
import { publishRelayOutcomes } from '../relay/outcome-channel.js';
import { backoffSeconds, logSafeReason, type RecordOutcome } from '../relay/outcomes.js';
import { relayBatch, type RelayBatchResult, type RelayConfigStore, type SessionSummary } from '../relay/relay-batch.js';
import type { QueueActions, VisibilityChange } from '../queue/queue-actions.js';
import { inboundRecord, queueUrlFromArn } from './sqs-records.js';

export interface RelaySqsDeps {
  settings: RelaySettings;
  gatewayJwt: (gatewayId: string) => Promise<string>;
  queueActions: QueueActions;
  logger: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
  metrics?: Pick<Metrics, 'addMetric' | 'singleMetric'>;
  /** Where polled configs go and relayed devices are noted; without it configs are only counted. */
  configStore?: RelayConfigStore;
  env?: Readonly<Record<string, string | undefined>>;
  random?: () => number;
}

export interface RelaySqsResult {
  response: SQSBatchResponse;
  /** Every record's final outcome, in event order. */
  outcomes: RecordOutcome[];
  sessions: SessionSummary[];
}

/**
 * Kept free after the SQS calls for returning the response: a call that cannot finish before then is abandoned
 * (its record simply goes back) rather than letting Lambda time out, which would fail back the whole batch.
 */
const RESPONSE_RESERVE_MS = 100;

export async function relaySqsBatch(
  event: Pick<SQSEvent, 'Records'>,
  context: Pick<Context, 'getRemainingTimeInMillis'>,
  deps: RelaySqsDeps,
): Promise<RelaySqsResult> {
  const sqsRecords = event.Records ?? [];
  const inbound = sqsRecords.map(inboundRecord);
  const endOfInvocation = Date.now() + context.getRemainingTimeInMillis();
  const deadline = endOfInvocation - deps.settings.deadlineMarginMs;
  let result: RelayBatchResult;
  try {
    result = await relayBatch(inbound, {
      settings: deps.settings,
      gatewayJwt: deps.gatewayJwt,
      deadline,
      log: sessionLog(deps.logger),
      ...(deps.configStore === undefined ? {} : { configStore: deps.configStore }),
      ...(deps.metrics === undefined ? {} : { metrics: deps.metrics }),
    });
  } catch (e) {
    // relayBatch gives every record an outcome by itself; reaching this is a defect. Nothing is lost: all go back.
    deps.logger.error('relay failed as a whole; every record goes back', { error: isRelayError(e) ? e.code : (e as Error)?.name });
    return { response: { batchItemFailures: inbound.map((r) => ({ itemIdentifier: r.messageId })) }, outcomes: [], sessions: [] };
  }
  if (result.foreignGroups.length > 0) {
    deps.logger.warn('message groups that are not configured gateways; sessions of one gateway may overlap', { groups: result.foreignGroups.slice(0, 10) });
  }
  const outcomes = await carryOut(sqsRecords, result.outcomes, deps, endOfInvocation);
  const response: SQSBatchResponse = {
    batchItemFailures: outcomes.filter((o) => o.outcome !== 'confirmed' && o.deadLetter !== 'sent').map((o) => ({ itemIdentifier: o.messageId })),
  };
  report(outcomes, result.sessions, deps);
  publishRelayOutcomes({ outcomes });
  return { response, outcomes, sessions: result.sessions };
}

async function carryOut(records: readonly SQSRecord[], outcomes: RecordOutcome[], deps: RelaySqsDeps, endOfInvocation: number): Promise<RecordOutcome[]> {
  const env = deps.env ?? process.env;
  const byId = new Map(records.map((r) => [r.messageId, r]));
  const final = outcomes.map((o) => ({ ...o }));
  // SQS calls still running then are abandoned: their records go back (see RESPONSE_RESERVE_MS).
  const callsEndBy = endOfInvocation - RESPONSE_RESERVE_MS;
  const dlq = deps.settings.deadLetterQueueUrl;

  await Promise.all(
    final.map(async (o) => {
      if (o.outcome !== 'dead-letter') return;
      const record = byId.get(o.messageId);
      if (dlq === undefined || record === undefined) {
        o.deadLetter = 'redrive';
        return;
      }
      try {
        await withDeadline(() => deps.queueActions.sendToDeadLetter(dlq, deadLetterMessage(record, o, dlq)), callsEndBy, 'ERR_DEADLINE');
        o.deadLetter = 'sent';
      } catch (e) {
        o.deadLetter = 'redrive';
        o.reason = logSafeReason(`${o.reason ?? ''}; not sent to the dead-letter queue: ${(e as Error).message}`);
      }
    }),
  );

  const changes = new Map<string, VisibilityChange[]>();
  for (const o of final) {
    const record = byId.get(o.messageId);
    if (record === undefined) continue;
    let seconds: number | undefined;
    if (o.outcome === 'retry-backoff') {
      seconds = backoffSeconds(Number(record.attributes?.ApproximateReceiveCount) || 1, {
        baseSeconds: deps.settings.backoffBaseSeconds,
        maxSeconds: deps.settings.backoffMaxSeconds,
      }, deps.random);
    } else if (o.outcome === 'dead-letter' && o.deadLetter === 'redrive') {
      // Back at once: the redrive policy counts receives, so the record reaches the dead-letter queue after
      // maxReceiveCount quick rounds instead of that many visibility timeouts holding up its FIFO group.
      seconds = 0;
    } else if (o.outcome === 'retry') {
      seconds = o.returnAfterSeconds ?? deps.settings.retrySeconds;
    }
    if (seconds === undefined) continue;
    const url = deps.settings.sourceQueueUrl ?? queueUrlFromArn(record.eventSourceARN ?? '', env);
    if (url === undefined) continue;
    const list = changes.get(url) ?? [];
    list.push({ id: String(list.length), receiptHandle: record.receiptHandle, seconds });
    changes.set(url, list);
  }
  for (const [url, list] of changes) {
    const failedIds = await withDeadline(() => deps.queueActions.changeVisibility(url, list), callsEndBy, 'ERR_DEADLINE').catch(() => new Set(list.map((c) => c.id)));
    if (failedIds.size > 0) deps.logger.warn('visibility not changed; records come back after the default timeout', { count: failedIds.size });
  }
  return final;
}

function deadLetterMessage(record: SQSRecord, o: RecordOutcome, dlqUrl: string): Parameters<QueueActions['sendToDeadLetter']>[1] {
  const attributes: Record<string, string> = {
    'relay.errorCode': o.code ?? 'ERR_INTERNAL',
    'relay.reason': o.reason ?? '',
    'relay.sourceMessageId': record.messageId,
    'relay.receiveCount': record.attributes?.ApproximateReceiveCount ?? '1',
  };
  if (record.eventSourceARN) attributes['relay.sourceQueue'] = record.eventSourceARN;
  if (o.field !== undefined) attributes['relay.field'] = o.field;
  if (o.gatewayId !== undefined) attributes['relay.gatewayId'] = o.gatewayId;
  if (o.deviceId !== undefined) attributes['relay.deviceId'] = o.deviceId;
  // SQS refuses empty attribute values.
  for (const [k, v] of Object.entries(attributes)) if (v === '') delete attributes[k];
  const message: Parameters<QueueActions['sendToDeadLetter']>[1] = { body: record.body, attributes };
  if (dlqUrl.endsWith('.fifo')) {
    // The source message ID as deduplication ID: a resend after a crash within SQS's 5-minute window is dropped.
    message.fifo = { groupId: record.attributes?.MessageGroupId ?? o.gatewayId ?? 'dead-letter', deduplicationId: record.messageId };
  }
  return message;
}

/** The session's small log interface on top of Powertools' Logger. */
function sessionLog(logger: RelaySqsDeps['logger']): SessionLog {
  type Extra = Exclude<Parameters<Logger['info']>[1], string | Error>;
  return {
    debug: (message, extra) => logger.debug(message, (extra ?? {}) as Extra),
    info: (message, extra) => logger.info(message, (extra ?? {}) as Extra),
    warn: (message, extra) => logger.warn(message, (extra ?? {}) as Extra),
  };
}

/** EMF metrics keep at most 100 values per metric in one document. */
const MAX_SAMPLES = 100;

function report(outcomes: RecordOutcome[], sessions: SessionSummary[], deps: RelaySqsDeps): void {
  const count = (pred: (o: RecordOutcome) => boolean): number => outcomes.filter(pred).length;
  const confirmed = count((o) => o.outcome === 'confirmed');
  const retried = count((o) => o.outcome === 'retry' || o.outcome === 'retry-backoff');
  const deadLettered = count((o) => o.outcome === 'dead-letter');
  for (const s of sessions) {
    const info = {
      gatewayId: s.gatewayId,
      records: s.records,
      confirmed: s.confirmed,
      devices: s.devices,
      durationMs: s.durationMs,
      connectMs: s.connectMs,
      phases: s.phases,
      gatewayErrors: s.gatewayErrors,
      uncorrelatedErrors: s.uncorrelatedErrors,
      lateErrors: s.lateErrors,
      lateErrorsAfterGrace: s.lateErrorsAfterGrace,
      ...(s.failure === undefined ? {} : { failureCode: s.failure.code, failureReason: logSafeReason(s.failure.reason), failurePhase: s.failure.phase }),
    };
    if (s.failure === undefined) deps.logger.info('gateway session', info);
    else deps.logger.warn('gateway session ended early', info);
  }
  for (const o of outcomes) {
    if (o.outcome === 'confirmed') {
      deps.logger.debug('record confirmed', { messageId: o.messageId, gatewayId: o.gatewayId, deviceId: o.deviceId, coalescedInto: o.coalescedInto });
      continue;
    }
    deps.logger.warn('record not confirmed', {
      messageId: o.messageId,
      outcome: o.outcome,
      code: o.code,
      reason: o.reason,
      gatewayId: o.gatewayId,
      deviceId: o.deviceId,
      field: o.field,
      deadLetter: o.deadLetter,
    });
  }
  deps.logger.info('batch relayed', { records: outcomes.length, confirmed, retried, deadLettered, sessions: sessions.length });

  const m = deps.metrics;
  if (m === undefined) return;
  m.addMetric('RecordsReceived', MetricUnit.Count, outcomes.length);
  m.addMetric('RecordsConfirmed', MetricUnit.Count, confirmed);
  m.addMetric('RecordsFailedBack', MetricUnit.Count, retried);
  m.addMetric('RecordsDeadLettered', MetricUnit.Count, deadLettered);
  m.addMetric('Sessions', MetricUnit.Count, sessions.length);
  m.addMetric('SessionsEndedEarly', MetricUnit.Count, sessions.filter((s) => s.failure !== undefined).length);
  // Errors after a final barrier: within the grace window they un-confirmed their records, after it they could not.
  m.addMetric('LateGatewayErrors', MetricUnit.Count, sessions.reduce((n, s) => n + s.lateErrors, 0));
  m.addMetric('LateGatewayErrorsAfterGrace', MetricUnit.Count, sessions.reduce((n, s) => n + s.lateErrorsAfterGrace, 0));
  // Each metric name is written out at its addMetric call: test/deploy/template.test.ts reads the names the code
  // emits from those calls, and checks the CloudWatch dashboard against them.
  const samples = (values: number[], add: (v: number) => void): void => values.slice(0, MAX_SAMPLES).forEach(add);
  samples(
    sessions.map((s) => s.durationMs),
    (v) => m.addMetric('SessionDuration', MetricUnit.Milliseconds, v),
  );
  samples(
    sessions.flatMap((s) => (s.connectMs === undefined ? [] : [s.connectMs])),
    (v) => m.addMetric('ConnectLatency', MetricUnit.Milliseconds, v),
  );
  samples(
    sessions.flatMap((s) => s.attachLatenciesMs),
    (v) => m.addMetric('AttachLatency', MetricUnit.Milliseconds, v),
  );
  samples(
    sessions.flatMap((s) => s.publishLatenciesMs),
    (v) => m.addMetric('PublishLatency', MetricUnit.Milliseconds, v),
  );
  const byCode = new Map<string, number>();
  for (const o of outcomes) if (o.code !== undefined) byCode.set(o.code, (byCode.get(o.code) ?? 0) + 1);
  for (const [code, n] of byCode) {
    const single = m.singleMetric();
    single.addDimension('code', code);
    single.addMetric('RecordFailures', MetricUnit.Count, n);
  }
  const byType = new Map<string, number>();
  for (const s of sessions) for (const [type, n] of Object.entries(s.gatewayErrors)) byType.set(type, (byType.get(type) ?? 0) + (n ?? 0));
  for (const [type, n] of byType) {
    const single = m.singleMetric();
    single.addDimension('errorType', type);
    single.addMetric('GatewayErrors', MetricUnit.Count, n);
  }
}

