/**
 * The bridge's behaviour options. Most pick one side of a point ClearBlade has not confirmed
 * (docs/protocol.md §8), so that a client can be tested against every variant; the defaults follow Google's
 * observed behaviour or the documentation where one exists. docs/emulator.md explains each one.
 *
 * @example
 * resolveBridgeOptions({ authFailureCode: 5, duplicateClientId: 'refuse' });
 */
import { JWT_CLOCK_SKEW_SECONDS } from '../lib/iotcore/limits.js';
import type { ErrorShape } from './errors-topic.js';

export interface BridgeOptions {
  /** CONNACK code for bad credentials, a blocked device or MQTT disabled: ClearBlade documents 4, Google sent 5. */
  authFailureCode: 4 | 5;
  /** A second CONNECT with a live client ID: `takeover` closes the older connection (Google), `refuse` answers CONNACK 2. */
  duplicateClientId: 'takeover' | 'refuse';
  /** CONNECT with cleanSession=0: `accept` it and keep no session anyway, or `refuse` it with CONNACK 2. */
  uncleanSession: 'accept' | 'refuse';
  /** Whether a failed attach is also PUBACKed (only ever when the gateway is subscribed to its errors topic). */
  ackFailedAttach: boolean;
  errorShape: ErrorShape;
  /** Allowed clock skew on JWT `iat`/`exp`, and the grace after `exp` before a connection is closed. */
  clockSkewSeconds: number;
  /** Enforce one state update per second per device. */
  stateRateLimit: boolean;
  /** Resend interval of an unacknowledged QoS 1 config. */
  configResendMs: number;
  /** Accept subscriptions to a specific commands subfolder (the docs say only `/commands/#` works). */
  commandSubfolderSubscriptions: boolean;
  /** The bridge drops a connection that sent nothing for this long, whatever its keep-alive ([CB-MQTT]: 20 min). */
  idleTimeoutSeconds: number;
  /**
   * Packets a client sends behind its CONNECT, before the CONNACK: `process` them once the CONNECT is accepted, as
   * MQTT 3.1.1 §3.1.4 has it; `drop` them unread; or `close` the connection as for a protocol violation.
   */
  packetsBeforeConnack: 'process' | 'drop' | 'close';
  /**
   * Client PUBLISH packets a second per connection; 0 (default) for no limit. Google's Cloud IoT Core documented
   * 100; ClearBlade's quota page lists no such limit. What happens over it is `rateOverrun` (emulator/publish-rate.ts).
   */
  connectionMessageRate: number;
  /**
   * Payload bytes a second per device, 0 (default) for no limit. Both ClearBlade and Google list 512 KB/s of
   * device-to-cloud throughput per device (524,288) but neither says how it is enforced, hence off by default.
   */
  deviceByteRate: number;
  /** Over a rate: `slow` the connection down (PUBACKs at the rate), `drop` the packet unacknowledged, or `close`. */
  rateOverrun: 'slow' | 'drop' | 'close';
  /**
   * Holds each errors-topic message back this many ms (0: sent at once, behind nothing). The PUBACKs of the same
   * and later packets go out meanwhile, as when a bridge acknowledges a publish at its Pub/Sub hand-off and reports
   * a failure after it. Off by default: ClearBlade documents errors as best effort ([CB-GW]) but not their timing.
   */
  lateErrorsMs: number;
  /** A random extra delay, up to this many ms, added to `lateErrorsMs` for each message (0: the delay is exact). */
  lateErrorsJitterMs: number;
  /**
   * Whether held errors may also follow the PUBACK of a later detach. Off, a detach's PUBACK still comes after every
   * error raised before it (the order a single in-order connection gives); on, nothing orders them. Off by default.
   */
  lateErrorsPastDetach: boolean;
  /** Where connection events go (connects, refusals with their reason, closes). Never given a token or key. */
  log: (line: string) => void;
  /**
   * A QoS 1 events/state PUBLISH the bridge refuses for its device (not attached: GATEWAY_DEVICE_NOT_FOUND; over the
   * state rate: GATEWAY_DETACHMENT_DEVICE_ERROR) is PUBACKed first, the error following it, as a bridge that
   * acknowledges on hand-off would. Off: no PUBACK, only the error (ClearBlade documents neither).
   */
  ackFailedPublish: boolean;
  /** Resend interval of an unacknowledged QoS 1 command, 0 = sent once. On: ClearBlade documents "Retried for QoS 1". */
  commandResendMs: number;
  /**
   * Both REST forms answer a config update within a second of the device's last one 429 RESOURCE_EXHAUSTED
   * ("Configuration updates per device: 1 per sec" on both quota pages). On by default, since both document the
   * limit; the answer to an update over it is not documented, and 429 is the canonical code for a quota.
   */
  configRateLimit: boolean;
  /** The bridge closes a connection this long after it opened, whatever its JWT; 24 h as documented. */
  connectionLifetimeSeconds: number;
  /** CONNECT with an empty or absent username: `refuse` it (credential failure) or `accept` it (the bridge ignores it). */
  emptyUsername: 'refuse' | 'accept';
  /** CONNECT with a Will: `refuse` (CONNACK 2), `accept` and never publish it, or `publish` it when the connection drops. */
  willMessage: 'refuse' | 'accept' | 'publish';
  /** JWT `exp - iat`: at most 24 h (`strict`, the quota pages), or 24 h plus the clock skew (`with-skew`). */
  jwtLifetime: 'strict' | 'with-skew';
  /**
   * Accept MQTT 5.0 CONNECTs, with the same topics and rules as 3.1.1, and answer refused publishes with a PUBACK
   * reason code (emulator/mqtt5.ts). Off by default: ClearBlade's troubleshooting guide lists 3.1.1 or 5.0, but
   * documents no 5.0 behaviour, so a 5.0 CONNECT gets CONNACK 1 in 3.1.1 form unless this is set.
   */
  mqtt5: boolean;
}

