/**
 * What happens to a queue record that was not confirmed: the one table from a failure code to a disposition.
 * Every record of a batch ends in exactly one outcome, `confirmed` or one of:
 * - `retry`: failed back to SQS (batchItemFailures); it comes back after the queue's visibility timeout;
 * - `retry-backoff`: failed back, and its visibility timeout is first raised by receive count (exponential, capped,
 *   jittered), so a broken dependency is not hammered and a FIFO group waits instead of spinning;
 * - `dead-letter`: the record can never succeed as it is; it is sent to the dead-letter queue now with the reason
 *   as message attributes and reported as a success, so SQS deletes it and its neighbours are not held back.
 *
 * The table is exhaustive over RelayErrorCode: a new code does not compile until someone decides its fate here.
 *
 * @example
 * dispositionOf('ERR_INVALID_BASE64'); // 'dead-letter'
 * failed('m-1', 'ERR_PUBACK_TIMEOUT', 'no PUBACK within 5000 ms'); // { messageId: 'm-1', outcome: 'retry', ... }
 */
import type { RelayErrorCode } from '../errors.js';

export type Disposition = 'retry' | 'retry-backoff' | 'dead-letter';
export type OutcomeKind = 'confirmed' | Disposition;

export interface DispositionRule {
  disposition: Disposition;
  /** Why, in a sentence; docs/relay.md carries the same table. */
  why: string;
}

const input = (why: string): DispositionRule => ({ disposition: 'dead-letter', why });
const backoff = (why: string): DispositionRule => ({ disposition: 'retry-backoff', why });
const retry = (why: string): DispositionRule => ({ disposition: 'retry', why });

export const DISPOSITIONS: Readonly<Record<RelayErrorCode, DispositionRule>> = {
  // The record itself is wrong: no number of retries changes it.
  ERR_INVALID_MESSAGE: input('the body is not a JSON object of the queue contract'),
  ERR_INVALID_FIELD: input('a field has the wrong type or value'),
  ERR_INVALID_DEVICE_ID: input('the device ID breaks IoT Core\'s ID rule and may not go into a topic'),
  ERR_DEVICE_ID_MQTT_WILDCARD: input('IoT Core allows the device ID, but its + is an MQTT wildcard, which no topic name may contain'),
  ERR_INVALID_SUBFOLDER: input('the subfolder would add a wildcard, NUL or empty level to the topic'),
  ERR_INVALID_BASE64: input('the payload is not strict base64'),
  ERR_PAYLOAD_TOO_LARGE: input('the payload is over the bridge\'s limit (256 KB events, 64 KB state)'),
  ERR_UNSUPPORTED_VERSION: input('the contract version is not 1'),
  ERR_UNKNOWN_TYPE: input('the type is not event, state or config-poll'),
  ERR_AUTH_MISSING: input('a device credential is missing (an ingest code: the record cannot be relayed as it is)'),
  ERR_AUTH_INVALID: input('a device credential is invalid'),
  ERR_AUTH_EXPIRED: input('a device credential has expired'),
  ERR_AUTH_CLAIM: input('a device credential carries a wrong claim'),
  ERR_AUTH_FORBIDDEN: input('the device may not do this'),
  // The record is fine; the gateway's side is not, and stays broken until someone fixes it or it recovers.
  ERR_CONFIG: backoff('the relay is misconfigured; records wait for the fix'),
  ERR_KEY_UNAVAILABLE: backoff('the key store could not be read'),
  ERR_KEY_INVALID: backoff('the gateway key is unusable; records wait for a good key'),
  ERR_CONNECT_TIMEOUT: backoff('the bridge did not answer CONNECT in time'),
  ERR_CONNECT_REFUSED: backoff('the bridge refused the connection (CONNACK 1-3, or the TCP connection)'),
  ERR_CONNECT_REFUSED_AUTH: backoff('the bridge refused the gateway\'s credentials (CONNACK 4 or 5)'),
  ERR_TLS: backoff('the TLS handshake failed (untrusted or wrong certificate, protocol)'),
  ERR_TAKEOVER: backoff('another connection took the gateway\'s client ID; retrying at once would take it back'),
  ERR_SUBSCRIBE_REJECTED: backoff('the bridge refused a subscription (SUBACK 0x80)'),
  ERR_ATTACH_TIMEOUT: backoff('the attach was neither acknowledged nor refused in time'),
  ERR_GATEWAY_ERROR: backoff('the bridge reported an unknown gateway error; its guidance is to retry with backoff'),
  ERR_DEVICE_DETACHED: backoff('the bridge detached the device for a device error (typically too many messages)'),
  ERR_INTERNAL: backoff('a defect in the relay; records wait rather than spin'),
  ERR_QUEUE_THROTTLED: backoff('the queue throttled a call'),
  ERR_QUEUE_UNAVAILABLE: backoff('the queue could not be reached'),
  ERR_STORE_UNAVAILABLE: backoff('the config table could not be read or written'),
  // The device cannot be relayed through this gateway as things stand: unknown, not bound, bad or expired token.
  ERR_ATTACH_REJECTED: input('the bridge refused to attach the device (GATEWAY_ATTACHMENT_ERROR)'),
  ERR_INVALID_TOPIC: input('the bridge called the topic invalid (GATEWAY_INVALID_MQTT_TOPIC)'),
  // Transient: the next session will most likely succeed.
  ERR_CONNECTION_LOST: retry('the connection ended before the record was confirmed'),
  ERR_DEVICE_NOT_FOUND: retry('the bridge no longer had the device attached (GATEWAY_DEVICE_NOT_FOUND); the next session attaches again'),
  ERR_PUBACK_TIMEOUT: retry('no PUBACK (or no detach acknowledgement closing the session) in time'),
  ERR_DEADLINE: retry('the invocation ran out of time before the record was confirmed'),
  ERR_UNEXPECTED_PACKET_ID: retry('the bridge reported an unexpected packet ID (GATEWAY_UNEXPECTED_PACKET_ID)'),
  ERR_UNEXPECTED_MESSAGE_TYPE: retry('the bridge reported an unexpected packet type (GATEWAY_UNEXPECTED_MESSAGE_TYPE)'),
  ERR_SUBACK_TIMEOUT: retry('a subscription was not acknowledged in time'),
  ERR_DEVICE_CONFIG_TIMEOUT: retry('a device\'s config did not arrive in time after subscribing'),
  ERR_STORE_CONFLICT: retry('a conditional write lost a race'),
  ERR_ATTACH_LIMIT: retry('serving the poll job too would attach more devices than a gateway may hold at once; its next batch serves it'),
};

