/**
 * Config delivery to devices: one GET from a device in, its latest config (or why not) out. Two forms of one
 * answer (the routes: ./routes.ts):
 *
 * - the IoT Core HTTP bridge form, `…/devices/{d}/config?local_version=N`, answers
 *   `{"version": "<n>", "binaryData": "<base64>"}` (N's meaning: lib/config-store/config-delivery.ts);
 * - the raw form, `/devices/{d}/config`, answers the bytes with `ETag: "<sha256>"` and `X-Config-Version: <n>`, and
 *   304 when `If-None-Match` names the current ETag, for devices that count every byte.
 *
 * Order of work, so that a malformed request costs no signature check and no store read:
 * route (404) -> device ID (400) -> registry of the long form (404) -> local_version (400) -> settings (500 when
 * wrong) -> authentication as the path's device (401/403) -> the store -> the answer (200/304, 404, 400).
 * Errors use IoT Core's envelope (lib/http/error-envelope.ts); a route's own refusals are NOT_FOUND and OUT_OF_RANGE.
 *
 * Knows nothing of Lambda: the handler turns an API Gateway event into the request and the answer back
 * (lib/http/api-gateway.ts).
 *
 * @example
 * const delivery = new ConfigDeliveryService({ registry, backend: () => ({ authenticator, store }) });
 * const answer = await delivery.handle({ method: 'GET', path: '/devices/pump-0042/config', headers, query: {} });
 */
import type { DeviceAuthenticator } from '../auth/device-authenticator.js';
import { deviceAuthenticatorFromEnv } from '../auth/index.js';
import { decideByLocalVersion, etagOf, ifNoneMatchMatches, parseLocalVersion } from '../config-store/config-delivery.js';
import type { ConfigReader, StoredConfig } from '../config-store/config-store.js';
import { configStoreFromEnv, sharedConfigStore } from '../config-store/store-from-env.js';
import type { HttpRequest, HttpResponse } from '../http/api-gateway.js';
import { errorEnvelopeFor, HttpRefusal, wwwAuthenticate, type ErrorEnvelope } from '../http/error-envelope.js';
import type { RegistryPath } from '../iotcore/topics.js';
import { SettingsCheck } from '../settings-check.js';
import { matchConfigRoute, type ConfigRoute } from './routes.js';

export type ConfigRequest = Pick<HttpRequest, 'method' | 'path' | 'headers' | 'query'>;

/** What answers a well-formed request: who the device is, and its configs. */
export interface ConfigBackend {
  authenticator: Pick<DeviceAuthenticator, 'authenticate' | 'schemes'>;
  store: ConfigReader;
}

export interface ConfigDeliveryOptions {
  /** The registry the long form must name; a part left undefined or blank matches any. */
  registry: Partial<RegistryPath>;
  /**
   * Asked once per well-formed request, after the checks that need no settings, so a wrong deployment (it throws
   * ERR_CONFIG) answers 500 without changing how a malformed request is refused.
   */
  backend: () => ConfigBackend;
}

/** The IoT Core form's answer: int64 values travel as strings in IoT Core's JSON, bytes as base64 (docs/protocol.md §6.3). */
export interface IotCoreConfigAnswer {
  version: string;
  binaryData: string;
}

/** A config answered (200, or 304 on the raw form). */
export interface ConfigDelivered extends HttpResponse {
  ok: true;
  body: IotCoreConfigAnswer | Buffer | undefined;
  deviceId: string;
  form: ConfigRoute['form'];
  /** The stored config's version. */
  version: number;
}

/** The request refused, or failed: `error` says why (a RelayError, an HttpRefusal, or a defect). */
export interface ConfigRefused extends HttpResponse {
  ok: false;
  body: ErrorEnvelope;
  /** Once the path named a valid device. */
  deviceId: string | undefined;
  error: unknown;
}

export type ConfigDeliveryResponse = ConfigDelivered | ConfigRefused;

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' } as const;

export class ConfigDeliveryService {
  constructor(private readonly options: ConfigDeliveryOptions) {}