export const DEFAULT_BRIDGE_OPTIONS: Readonly<BridgeOptions> = {
  authFailureCode: 4,
  duplicateClientId: 'takeover',
  uncleanSession: 'accept',
  ackFailedAttach: false,
  errorShape: 'nested',
  clockSkewSeconds: JWT_CLOCK_SKEW_SECONDS,
  stateRateLimit: true,
  configResendMs: 5_000,
  commandSubfolderSubscriptions: false,
  idleTimeoutSeconds: 20 * 60,
  packetsBeforeConnack: 'process',
  connectionMessageRate: 0,
  deviceByteRate: 0,
  rateOverrun: 'slow',
  lateErrorsMs: 0,
  lateErrorsJitterMs: 0,
  lateErrorsPastDetach: false,
  log: () => {},
  ackFailedPublish: false,
  commandResendMs: 5_000,
  configRateLimit: true,
  connectionLifetimeSeconds: 24 * 60 * 60,
  emptyUsername: 'refuse',
  willMessage: 'refuse',
  jwtLifetime: 'strict',
  mqtt5: false,
};

function oneOf<T>(name: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) throw new TypeError(`${name} must be one of ${allowed.join(', ')} (got ${String(value)})`);
  return value as T;
}

function positive(name: string, value: unknown, allowZero = false): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new TypeError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number (got ${String(value)})`);
  }
  return value;
}

/** A limit: a whole number, 0 for none. */
function wholeNumber(name: string, value: unknown): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw new TypeError(`${name} must be a whole number, 0 for no limit (got ${String(value)})`);
  return value as number;
}

/** Fills defaults in and checks every value; throws TypeError on a bad one. */
export function resolveBridgeOptions(input: Partial<BridgeOptions> = {}): BridgeOptions {
  const o = { ...DEFAULT_BRIDGE_OPTIONS, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) };
  return {
    authFailureCode: oneOf('authFailureCode', o.authFailureCode, [4, 5] as const),
    duplicateClientId: oneOf('duplicateClientId', o.duplicateClientId, ['takeover', 'refuse'] as const),
    uncleanSession: oneOf('uncleanSession', o.uncleanSession, ['accept', 'refuse'] as const),
    ackFailedAttach: oneOf('ackFailedAttach', o.ackFailedAttach, [true, false] as const),
    errorShape: oneOf('errorShape', o.errorShape, ['nested', 'flat'] as const),
    clockSkewSeconds: positive('clockSkewSeconds', o.clockSkewSeconds, true),
    stateRateLimit: oneOf('stateRateLimit', o.stateRateLimit, [true, false] as const),
    configResendMs: positive('configResendMs', o.configResendMs),
    commandSubfolderSubscriptions: oneOf('commandSubfolderSubscriptions', o.commandSubfolderSubscriptions, [true, false] as const),
    idleTimeoutSeconds: positive('idleTimeoutSeconds', o.idleTimeoutSeconds),
    packetsBeforeConnack: oneOf('packetsBeforeConnack', o.packetsBeforeConnack, ['process', 'drop', 'close'] as const),
    connectionMessageRate: wholeNumber('connectionMessageRate', o.connectionMessageRate),
    deviceByteRate: wholeNumber('deviceByteRate', o.deviceByteRate),
    rateOverrun: oneOf('rateOverrun', o.rateOverrun, ['slow', 'drop', 'close'] as const),
    lateErrorsMs: positive('lateErrorsMs', o.lateErrorsMs, true),
    lateErrorsJitterMs: positive('lateErrorsJitterMs', o.lateErrorsJitterMs, true),
    lateErrorsPastDetach: oneOf('lateErrorsPastDetach', o.lateErrorsPastDetach, [true, false] as const),
    log: typeof o.log === 'function' ? o.log : DEFAULT_BRIDGE_OPTIONS.log,
    ackFailedPublish: oneOf('ackFailedPublish', o.ackFailedPublish, [true, false] as const),
    commandResendMs: positive('commandResendMs', o.commandResendMs, true),
    configRateLimit: oneOf('configRateLimit', o.configRateLimit, [true, false] as const),
    connectionLifetimeSeconds: positive('connectionLifetimeSeconds', o.connectionLifetimeSeconds),
    emptyUsername: oneOf('emptyUsername', o.emptyUsername, ['refuse', 'accept'] as const),
    willMessage: oneOf('willMessage', o.willMessage, ['refuse', 'accept', 'publish'] as const),
    jwtLifetime: oneOf('jwtLifetime', o.jwtLifetime, ['strict', 'with-skew'] as const),
    mqtt5: oneOf('mqtt5', o.mqtt5, [true, false] as const),
  };
}
