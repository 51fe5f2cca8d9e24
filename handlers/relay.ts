/**
 * Lambda handler of the relay queue (SQS, ReportBatchItemFailures). Thin by design: settings, keys, the config
 * store, logger and metrics are wired here once per container; lib/sqs/relay-sqs-batch.ts turns the event into
 * gateway sessions and the outcomes into `{ batchItemFailures }`.
 *
 * The config store is the table named by `CONFIG_TABLE` (lib/config-store/lazy-store-from-env.ts): configs polled by
 * `config-poll` jobs are written there, and the devices relayed for are noted there for the scheduled poller.
 * Without `CONFIG_TABLE` the relay still serves poll jobs, but only counts the configs (metric ConfigsNotStored),
 * and says so in the log once per container.
 *
 * Logs carry gateway IDs, device IDs, counts and codes; never a JWT, a key or a payload.
 *
 * Cold start: importing this module must evaluate nothing of the AWS SDK. Evaluating it at import made that import
 * about a third longer (bench/cold-start.ts measures the relay against a build that does). Each client is loaded
 * by the first call that needs it: Secrets Manager (with Powertools Parameters) when the first invocation signs its
 * first JWT, DynamoDB when a session's results are written to the config table, SQS only when a record must be
 * dead-lettered or backed off. The cost moves into the first invocation rather than vanishing, but a container
 * that never needs a client never pays for it. The SDK's code is still in the bundle, lazily wrapped, so Node
 * still reads and parses it at import. test/deploy/relay-bundle-lazy-sdk.test.ts fails if a static import of the
 * SDK creeps back in; keep SDK imports on this module's graph type-only.
 *
 * @example
 * // serverless.yml: handler: handlers/relay.handler
 * // tests: const relay = createRelayHandler({ env, queueActions: standIn });
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { loadRelaySettings, relaySettings, type Env } from '../lib/relay-settings.js';
import { lazyConfigStoreFromEnv } from '../lib/config-store/lazy-store-from-env.js';
import { isRelayError } from '../lib/errors.js';
import { signGatewayJwt } from '../lib/jwt.js';
import type { KeySource } from '../lib/keys/key-source.js';
import { keySourceFromEnv } from '../lib/keys/key-source-from-env.js';
import type { RelayConfigStore } from '../lib/relay/relay-batch.js';
import { SettingsCheck } from '../lib/settings-check.js';
import { sqsQueueActions, type QueueActions } from '../lib/queue/queue-actions.js';
import { relaySqsBatch, type RelaySqsDeps } from '../lib/sqs/relay-sqs-batch.js';

export type RelayHandler = (event: SQSEvent, context: Pick<Context, 'getRemainingTimeInMillis'> & Partial<Pick<Context, 'awsRequestId'>>) => Promise<SQSBatchResponse>;

export interface RelayHandlerOptions {
  /** Defaults to `process.env`, read once per container. */
  env?: Env;
  keySource?: KeySource;
  queueActions?: QueueActions;
  /** Defaults to the table named by `CONFIG_TABLE`, or none when it is unset. */
  configStore?: RelayConfigStore;
  logger?: Logger;
  metrics?: Metrics;
}

export function createRelayHandler(options: RelayHandlerOptions = {}): RelayHandler {
  const env = options.env ?? process.env;
  const serviceName = env.POWERTOOLS_SERVICE_NAME ?? 'iotcore-relay';
  const logger = options.logger ?? new Logger({ serviceName });
  const metrics = options.metrics ?? new Metrics({ namespace: env.POWERTOOLS_METRICS_NAMESPACE ?? 'IotCoreRelay', serviceName });
  let deps: RelaySqsDeps | undefined;

  return async (event, context) => {
    if (context.awsRequestId !== undefined) logger.appendKeys({ requestId: context.awsRequestId });
    try {
      try {
        // Built on the first invocation, not at import: a configuration error is then a logged failure of each
        // batch (every record goes back, nothing is lost) and heals with the next deployment.
        deps ??= buildDeps(env, options, logger, metrics);
      } catch (e) {
        logger.error('relay is misconfigured; every record goes back', { code: isRelayError(e) ? e.code : 'ERR_INTERNAL', error: (e as Error).message });
        metrics.addMetric('RecordsFailedBack', MetricUnit.Count, event.Records.length);
        return { batchItemFailures: event.Records.map((r) => ({ itemIdentifier: r.messageId })) };
      }
      const { response } = await relaySqsBatch(event, context, deps);
      return response;
    } finally {
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    }
  };
}

function buildDeps(env: Env, options: RelayHandlerOptions, logger: Logger, metrics: Metrics): RelaySqsDeps {
  // Every setting is checked before any is used, so one ERR_CONFIG names every variable to fix.
  const check = new SettingsCheck();
  const loaded = check.read(() => (options.env === undefined ? relaySettings() : loadRelaySettings(env)));
  const keySource = check.read(() => options.keySource ?? keySourceFromEnv(env));
  const configStore = check.read(() => options.configStore ?? configStoreOf(env, logger));
  check.throwIfAny();
  const settings = loaded!;
  const keys = keySource!;
  const deps: RelaySqsDeps = {
    settings,
    gatewayJwt: async (gatewayId) => {
      const { key, alg } = await keys.signingKey(gatewayId);
      return signGatewayJwt({ key, alg, project: settings.registry.project, lifetimeSeconds: settings.jwtLifetimeSeconds });
    },
    queueActions: options.queueActions ?? sqsQueueActions(),
    logger,
    metrics,
    env,
  };
  if (configStore !== undefined) deps.configStore = configStore;
  return deps;
}

function configStoreOf(env: Env, logger: Logger): RelayConfigStore | undefined {
  if ((env.CONFIG_TABLE?.trim() ?? '') !== '') return lazyConfigStoreFromEnv(env);
  logger.warn('CONFIG_TABLE is not set: polled configs are counted but not stored, and relayed devices are not noted for polling');
  return undefined;
}

export const handler: RelayHandler = createRelayHandler();
