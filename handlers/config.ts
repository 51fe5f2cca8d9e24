/**
 * Config delivery to devices (API Gateway HTTP API, payload format 2.0). Two forms of one answer:
 *
 * - `GET /v1/projects/{p}/locations/{l}/registries/{r}/devices/{d}/config?local_version=N`, shaped like IoT Core's
 *   HTTP bridge: `{"version": "<n>", "binaryData": "<base64>"}` (N semantics: lib/config-store/config-delivery.ts).
 * - `GET /devices/{d}/config`: the raw bytes, `ETag: "<sha256>"`, `X-Config-Version: <n>`, and 304 when
 *   `If-None-Match` names the current ETag, for devices that count every byte.
 *
 * Devices authenticate as for ingestion (lib/auth: a device JWT or a device key) and read only their own config.
 * Each answer that carries a config counts one `ConfigsDelivered` (CloudWatch EMF).
 * Errors use IoT Core's envelope `{"error": {"code", "message", "status"}}`.
 *
 * Environment: CONFIG_TABLE (lib/config-store), the device authentication variables (lib/auth), and
 * IOTCORE_PROJECT / IOTCORE_LOCATION / IOTCORE_REGISTRY, which the long form's path must name.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { deviceAuthenticatorFromEnv, type DeviceAuthenticator } from '../lib/auth/index.js';
import {
  configStoreFromEnv,
  decideByLocalVersion,
  etagOf,
  ifNoneMatchMatches,
  parseLocalVersion,
  sharedConfigStore,
  type ConfigReader,
  type StoredConfig,
} from '../lib/config-store/index.js';
import { isRelayError } from '../lib/errors.js';
import { assertDeviceId } from '../lib/iotcore/device-id.js';
import { errorEnvelopeFor } from '../lib/ingest/error-envelope.js';
import { SettingsCheck } from '../lib/settings-check.js';

export type ConfigEvent = Pick<APIGatewayProxyEventV2, 'rawPath' | 'headers'> &
  Partial<Pick<APIGatewayProxyEventV2, 'queryStringParameters' | 'requestContext'>>;
export type ConfigResult = APIGatewayProxyStructuredResultV2;
export type ConfigHandler = (event: ConfigEvent) => Promise<ConfigResult>;

export interface ConfigHandlerOptions {
  env?: NodeJS.ProcessEnv;
  /** Defaults to the process's shared store (CONFIG_TABLE). */
  store?: ConfigReader;
  /** Defaults to one built from the environment on first use. */
  authenticator?: Pick<DeviceAuthenticator, 'authenticate' | 'schemes'>;
  logger?: Logger;
  /** CloudWatch EMF metrics: `ConfigsDelivered` per answer that carries a config. */
  metrics?: Metrics;
}

/**
 * The answers this route gives of its own; every RelayError (authentication, a bad device ID or local_version,
 * keys that cannot be read) is answered exactly as the ingest answers it (lib/ingest/error-envelope.ts).
 */
type RouteStatus = 'NOT_FOUND' | 'OUT_OF_RANGE';
const HTTP_OF: Record<RouteStatus, number> = { NOT_FOUND: 404, OUT_OF_RANGE: 400 };

const LONG_FORM = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/registries\/([^/]+)\/devices\/([^/]+)\/config$/;
const SHORT_FORM = /^\/devices\/([^/]+)\/config$/;

type Route = { form: 'iotcore'; project: string; location: string; registry: string; deviceId: string } | { form: 'raw'; deviceId: string };

export function createConfigHandler(options: ConfigHandlerOptions = {}): ConfigHandler {
  const env = options.env ?? process.env;
  const logger = options.logger ?? new Logger({ serviceName: env.POWERTOOLS_SERVICE_NAME ?? 'iotcore-relay' });
  const metrics = options.metrics ?? new Metrics({ namespace: env.POWERTOOLS_METRICS_NAMESPACE ?? 'IotCoreRelay', serviceName: env.POWERTOOLS_SERVICE_NAME ?? 'iotcore-relay' });
  let authenticator = options.authenticator;
  let store = options.store;

  return async (event) => {
    const method = event.requestContext?.http?.method ?? 'GET';
    let deviceId: string | undefined;
    try {
      if (method !== 'GET') throw new HttpError('NOT_FOUND', `${method} is not served here`);
      const route = routeOf(pathOf(event));
      deviceId = route.deviceId;
      if (route.form === 'iotcore') checkRegistry(route, env);
      // Parsed before authenticating so a malformed request costs no signature check, and before the store read.
      const localVersion = route.form === 'iotcore' ? parseLocalVersion(event.queryStringParameters?.local_version) : 0;

      if (authenticator === undefined || store === undefined) {
        // Both settled at once, so a misconfiguration is reported whole: one ERR_CONFIG naming every variable.
        const check = new SettingsCheck();
        authenticator ??= check.read(() => deviceAuthenticatorFromEnv(env));
        store ??= check.read(() => (options.env === undefined ? sharedConfigStore() : configStoreFromEnv(env)));
        check.throwIfAny();
      }
      // Always the path's device: a token of another device is refused here (ERR_AUTH_FORBIDDEN).
      await authenticator!.authenticate(header(event, 'authorization'), route.deviceId);

      const config = await store!.getConfig(route.deviceId);
      const result = route.form === 'iotcore' ? iotCoreAnswer(route.deviceId, config, localVersion) : rawAnswer(route.deviceId, config, header(event, 'if-none-match'));
      logger.info('config request', { deviceId, form: route.form, status: result.statusCode, version: config?.version });
      if (result.statusCode === 200) {
        metrics.addMetric('ConfigsDelivered', MetricUnit.Count, 1);
        metrics.publishStoredMetrics();
      }
      return result;
    } catch (e) {
      const { httpCode, body } = errorAnswer(e);
      // Messages never hold a credential: lib/auth names devices and reasons only.
      if (httpCode >= 500) logger.error('config request failed', { deviceId, error: e as Error });
      else logger.warn('config request refused', { deviceId, httpCode, code: isRelayError(e) ? e.code : undefined, reason: body.error.message });
      return errorResponse(httpCode, body, httpCode === 401 ? authenticator?.schemes : undefined);
    }
  };
}

