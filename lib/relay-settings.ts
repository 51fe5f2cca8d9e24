/**
 * The relay's settings, read from the handler's environment once per container (docs/design.md, runtime
 * configuration; the relay's own knobs are listed in docs/relay.md). Every wrong value is named in one ERR_CONFIG
 * that lists them all, so a misconfigured stack fails on its first invocation with a message an operator can act
 * on, and is fixed in one round.
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
import { LATE_ERROR_GRACE_MS } from './gateway/session-options.js';
import { jwtLifetimeFromEnv } from './jwt.js';
import { SettingsCheck } from './settings-check.js';

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
  /**
   * How long each session keeps listening for late errors after its final barrier before it confirms
   * (RELAY_LATE_ERROR_GRACE_MS; lib/gateway/late-errors.ts). 0 confirms at the barrier.
   */
  lateErrorGraceMs: number;
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
  /**
   * PUBLISH packets (attaches, records, detaches) a session sends in any one second at most; 0, the default, for
   * no pace. For a bridge that enforces a rate per connection (Cloud IoT Core documented 100 a second).
   */
  publishRate: number;
  /**
   * The MQTT version of the sessions (RELAY_MQTT_VERSION): 4 is 3.1.1, the version the bridge documents fully; 5 is
   * 5.0, which ClearBlade's troubleshooting guide lists, and whose PUBACK reason codes refuse a publish at once.
   */
  mqttVersion: 4 | 5;
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

/**
 * Where `IOTCORE_MQTT_HOST` is explained when it is missing. ClearBlade lists each region's bridge host on its
 * "Targeting devices" page; the legacy `{location}-mqtt.clearblade.com` hosts chain to the DigiCert G1 root, which
 * is being retired, so the relay assumes no host of its own (docs/deploy.md, "The bridge host and its CA").
 */
const MQTT_HOST_HINT = "the bridge's host name for the registry's region, a G5 host from ClearBlade's Targeting devices page (docs/deploy.md)";

/**
 * Reads and checks every setting; throws one RelayError ERR_CONFIG listing every missing or wrong variable
 * (lib/settings-check.ts), each named.
 */
