/**
 * The relay's settings, read from the handler's environment once per container (DESIGN.md, runtime
 * configuration; the relay's own knobs are listed in docs/relay.md). Every wrong value is an ERR_CONFIG that
 * names the variable, so a misconfigured stack fails on its first invocation with a message an operator can act on.
 *
 * @example
 * const settings = relaySettings();            // cached: process.env is read once
 * const same = loadRelaySettings(process.env); // uncached, for tests
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { RelayError } from './errors.js';
import { parseGatewayIds } from './gateway-pool.js';
import { deviceIdProblem } from './iotcore/device-id.js';
import type { RegistryPath } from './iotcore/topics.js';
import { jwtLifetimeFromEnv } from './jwt.js';

export type Env = Readonly<Record<string, string | undefined>>;

export interface RelaySettings {
  registry: RegistryPath;
  /** The pool; each device goes through `gatewayFor(deviceId, gatewayIds)` (lib/gateway-pool.ts). */
  gatewayIds: string[];
  mqttHost: string;
  mqttPort: number;
  /** Extra trusted roots (PEM text) from IOTCORE_CA_FILE, added to the system roots; undefined when unset. */
  extraCaPem: string | undefined;
  caFile: string | undefined;
  /** Milliseconds. */
  connectTimeoutMs: number;
  attachTimeoutMs: number;
  pubackTimeoutMs: number;
  /** How long to wait for a device's config after subscribing to it (config-poll records). */
  configTimeoutMs: number;
  /** Upper bound on the detach barrier plus DISCONNECT. */
  closeTimeoutMs: number;
  /** QoS 1 publishes allowed unacknowledged at once. */
  publishWindow: number;
  /**
   * Send the errors-topic SUBSCRIBE behind the CONNECT, before the CONNACK (one round trip less per batch). Off
   * only for a bridge that closes connections which do so (RELAY_SUBSCRIBE_BEFORE_CONNACK=false).
   */
  subscribeBeforeConnack: boolean;
  jwtLifetimeSeconds: number;
  /** Kept free before Lambda's own deadline for the SQS calls and the response. */
  deadlineMarginMs: number;
  deadLetterQueueUrl: string | undefined;
  /** The queue the handler consumes, for ChangeMessageVisibility; derived from the event's ARN when unset. */
  sourceQueueUrl: string | undefined;
  backoffBaseSeconds: number;
  backoffMaxSeconds: number;
  /**
   * When a `retry` record comes back. On a FIFO queue a failed-back record holds up its whole message group (its
   * gateway) while it is invisible, and the queue's visibility timeout is six times the function's: a dropped
   * connection would otherwise stall a gateway for minutes.
   */
  retrySeconds: number;
}

/** SQS refuses a visibility timeout above 12 hours. */
export const MAX_VISIBILITY_SECONDS = 12 * 60 * 60;

const fail = (name: string, why: string): RelayError => new RelayError('ERR_CONFIG', `${name} ${why}`, { field: name });

function text(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === '' ? undefined : v;
}

function required(env: Env, name: string): string {
  const v = text(env, name);
  if (v === undefined) throw fail(name, 'must be set');
  return v;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d{1,10}$/.test(raw)) throw fail(name, `must be a whole number (got ${JSON.stringify(raw)})`);
  const n = Number(raw);
  if (n < min || n > max) throw fail(name, `must be between ${min} and ${max} (got ${n})`);
  return n;
}

function flag(env: Env, name: string, fallback: boolean): boolean {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw fail(name, `must be true or false (got ${JSON.stringify(raw)})`);
}