function iotCoreAnswer(deviceId: string, config: StoredConfig | undefined, localVersion: number): ConfigResult {
  const answer = decideByLocalVersion(config, localVersion);
  switch (answer.kind) {
    case 'not-found':
      throw new HttpError('NOT_FOUND', `no configuration of device ${deviceId} has been received yet`);
    case 'out-of-range':
      throw new HttpError('OUT_OF_RANGE', `local_version ${localVersion} is newer than the latest configuration version ${answer.latest}`);
    case 'config':
      return {
        statusCode: 200,
        headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
        // int64 values travel as strings in IoT Core's JSON, bytes as base64 (docs/protocol.md §6.3).
        body: JSON.stringify({ version: String(answer.config.version), binaryData: answer.config.bytes.toString('base64') }),
      };
  }
}

function rawAnswer(deviceId: string, config: StoredConfig | undefined, ifNoneMatch: string | undefined): ConfigResult {
  if (config === undefined) throw new HttpError('NOT_FOUND', `no configuration of device ${deviceId} has been received yet`);
  const headers = {
    etag: etagOf(config),
    'x-config-version': String(config.version),
    // Caches may keep it but must ask again each time: the config changes whenever a poll finds a new one.
    'cache-control': 'private, no-cache',
  };
  if (ifNoneMatchMatches(ifNoneMatch, config.sha256)) return { statusCode: 304, headers, body: '' };
  return {
    statusCode: 200,
    headers: { ...headers, 'content-type': 'application/octet-stream' },
    body: config.bytes.toString('base64'),
    isBase64Encoded: true,
  };
}

/**
 * API Gateway HTTP APIs deliver the path already percent-decoded (a device ID with `%` arrives as itself), so the
 * segments are taken as they are; decoding again would turn `dev%41` into `devA`.
 */
function routeOf(rawPath: string): Route {
  const long = LONG_FORM.exec(rawPath);
  if (long) {
    const [, project, location, registry, deviceId] = long as unknown as [string, string, string, string, string];
    return { form: 'iotcore', project, location, registry, deviceId: validDevice(deviceId) };
  }
  const short = SHORT_FORM.exec(rawPath);
  if (short) return { form: 'raw', deviceId: validDevice(short[1]!) };
  throw new HttpError('NOT_FOUND', 'no such resource');
}

function validDevice(id: string): string {
  assertDeviceId(id);
  return id;
}

/** The long form names a registry; a request for another one is for a resource this deployment does not hold. */
function checkRegistry(route: Extract<Route, { form: 'iotcore' }>, env: NodeJS.ProcessEnv): void {
  const expected: [string, string | undefined][] = [
    [route.project, env.IOTCORE_PROJECT],
    [route.location, env.IOTCORE_LOCATION],
    [route.registry, env.IOTCORE_REGISTRY],
  ];
  if (expected.some(([got, want]) => want !== undefined && want.trim() !== '' && got !== want.trim())) {
    throw new HttpError('NOT_FOUND', `registry projects/${route.project}/locations/${route.location}/registries/${route.registry} is not served here`);
  }
}

/** The path without a named stage (not `$default`), which stays in rawPath as the first segment. */
function pathOf(event: ConfigEvent): string {
  const stage = event.requestContext?.stage;
  const path = event.rawPath;
  return stage && stage !== '$default' && path.startsWith(`/${stage}/`) ? path.slice(stage.length + 1) : path;
}

/** API Gateway v2 lower-cases header names; other front ends may not. */
function header(event: ConfigEvent, name: string): string | undefined {
  for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === name) return v;
  return undefined;
}

class HttpError extends Error {
  constructor(
    readonly status: RouteStatus,
    message: string,
  ) {
    super(message);
  }
}

interface ErrorBody {
  error: { code: number; message: string; status: string };
}

function errorAnswer(e: unknown): { httpCode: number; body: ErrorBody } {
  if (e instanceof HttpError) {
    const code = HTTP_OF[e.status];
    return { httpCode: code, body: { error: { code, message: e.message, status: e.status } } };
  }
  const { httpCode, envelope } = errorEnvelopeFor(e);
  return { httpCode, body: envelope };
}

function errorResponse(httpCode: number, body: ErrorBody, schemes: readonly string[] | undefined): ConfigResult {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-store' };
  // RFC 9110 §11.6.1: a 401 names the schemes that could succeed.
  if (schemes !== undefined && schemes.length > 0) headers['www-authenticate'] = schemes.map((s) => `${s} realm="iotcore-relay"`).join(', ');
  return { statusCode: httpCode, headers, body: JSON.stringify(body) };
}

export const handler: ConfigHandler = createConfigHandler();