export function loadRelaySettings(env: Env): RelaySettings {
  const check = new SettingsCheck();
  const project = check.read(() => {
    const value = required(env, 'IOTCORE_PROJECT');
    if (!PROJECT_ID.test(value)) throw fail('IOTCORE_PROJECT', 'must be a project ID: a lowercase letter, then lowercase letters, digits, - . :');
    return value;
  });
  const location = check.read(() => {
    const value = required(env, 'IOTCORE_LOCATION');
    if (!LOCATION.test(value)) throw fail('IOTCORE_LOCATION', 'must be a region such as us-central1');
    return value;
  });
  const registry = check.read(() => {
    const value = required(env, 'IOTCORE_REGISTRY');
    const problem = deviceIdProblem(value);
    if (problem !== undefined) throw fail('IOTCORE_REGISTRY', problem);
    return value;
  });
  const gatewayIds = check.read(() => {
    const ids = parseGatewayIds(env.IOTCORE_GATEWAY_IDS);
    if (new Set(ids).size !== ids.length) throw fail('IOTCORE_GATEWAY_IDS', 'lists a gateway twice');
    return ids;
  });

  const mqttHost = check.read(() => {
    const value = text(env, 'IOTCORE_MQTT_HOST');
    if (value === undefined) throw fail('IOTCORE_MQTT_HOST', `must be set: ${MQTT_HOST_HINT}`);
    if (!HOST.test(value)) throw fail('IOTCORE_MQTT_HOST', `must be a host name (got ${JSON.stringify(value)})`);
    return value;
  });
  const mqttPort = check.read(() => integer(env, 'IOTCORE_MQTT_PORT', 8883, 1, 65535));
  const caFile = text(env, 'IOTCORE_CA_FILE');
  const extraCaPem = check.read(() => (caFile === undefined ? undefined : readCaFile(caFile)));

  if (text(env, 'GATEWAY_KEY_SECRET') === undefined && text(env, 'GATEWAY_KEY_FILE') === undefined) {
    check.add(fail('GATEWAY_KEY_SECRET', 'or GATEWAY_KEY_FILE must be set (where the gateway private keys are)'));
  }

  const backoffBaseSeconds = check.read(() => integer(env, 'RELAY_BACKOFF_BASE_SECONDS', 30, 1, MAX_VISIBILITY_SECONDS));
  const backoffMaxSeconds = check.read(() => integer(env, 'RELAY_BACKOFF_MAX_SECONDS', 900, 1, MAX_VISIBILITY_SECONDS));
  if (backoffBaseSeconds !== undefined && backoffMaxSeconds !== undefined && backoffMaxSeconds < backoffBaseSeconds) {
    check.add(fail('RELAY_BACKOFF_MAX_SECONDS', 'must not be below RELAY_BACKOFF_BASE_SECONDS'));
  }

  const timeouts = {
    connectTimeoutMs: check.read(() => integer(env, 'RELAY_CONNECT_TIMEOUT_MS', 5000, 100, 60_000)),
    attachTimeoutMs: check.read(() => integer(env, 'RELAY_ATTACH_TIMEOUT_MS', 5000, 100, 60_000)),
    pubackTimeoutMs: check.read(() => integer(env, 'RELAY_PUBACK_TIMEOUT_MS', 5000, 100, 60_000)),
    configTimeoutMs: check.read(() => integer(env, 'RELAY_CONFIG_TIMEOUT_MS', 5000, 100, 60_000)),
    closeTimeoutMs: check.read(() => integer(env, 'RELAY_CLOSE_TIMEOUT_MS', 2000, 100, 60_000)),
  };
  // The bridge accepts about 100 messages/s per connection (docs/protocol.md §4); a window far above that
  // only queues inside the bridge, and packet IDs are 16 bits.
  const publishWindow = check.read(() => integer(env, 'RELAY_PUBLISH_WINDOW', 32, 1, 1000));
  const subscribeBeforeConnack = check.read(() => flag(env, 'RELAY_SUBSCRIBE_BEFORE_CONNACK', true));
  // Every session with records to confirm waits this long: bounded well below the close budget.
  const lateErrorGraceMs = check.read(() => integer(env, 'RELAY_LATE_ERROR_GRACE_MS', LATE_ERROR_GRACE_MS, 0, 10_000));
  // IOTCORE_JWT_LIFETIME_MINUTES, shared with everything else that signs a gateway JWT.
  const jwtLifetimeSeconds = check.read(() => jwtLifetimeFromEnv(env));
  const deadlineMarginMs = check.read(() => integer(env, 'RELAY_DEADLINE_MARGIN_MS', 3000, 200, 60_000));
  const deadLetterQueueUrl = check.read(() => url(env, 'RELAY_DEAD_LETTER_QUEUE_URL'));
  const sourceQueueUrl = check.read(() => url(env, 'RELAY_QUEUE_URL'));
  const retrySeconds = check.read(() => integer(env, 'RELAY_RETRY_SECONDS', 5, 0, MAX_VISIBILITY_SECONDS));
  const publishRate = check.read(() => integer(env, 'RELAY_PUBLISH_RATE', 0, 0, 10_000));
  const mqttVersion = check.read(() => {
    const raw = text(env, 'RELAY_MQTT_VERSION') ?? '4';
    if (raw !== '4' && raw !== '5') throw fail('RELAY_MQTT_VERSION', `must be 4 (MQTT 3.1.1) or 5 (MQTT 5.0) (got ${JSON.stringify(raw)})`);
    return raw === '5' ? 5 : 4;
  });

  check.throwIfAny();
  // Past throwIfAny every read succeeded: each value below is defined (the optional ones may be undefined by design).
  return {
    registry: { project: project!, location: location!, registry: registry! },
    gatewayIds: gatewayIds!,
    mqttHost: mqttHost!,
    mqttPort: mqttPort!,
    extraCaPem,
    caFile,
    connectTimeoutMs: timeouts.connectTimeoutMs!,
    attachTimeoutMs: timeouts.attachTimeoutMs!,
    pubackTimeoutMs: timeouts.pubackTimeoutMs!,
    configTimeoutMs: timeouts.configTimeoutMs!,
    closeTimeoutMs: timeouts.closeTimeoutMs!,
    publishWindow: publishWindow!,
    subscribeBeforeConnack: subscribeBeforeConnack!,
    lateErrorGraceMs: lateErrorGraceMs!,
    jwtLifetimeSeconds: jwtLifetimeSeconds!,
    deadlineMarginMs: deadlineMarginMs!,
    deadLetterQueueUrl,
    sourceQueueUrl,
    backoffBaseSeconds: backoffBaseSeconds!,
    backoffMaxSeconds: backoffMaxSeconds!,
    retrySeconds: retrySeconds!,
    publishRate: publishRate!,
    mqttVersion: mqttVersion!,
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
