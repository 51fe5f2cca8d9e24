/**
 * Config delivery to devices (API Gateway HTTP API, payload format 2.0). Thin by design: the event becomes a
 * request (lib/http/api-gateway.ts), `ConfigDeliveryService` (lib/config-delivery) answers it, the answer becomes
 * the result. The routes and their answers are the service's.
 *
 * Devices authenticate as for ingestion (lib/auth: a device JWT or a device key) and read only their own config.
 * One log line per request, with the device and the outcome, never a header (they carry device JWTs and keys).
 * Each answer that carries a config counts one `ConfigsDelivered` (CloudWatch EMF).
 *
 * Environment: CONFIG_TABLE (lib/config-store), the device authentication variables (lib/auth), and
 * IOTCORE_PROJECT / IOTCORE_LOCATION / IOTCORE_REGISTRY, which the long form's path must name.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { configDeliveryServiceFromEnv, type ConfigBackend, type ConfigDeliveryService } from '../lib/config-delivery/config-delivery-service.js';
import type { ConfigReader } from '../lib/config-store/config-store.js';
import { isRelayError } from '../lib/errors.js';
import { requestFromEvent, resultFromResponse, type HttpApiEvent, type HttpApiResult } from '../lib/http/api-gateway.js';

export type ConfigEvent = HttpApiEvent;
export type ConfigResult = HttpApiResult;
export type ConfigHandler = (event: ConfigEvent) => Promise<ConfigResult>;

export interface ConfigHandlerOptions {
  env?: NodeJS.ProcessEnv;
  /** Defaults to the process's shared store (CONFIG_TABLE). */
  store?: ConfigReader;
  /** Defaults to one built from the environment on first use. */
  authenticator?: ConfigBackend['authenticator'];
  logger?: Logger;
  /** CloudWatch EMF metrics: `ConfigsDelivered` per answer that carries a config. */
  metrics?: Metrics;
}

export function createConfigHandler(options: ConfigHandlerOptions = {}): ConfigHandler {
  const env = options.env ?? process.env;
  const logger = options.logger ?? new Logger({ serviceName: env.POWERTOOLS_SERVICE_NAME ?? 'iotcore-relay' });
  const metrics = options.metrics ?? new Metrics({ namespace: env.POWERTOOLS_METRICS_NAMESPACE ?? 'IotCoreRelay', serviceName: env.POWERTOOLS_SERVICE_NAME ?? 'iotcore-relay' });
  let service: ConfigDeliveryService | undefined;

  return async (event) => {
    // Built on the first request, with the environment as it is then; the store and the keys are read later still.
    service ??= configDeliveryServiceFromEnv(env, options);
    const response = await service.handle(requestFromEvent(event));
    if (response.ok) {
      logger.info('config request', { deviceId: response.deviceId, form: response.form, status: response.statusCode, version: response.version });
      if (response.statusCode === 200) {
        metrics.addMetric('ConfigsDelivered', MetricUnit.Count, 1);
        metrics.publishStoredMetrics();
      }
    } else if (response.statusCode >= 500) {
      // Messages never hold a credential: lib/auth names devices and reasons only.
      logger.error('config request failed', { deviceId: response.deviceId, error: response.error as Error });
    } else {
      const code = isRelayError(response.error) ? response.error.code : undefined;
      logger.warn('config request refused', { deviceId: response.deviceId, httpCode: response.statusCode, code, reason: response.body.error.message });
    }
    return resultFromResponse(response);
  };
}

export const handler: ConfigHandler = createConfigHandler();
