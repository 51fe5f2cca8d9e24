/**
 * The scheduled poller (EventBridge schedule -> Lambda). It only enqueues `config-poll` jobs onto each gateway's
 * FIFO message group; the relay runs them in a gateway session. It never connects to the bridge itself: a second
 * connection with a gateway's client ID would drop the relay's (docs/design.md rule 1).
 *
 * Environment: see lib/poll/poll-settings.ts, plus CONFIG_TABLE (and optional CONFIG_RETENTION_DAYS) for the
 * store that remembers which devices were relayed for recently.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context, ScheduledEvent } from 'aws-lambda';
import { configStoreFromEnv } from '../lib/config-store/index.js';
import { pollSettingsFromEnv } from '../lib/poll/poll-settings.js';
import { loadSqsSdk } from '../lib/queue/queue-producer.js';
import { scheduleConfigPolls, type PollSources, type PollSummary } from '../lib/poll/schedule-polls.js';

/** What the handler reads from its event: EventBridge's `time`, the time the schedule fired. */
export type PollEvent = Partial<Pick<ScheduledEvent, 'time' | 'id'>>;

export interface PollHandlerOptions {
  env?: NodeJS.ProcessEnv;
  /** Built from the environment on the first invocation when absent. */
  sources?: PollSources;
  logger?: Logger;
  metrics?: Metrics;
}

export type PollHandler = (event: PollEvent, context?: Pick<Context, 'awsRequestId' | 'functionName'>) => Promise<PollSummary>;

export function createPollHandler(options: PollHandlerOptions = {}): PollHandler {
  const env = options.env ?? process.env;
  const logger = options.logger ?? new Logger({ serviceName: env.POWERTOOLS_SERVICE_NAME ?? 'iotcore-relay' });
  const metrics =
    options.metrics ??
    new Metrics({ namespace: env.POWERTOOLS_METRICS_NAMESPACE ?? 'IotCoreRelay', serviceName: env.POWERTOOLS_SERVICE_NAME ?? 'iotcore-relay' });
  let sources = options.sources;

  return async (event, context) => {
    if (context !== undefined) logger.appendKeys({ requestId: context.awsRequestId });
    const scheduledAt = scheduleTime(event, logger);
    try {
      const settings = pollSettingsFromEnv(env);
      // The SQS client is loaded here, not with the module: the SDK's clients load at first use (docs/deploy.md).
      sources ??= { store: configStoreFromEnv(env), sqs: new (await loadSqsSdk()).SQSClient({}) };
      const summary = await scheduleConfigPolls(sources, settings, scheduledAt);
      metrics.addMetric('ConfigPollDevices', MetricUnit.Count, summary.devices);
      metrics.addMetric('ConfigPollJobsEnqueued', MetricUnit.Count, summary.jobs);
      logger.info('config polls enqueued', { scheduledAt: scheduledAt.toISOString(), ...summary });
      return summary;
    } catch (e) {
      // Thrown on: Lambda retries the asynchronous invocation, and the deduplication IDs keep jobs single.
      logger.error('config polls not enqueued', { scheduledAt: scheduledAt.toISOString(), error: e as Error });
      throw e;
    } finally {
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    }
  };
}

/** The schedule's own time when the event carries one; a manual invocation falls back to the current minute. */
function scheduleTime(event: PollEvent, logger: Logger): Date {
  const t = typeof event?.time === 'string' ? new Date(event.time) : undefined;
  if (t !== undefined && !Number.isNaN(t.getTime())) return t;
  const now = new Date();
  now.setUTCSeconds(0, 0);
  logger.warn('event has no schedule time; using the current minute for deduplication', { scheduledAt: now.toISOString() });
  return now;
}

export const handler: PollHandler = createPollHandler();