  async handle(request: ConfigRequest): Promise<ConfigDeliveryResponse> {
    let deviceId: string | undefined;
    let backend: ConfigBackend | undefined;
    try {
      const route = matchConfigRoute(request.method, request.path);
      deviceId = route.deviceId;
      if (route.form === 'iotcore') this.checkRegistry(route.registry);
      const localVersion = route.form === 'iotcore' ? parseLocalVersion(request.query['local_version']) : 0;
      backend = this.options.backend();
      // Always the path's device: a token of another device is refused here (ERR_AUTH_FORBIDDEN).
      await backend.authenticator.authenticate(request.headers['authorization'], route.deviceId);
      const config = await backend.store.getConfig(route.deviceId);
      if (config === undefined) throw new HttpRefusal('NOT_FOUND', `no configuration of device ${route.deviceId} has been received yet`);
      return route.form === 'iotcore' ? iotCoreAnswer(route.deviceId, config, localVersion) : rawAnswer(route.deviceId, config, request.headers['if-none-match']);
    } catch (error) {
      const { httpCode, envelope } = errorEnvelopeFor(error);
      const headers: Record<string, string> = { ...JSON_HEADERS };
      const challenge = httpCode === 401 ? wwwAuthenticate(backend?.authenticator.schemes) : undefined;
      if (challenge !== undefined) headers['www-authenticate'] = challenge;
      return { ok: false, statusCode: httpCode, headers, body: envelope, deviceId, error };
    }
  }

  /** The long form names a registry; a request for another one is for a resource this deployment does not hold. */
  private checkRegistry(asked: RegistryPath): void {
    const served = this.options.registry;
    const parts = ['project', 'location', 'registry'] as const;
    if (parts.some((part) => (served[part]?.trim() ?? '') !== '' && asked[part] !== served[part]!.trim())) {
      throw new HttpRefusal('NOT_FOUND', `registry projects/${asked.project}/locations/${asked.location}/registries/${asked.registry} is not served here`);
    }
  }
}

function iotCoreAnswer(deviceId: string, config: StoredConfig, localVersion: number): ConfigDelivered {
  const answer = decideByLocalVersion(config, localVersion);
  if (answer.kind === 'out-of-range') {
    throw new HttpRefusal('OUT_OF_RANGE', `local_version ${localVersion} is newer than the latest configuration version ${answer.latest}`);
  }
  const body = { version: String(config.version), binaryData: config.bytes.toString('base64') };
  return { ok: true, statusCode: 200, headers: { ...JSON_HEADERS }, body, deviceId, form: 'iotcore', version: config.version };
}

function rawAnswer(deviceId: string, config: StoredConfig, ifNoneMatch: string | undefined): ConfigDelivered {
  const headers = {
    etag: etagOf(config),
    'x-config-version': String(config.version),
    // Caches may keep it but must ask again each time: the config changes whenever a poll finds a new one.
    'cache-control': 'private, no-cache',
  };
  const delivered = { ok: true, deviceId, form: 'raw', version: config.version } as const;
  if (ifNoneMatchMatches(ifNoneMatch, config.sha256)) return { ...delivered, statusCode: 304, headers, body: undefined };
  return { ...delivered, statusCode: 200, headers: { ...headers, 'content-type': 'application/octet-stream' }, body: config.bytes };
}

export interface ConfigDeliveryFromEnvOptions {
  /** Defaults to the store of `CONFIG_TABLE`: the process's shared one when `env` is `process.env`. */
  store?: ConfigReader;
  /** Defaults to one from the device authentication variables (lib/auth). */
  authenticator?: ConfigBackend['authenticator'];
}

/**
 * The service of a deployment: the registry from `IOTCORE_PROJECT` / `IOTCORE_LOCATION` / `IOTCORE_REGISTRY`, the
 * store and the authenticator built at the first well-formed request. Both are settled at once, so a wrong
 * deployment is reported whole (one ERR_CONFIG naming every variable); what was built is kept, what failed is tried
 * again at the next request.
 */
export function configDeliveryServiceFromEnv(env: NodeJS.ProcessEnv = process.env, options: ConfigDeliveryFromEnvOptions = {}): ConfigDeliveryService {
  let { authenticator, store } = options;
  const backend = (): ConfigBackend => {
    if (authenticator === undefined || store === undefined) {
      const check = new SettingsCheck();
      authenticator ??= check.read(() => deviceAuthenticatorFromEnv(env));
      store ??= check.read(() => (env === process.env ? sharedConfigStore() : configStoreFromEnv(env)));
      check.throwIfAny();
    }
    return { authenticator: authenticator!, store: store! };
  };
  return new ConfigDeliveryService({
    registry: { project: env.IOTCORE_PROJECT, location: env.IOTCORE_LOCATION, registry: env.IOTCORE_REGISTRY },
    backend,
  });
}