function url(env: Env, name: string): string | undefined {
  const raw = text(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw fail(name, `must be a queue URL (got ${JSON.stringify(raw)})`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw fail(name, 'must be an http(s) queue URL');
  return raw;
}

/**
 * Project IDs are lowercase letters, digits and hyphens, plus `domain.com:` for legacy domain-scoped projects; the
 * ID becomes part of the client ID path and the JWT audience, so '/' and whitespace are refused.
 */
const PROJECT_ID = /^[a-z][-a-z0-9.:]{2,62}$/;
const LOCATION = /^[a-z][-a-z0-9]{1,62}$/;
const HOST = /^[A-Za-z0-9]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$/;

function readCaFile(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (e) {
    throw new RelayError('ERR_CONFIG', `IOTCORE_CA_FILE ${path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
      field: 'IOTCORE_CA_FILE',
      cause: e,
    });
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw fail('IOTCORE_CA_FILE', `${path} holds no PEM certificate`);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (e) {
      throw new RelayError('ERR_CONFIG', `IOTCORE_CA_FILE ${path} holds a certificate that does not parse`, { field: 'IOTCORE_CA_FILE', cause: e });
    }
  }
  return blocks.join('\n');
}

/** Reads and checks every setting; throws RelayError ERR_CONFIG naming the first wrong variable. */
export function loadRelaySettings(env: Env): RelaySettings {
  const project = required(env, 'IOTCORE_PROJECT');
  if (!PROJECT_ID.test(project)) throw fail('IOTCORE_PROJECT', 'must be a project ID: a lowercase letter, then lowercase letters, digits, - . :');
  const location = required(env, 'IOTCORE_LOCATION');
  if (!LOCATION.test(location)) throw fail('IOTCORE_LOCATION', 'must be a region such as us-central1');
  const registry = required(env, 'IOTCORE_REGISTRY');
  const registryProblem = deviceIdProblem(registry);
  if (registryProblem !== undefined) throw fail('IOTCORE_REGISTRY', registryProblem);
  let gatewayIds: string[];
  try {
    gatewayIds = parseGatewayIds(env.IOTCORE_GATEWAY_IDS);
  } catch (e) {
    throw new RelayError('ERR_CONFIG', (e as Error).message, { field: 'IOTCORE_GATEWAY_IDS', cause: e });
  }
  if (new Set(gatewayIds).size !== gatewayIds.length) throw fail('IOTCORE_GATEWAY_IDS', 'lists a gateway twice');

  const mqttHost = text(env, 'IOTCORE_MQTT_HOST') ?? `${location}-mqtt.clearblade.com`;
  if (!HOST.test(mqttHost)) throw fail('IOTCORE_MQTT_HOST', `must be a host name (got ${JSON.stringify(mqttHost)})`);
  const caFile = text(env, 'IOTCORE_CA_FILE');

  if (text(env, 'GATEWAY_KEY_SECRET') === undefined && text(env, 'GATEWAY_KEY_FILE') === undefined) {
    throw fail('GATEWAY_KEY_SECRET', 'or GATEWAY_KEY_FILE must be set (where the gateway private keys are)');
  }

  const backoffBaseSeconds = integer(env, 'RELAY_BACKOFF_BASE_SECONDS', 30, 1, MAX_VISIBILITY_SECONDS);
  const backoffMaxSeconds = integer(env, 'RELAY_BACKOFF_MAX_SECONDS', 900, 1, MAX_VISIBILITY_SECONDS);
  if (backoffMaxSeconds < backoffBaseSeconds) throw fail('RELAY_BACKOFF_MAX_SECONDS', 'must not be below RELAY_BACKOFF_BASE_SECONDS');

  return {
    registry: { project, location, registry },
    gatewayIds,
    mqttHost,
    mqttPort: integer(env, 'IOTCORE_MQTT_PORT', 8883, 1, 65535),
    extraCaPem: caFile === undefined ? undefined : readCaFile(caFile),
    caFile,
    connectTimeoutMs: integer(env, 'RELAY_CONNECT_TIMEOUT_MS', 5000, 100, 60_000),
    attachTimeoutMs: integer(env, 'RELAY_ATTACH_TIMEOUT_MS', 5000, 100, 60_000),
    pubackTimeoutMs: integer(env, 'RELAY_PUBACK_TIMEOUT_MS', 5000, 100, 60_000),
    configTimeoutMs: integer(env, 'RELAY_CONFIG_TIMEOUT_MS', 5000, 100, 60_000),
    closeTimeoutMs: integer(env, 'RELAY_CLOSE_TIMEOUT_MS', 2000, 100, 60_000),
    // The bridge accepts about 100 messages/s per connection (iotcore-protocol.md §4); a window far above that
    // only queues inside the bridge, and packet IDs are 16 bits.
    publishWindow: integer(env, 'RELAY_PUBLISH_WINDOW', 32, 1, 1000),
    subscribeBeforeConnack: flag(env, 'RELAY_SUBSCRIBE_BEFORE_CONNACK', true),
    // IOTCORE_JWT_LIFETIME_MINUTES, shared with everything else that signs a gateway JWT.
    jwtLifetimeSeconds: jwtLifetimeFromEnv(env),
    deadlineMarginMs: integer(env, 'RELAY_DEADLINE_MARGIN_MS', 3000, 200, 60_000),
    deadLetterQueueUrl: url(env, 'RELAY_DEAD_LETTER_QUEUE_URL'),
    sourceQueueUrl: url(env, 'RELAY_QUEUE_URL'),
    backoffBaseSeconds,
    backoffMaxSeconds,
    retrySeconds: integer(env, 'RELAY_RETRY_SECONDS', 5, 0, MAX_VISIBILITY_SECONDS),
  };
}

let cached: { settings: RelaySettings } | { error: unknown } | undefined;

/**
 * The settings of this container, read from `process.env` on first use. A failure is remembered too: the
 * environment of a Lambda container never changes, so every invocation reports the same ERR_CONFIG.
 */
export function relaySettings(): RelaySettings {
  if (cached === undefined) {
    try {
      cached = { settings: loadRelaySettings(process.env) };
    } catch (error) {
      cached = { error };
    }
  }
  if ('error' in cached) throw cached.error;
  return cached.settings;
}
