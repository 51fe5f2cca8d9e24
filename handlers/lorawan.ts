/**
 * Lambda handler of the LoRaWAN webhooks (API Gateway HTTP API, payload format 2.0): `POST /lorawan/{integration}`
 * from The Things Stack and ChirpStack. Thin by design: the event becomes a `LorawanRequest`, lib/lorawan does the
 * work, the `LorawanResponse` becomes the result, a log line and metrics.
 *
 * A function of its own rather than routes of the ingest function: it holds other secrets (webhook secrets and
 * network-server API keys, which the device ingest must not be able to read), writes to the config table (which
 * marks delivered downlinks; the ingest only reads it) and calls out to network servers. Its own role grants just
 * that, and the device ingest's bundle and cold start stay as they were.
 *
 * One log line per request: integration, event, device, outcome and, for uplinks of integrations with downlinks,
 * the downlink's outcome with its reason; a WARN line when a config is not sent because it is too large or the
 * network server did not take it. Never a header or a body: they carry the webhook secret, API keys and payloads.
 *
 * Metrics (EMF, namespace POWERTOOLS_METRICS_NAMESPACE): LoRaWANUplinksQueued, LoRaWANEventsRelayed,
 * LoRaWANEventsAcknowledged (dimension `event`), LoRaWANRequestsRefused, LoRaWANDownlinksSent,
 * LoRaWANDownlinksFailed, LoRaWANDownlinksTooLarge (once per config version).
 *
 * @example
 * // serverless.yml: handler: handlers/lorawan.handler
 * // tests: const handle = createLorawanHandler({ env, logger, metrics });
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { isRelayError } from '../lib/errors.js';
import { requestFromEvent, resultFromResponse } from '../lib/http/api-gateway.js';
import { errorEnvelope } from '../lib/http/error-envelope.js';
import { lorawanServiceFromEnv, type LorawanResponse, type LorawanService } from '../lib/lorawan/index.js';

export type LorawanHandler = (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;

export interface LorawanHandlerOptions {
  /** Defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Defaults to `lorawanServiceFromEnv(env)`, built on the first request. */
  service?: LorawanService;
  logger?: Logger;
  metrics?: Metrics;
}

export function createLorawanHandler(options: LorawanHandlerOptions = {}): LorawanHandler {
  const env = options.env ?? process.env;
  const serviceName = env.POWERTOOLS_SERVICE_NAME ?? 'iotcore-relay';
  const logger = options.logger ?? new Logger({ serviceName });
  const metrics = options.metrics ?? new Metrics({ namespace: env.POWERTOOLS_METRICS_NAMESPACE ?? 'IotCoreRelay', serviceName });
  let service = options.service;
  return async (event) => {
    try {
      try {
        // Built on first use, not at import: a configuration error is a logged 500 per request, and heals with the
        // next deployment (a failed build is not kept).
        service ??= lorawanServiceFromEnv(env);
      } catch (e) {
        logger.error('lorawan is misconfigured', { error: describe(e) });
        return resultFromResponse({ statusCode: 500, headers: { 'content-type': 'application/json' }, body: errorEnvelope(500, 'INTERNAL', 'internal error') });
      }
      const response = await service.handle(requestFromEvent(event));
      record(logger, metrics, event.requestContext.requestId, response);
      return resultFromResponse(response);
    } finally {
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    }
  };
}

export const handler: LorawanHandler = createLorawanHandler();

function record(logger: Logger, metrics: Metrics, requestId: string, response: LorawanResponse): void {
  const { log } = response;
  const fields: Record<string, unknown> = {
    requestId,
    statusCode: response.statusCode,
    integration: log.integration,
    networkServer: log.networkServer,
    event: log.event,
    deviceId: log.deviceId,
    queued: log.queued,
    ...(log.error !== undefined ? { error: describe(log.error) } : {}),
    ...(log.downlink !== undefined ? { downlink: log.downlink } : {}),
  };
  const defect = log.error !== undefined && !isRelayError(log.error);
  if (response.statusCode >= 500 || defect) logger.error('lorawan request failed', fields);
  else if (response.statusCode >= 400) logger.warn('lorawan request refused', fields);
  else if (log.queued === 0) logger.info('lorawan event acknowledged', fields);
  else logger.info('lorawan message queued', fields);

  if (response.statusCode >= 400) metrics.addMetric('LoRaWANRequestsRefused', MetricUnit.Count, 1);
  if (log.queued > 0 && log.event === 'up') metrics.addMetric('LoRaWANUplinksQueued', MetricUnit.Count, 1);
  else if (log.queued > 0) metrics.addMetric('LoRaWANEventsRelayed', MetricUnit.Count, 1);
  if (response.statusCode === 200 && log.event !== undefined) {
    const single = metrics.singleMetric();
    single.addDimension('event', log.event);
    single.addMetric('LoRaWANEventsAcknowledged', MetricUnit.Count, 1);
  }

  const downlink = log.downlink;
  if (downlink === undefined) return;
  const about = { requestId, integration: log.integration, deviceId: log.deviceId };
  switch (downlink.status) {
    case 'sent':
      metrics.addMetric('LoRaWANDownlinksSent', MetricUnit.Count, 1);
      break;
    case 'too-large':
      if (downlink.firstTime) {
        metrics.addMetric('LoRaWANDownlinksTooLarge', MetricUnit.Count, 1);
        logger.warn('config not sent as a downlink: too large', {
          ...about,
          version: downlink.version,
          reason: `config is ${downlink.bytes} bytes; the integration sends at most ${downlink.maxBytes} per downlink (downlink.maxBytes)`,
        });
      }
      break;
    case 'failed':
    case 'error':
      metrics.addMetric('LoRaWANDownlinksFailed', MetricUnit.Count, 1);
      logger.warn('config downlink not accepted; the next uplink tries again', { ...about, ...downlink });
      break;
    default:
      break;
  }
}

/** Name, code and message only: causes can carry request details, and stacks say nothing to an operator here. */
function describe(e: unknown): Record<string, unknown> {
  if (isRelayError(e)) return { code: e.code, message: e.message, ...(e.field !== undefined ? { field: e.field } : {}) };
  return e instanceof Error ? { name: e.name, message: e.message, stack: e.stack } : { value: String(e) };
}
