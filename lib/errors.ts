/**
 * One error type for the whole relay. Callers switch on `code`, never on message text.
 * The mapping from a code to what happens to a queue record lives in `outcomes.ts`.
 *
 * @example
 * try { parseDeviceId(raw) } catch (e) { if (isRelayError(e) && e.code === 'ERR_INVALID_DEVICE_ID') ... }
 */
export type RelayErrorCode =
  // input: a record or request that can never succeed as it is
  | 'ERR_INVALID_MESSAGE'
  | 'ERR_INVALID_FIELD'
  | 'ERR_INVALID_DEVICE_ID'
  | 'ERR_DEVICE_ID_MQTT_WILDCARD'
  | 'ERR_INVALID_SUBFOLDER'
  | 'ERR_INVALID_BASE64'
  | 'ERR_PAYLOAD_TOO_LARGE'
  | 'ERR_UNSUPPORTED_VERSION'
  | 'ERR_UNKNOWN_TYPE'
  // keys and configuration
  | 'ERR_CONFIG'
  | 'ERR_KEY_UNAVAILABLE'
  | 'ERR_KEY_INVALID'
  // connection to the bridge
  | 'ERR_CONNECT_TIMEOUT'
  | 'ERR_CONNECT_REFUSED'
  | 'ERR_CONNECT_REFUSED_AUTH'
  | 'ERR_TLS'
  | 'ERR_CONNECTION_LOST'
  | 'ERR_TAKEOVER'
  // gateway protocol
  | 'ERR_ATTACH_REJECTED'
  | 'ERR_ATTACH_TIMEOUT'
  | 'ERR_DEVICE_NOT_FOUND'
  | 'ERR_INVALID_TOPIC'
  | 'ERR_GATEWAY_ERROR'
  | 'ERR_PUBACK_TIMEOUT'
  | 'ERR_DEADLINE'
  | 'ERR_DEVICE_DETACHED'
  | 'ERR_UNEXPECTED_PACKET_ID'
  | 'ERR_UNEXPECTED_MESSAGE_TYPE'
  | 'ERR_SUBSCRIBE_REJECTED'
  | 'ERR_SUBACK_TIMEOUT'
  | 'ERR_DEVICE_CONFIG_TIMEOUT'
  | 'ERR_ATTACH_LIMIT'
  // a defect of the relay itself (an exception that is not a RelayError)
  | 'ERR_INTERNAL'
  // storage
  | 'ERR_STORE_CONFLICT'
  | 'ERR_STORE_UNAVAILABLE'
  // device authentication at the HTTP ingest
  | 'ERR_AUTH_MISSING'
  | 'ERR_AUTH_INVALID'
  | 'ERR_AUTH_EXPIRED'
  | 'ERR_AUTH_CLAIM'
  | 'ERR_AUTH_FORBIDDEN'
  // handing records to the relay queue
  | 'ERR_QUEUE_THROTTLED'
  | 'ERR_QUEUE_UNAVAILABLE';

export class RelayError extends Error {
  override readonly name = 'RelayError';
  readonly code: RelayErrorCode;
  /** Which field of the input was wrong, when the error is about input. */
  readonly field: string | undefined;

  constructor(code: RelayErrorCode, message: string, options: { field?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options.field;
  }
}

export function isRelayError(e: unknown): e is RelayError {
  return e instanceof RelayError;
}

/**
 * A short, safe rendering of a value taken from input, for an error message: strings and numbers quoted and cut to
 * 40 characters, anything else named by its kind. Input may be hostile (a 100,000-level nested array would make
 * JSON.stringify throw a RangeError), and an error message is no place to echo kilobytes back.
 *
 * @example
 * `v must be 1 (got ${describeInput(o.v)})` // 'v must be 1 (got "2")', '(got an array)', '(got nothing)'
 */
export function describeInput(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(typeof value === 'string' && value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return text ?? typeof value;
}