export function dispositionOf(code: RelayErrorCode): Disposition {
  return DISPOSITIONS[code].disposition;
}

/** A record's single outcome. `code` and `reason` are set exactly when it was not confirmed. */
export interface RecordOutcome {
  /** The SQS message ID. */
  messageId: string;
  outcome: OutcomeKind;
  code?: RelayErrorCode;
  reason?: string;
  /** The input field at fault, for dead-lettered records. */
  field?: string;
  gatewayId?: string;
  deviceId?: string;
  /**
   * For a state record coalesced into a newer one of the same device: the newer record's message ID. The record
   * shares that record's fate (see docs/relay.md, "State coalescing").
   */
  coalescedInto?: string;
  /**
   * For a `retry`: seconds until SQS shows the record again, instead of the queue's visibility timeout. 0 hands it
   * to the next batch at once; on a FIFO queue a record waiting out its visibility timeout holds up its whole
   * message group, that is, its gateway.
   */
  returnAfterSeconds?: number;
  /**
   * How a dead-letter outcome was carried out: `sent` to the dead-letter queue by the relay, or left to the
   * queue's own `redrive` policy (no dead-letter queue URL configured, or the send failed).
   */
  deadLetter?: 'sent' | 'redrive';
}

export function confirmed(messageId: string, extra: Omit<RecordOutcome, 'messageId' | 'outcome' | 'code' | 'reason'> = {}): RecordOutcome {
  return { ...extra, messageId, outcome: 'confirmed' };
}

/**
 * `confirmed()` for a telemetry record of a gateway session. The same outcome, built as one literal of a fixed shape
 * rather than by copying an `extra` object: it runs once for every record of a batch.
 */
export function confirmedTelemetry(messageId: string, gatewayId: string, deviceId: string, coalescedInto?: string): RecordOutcome {
  const outcome: RecordOutcome = { gatewayId, deviceId, messageId, outcome: 'confirmed' };
  if (coalescedInto !== undefined) outcome.coalescedInto = coalescedInto;
  return outcome;
}

export function failed(
  messageId: string,
  code: RelayErrorCode,
  reason: string,
  extra: Omit<RecordOutcome, 'messageId' | 'outcome' | 'code' | 'reason'> = {},
): RecordOutcome {
  return { ...extra, messageId, outcome: dispositionOf(code), code, reason: logSafeReason(reason) };
}

/** Reasons are bounded in size: they go into logs and into dead-letter message attributes. */
export const MAX_REASON_LENGTH = 1000;
/** A compact JWS: base64url header starting `{"` (`eyJ`), payload, and an optional signature. */
const JWT_LIKE = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*)?/g;

/**
 * A reason fit for logs and attributes. Reasons quote input now and then (a JSON parser echoes a few characters
 * around the error), and a device token must never reach a log, so anything shaped like a JWT is replaced.
 */
export function logSafeReason(reason: string): string {
  const redacted = reason.replace(JWT_LIKE, '[redacted JWT]');
  return redacted.length > MAX_REASON_LENGTH ? `${redacted.slice(0, MAX_REASON_LENGTH - 3)}...` : redacted;
}

export interface BackoffPolicy {
  baseSeconds: number;
  maxSeconds: number;
}

/**
 * Visibility timeout for a `retry-backoff` record received `receiveCount` times: base * 2^(n-1), capped, with
 * "equal jitter" (half fixed, half random) so records failed together by one outage do not return together,
 * while none comes back almost at once.
 */
export function backoffSeconds(receiveCount: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const n = Number.isInteger(receiveCount) && receiveCount >= 1 ? receiveCount : 1;
  // 2^(n-1) overflows to Infinity for large n; the cap applies either way.
  const ceiling = Math.min(policy.maxSeconds, policy.baseSeconds * 2 ** Math.min(n - 1, 40));
  const half = ceiling / 2;
  return Math.max(1, Math.min(policy.maxSeconds, Math.ceil(half + random() * half)));
}
