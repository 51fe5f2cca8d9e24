/**
 * Lambda handler of the ingest routes (API Gateway HTTP API, payload format 2.0). Thin by design: the event becomes
 * an `IngestRequest`, `lib/ingest` does the work, the `IngestResponse` becomes the result.
 *
 * One log line per request, with the outcome, the device and the config version put into the answer (a second,
 * WARN line when the config could not be looked up); never a header or a body, which carry device JWTs, device
 * keys and payloads. One EMF count per answer by class (IngestAccepted, IngestRefused, IngestFailed), and
 * ConfigsDelivered when the answer carries a config: the CloudWatch dashboard's ingest and config panels.
 *
 * @example
 * // serverless.yml: handler: handlers/ingest.handler
 * // tests: const handle = createIngestHandler({ service: new IngestService({...}), logger });
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { isRelayError } from '../lib/errors.js';
import { requestFromEvent, resultFromResponse, type HttpApiResult } from '../lib/http/api-gateway.js';
import { errorEnvelope } from '../lib/http/error-envelope.js';
import { ingestServiceFromEnv, type IngestResponse, type IngestService } from '../lib/ingest/index.js';

export type IngestHandler = (event: APIGatewayProxyEventV2) => Promise<HttpApiResult>;

export interface IngestHandlerOptions {
  /** Defaults to `ingestServiceFromEnv(process.env)`, built on the first request. */
  service?: IngestService;
  logger?: Logger;
  /** CloudWatch EMF metrics; defaults to the namespace and service of the environment. */
  metrics?: Metrics;
}

export function createIngestHandler(options: IngestHandlerOptions = {}): IngestHandler {
  const logger = options.logger ?? new Logger();
  const metrics =
    options.metrics ??
    new Metrics({ namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? 'IotCoreRelay', serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? 'iotcore-relay' });
  let service = options.service;
  const internalError = (): HttpApiResult => {
    metrics.addMetric('IngestFailed', MetricUnit.Count, 1);
    return resultFromResponse({ statusCode: 500, headers: { 'content-type': 'application/json' }, body: errorEnvelope(500, 'INTERNAL', 'internal error') });
  };
  return async (event) => {
    try {
      try {
        // Built on first use, not at import: a configuration error then becomes a logged 500 per request instead
        // of a crashing init, and it heals once the configuration is fixed (a failed build is not kept).
        service ??= ingestServiceFromEnv(process.env);
      } catch (e) {
        logger.error('ingest is misconfigured', { error: describe(e) });
        return internalError();
      }
      let response: IngestResponse;
      try {
        response = await service.handle(requestFromEvent(event));
      } catch (e) {
        // The service answers every failure itself; reaching here is a bug, and still no stack goes to the device.
        logger.error('ingest crashed', { error: describe(e) });
        return internalError();
      }
      logOutcome(logger, event, response);
      countOutcome(metrics, response);
      return resultFromResponse(response);
    } finally {
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    }
  };
}

/**
 * One count per answer, by class: `IngestAccepted` (2xx), `IngestRefused` (4xx: the device's request, or its
 * credentials), `IngestFailed` (5xx: ours), and `ConfigsDelivered` when the answer carries a newer config.
 */
function countOutcome(metrics: Metrics, response: IngestResponse): void {
  if (response.statusCode >= 500) metrics.addMetric('IngestFailed', MetricUnit.Count, 1);
  else if (response.statusCode >= 400) metrics.addMetric('IngestRefused', MetricUnit.Count, 1);
  else metrics.addMetric('IngestAccepted', MetricUnit.Count, 1);
  if (response.log.configVersion !== undefined) metrics.addMetric('ConfigsDelivered', MetricUnit.Count, 1);
}

export const handler: IngestHandler = createIngestHandler();

function logOutcome(logger: Logger, event: APIGatewayProxyEventV2, response: IngestResponse): void {
  const fields = {
    requestId: event.requestContext.requestId,
    statusCode: response.statusCode,
    route: response.log.route,
    deviceId: response.log.deviceId,
    queued: response.log.queued,
    ...(response.log.error !== undefined ? { error: describe(response.log.error) } : {}),
    ...(response.log.configVersion !== undefined ? { configVersion: response.log.configVersion } : {}),
  };
  if (response.log.configError !== undefined) {
    logger.warn('config not put into the answer', { requestId: fields.requestId, deviceId: fields.deviceId, error: describe(response.log.configError) });
  }
  // A non-RelayError is a defect whatever the status it was answered with.
  const defect = response.log.error !== undefined && !isRelayError(response.log.error);
  if (response.statusCode >= 500 || defect) logger.error('ingest failed', fields);
  else if (response.statusCode >= 400) logger.warn('ingest refused', fields);
  else logger.info('ingest queued', fields);
}

/** Name, code and message only: causes can carry SDK request details, and stacks say nothing to an operator here. */
function describe(e: unknown): Record<string, unknown> {
  if (isRelayError(e)) {
    const cause = e.cause as { name?: unknown; message?: unknown } | undefined;
    return { code: e.code, message: e.message, ...(cause ? { cause: `${String(cause.name)}: ${String(cause.message)}` } : {}) };
  }
  return e instanceof Error ? { name: e.name, message: e.message, stack: e.stack } : { value: String(e) };
}
