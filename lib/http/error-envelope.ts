/**
 * IoT Core's error envelope, `{"error": {"code", "message", "status"}}` (docs/protocol.md §6.1), and the one place
 * that decides how the HTTP routes (ingest, config delivery) answer an error. A 400 about a field also carries
 * Google's `BadRequest` detail naming the field, as Google APIs do.
 *
 * Two kinds of error reach an answer:
 * - a RelayError: its code decides the HTTP status and the rpc status (`HTTP_ANSWERS`, which names every code, so a
 *   new code does not compile until its answer is decided here);
 * - an `HttpRefusal`: a route's own refusal (no such resource, a version out of range), which is about the request
 *   and speaks its message.
 *
 * Only errors about the request speak their message to the device. Anything else, a server-side fault, is
 * answered with a fixed message: the cause goes to the log, never into a response.
 *
 * @example
 * errorEnvelopeFor(new RelayError('ERR_INVALID_SUBFOLDER', 'subfolder must not contain ...', { field: 'subfolder' }));
 * // { httpCode: 400, envelope: { error: { code: 400, status: 'INVALID_ARGUMENT', message: '...', details: [...] } } }
 * errorEnvelopeFor(new HttpRefusal('NOT_FOUND', 'no such resource'));
 * // { httpCode: 404, envelope: { error: { code: 404, status: 'NOT_FOUND', message: 'no such resource' } } }
 */
import { isRelayError, type RelayErrorCode } from '../errors.js';
import { HTTP_STATUS_OF, type ApiStatus } from '../iotcore/rpc-status.js';

export interface ApiErrorBody {
  code: number;
  message: string;
  status: ApiStatus;
  details?: { '@type': string; fieldViolations: { field: string; description: string }[] }[];
}

export interface ErrorEnvelope {
  error: ApiErrorBody;
}

/**
 * The codes an HTTP answer can be about: every RelayError code, since a fault of any layer under a route (the
 * config store, the keys, a defect) ends in an answer too.
 */
export type HttpErrorCode = RelayErrorCode;

export interface HttpAnswer {
  httpCode: number;
  status: ApiStatus;
  /** Whether the error's own message may be shown to the device. */
  speaks: boolean;
}

/** One answer per code, none left out: a `Partial` here would let a new code fall through to a 500 unseen. */
export type HttpAnswerTable = Readonly<Record<HttpErrorCode, HttpAnswer>>;

/** A route's refusal of the request, by rpc status; the HTTP status is the status's own unless given. */
export class HttpRefusal extends Error {
  override readonly name = 'HttpRefusal';
  readonly httpCode: number;

  constructor(
    readonly status: ApiStatus,
    message: string,
    httpCode?: number,
  ) {
    super(message);
    this.httpCode = httpCode ?? HTTP_STATUS_OF[status];
  }
}

const BAD_REQUEST: HttpAnswer = { httpCode: 400, status: 'INVALID_ARGUMENT', speaks: true };
const UNAUTHENTICATED: HttpAnswer = { httpCode: 401, status: 'UNAUTHENTICATED', speaks: true };
const INTERNAL: HttpAnswer = { httpCode: 500, status: 'INTERNAL', speaks: false };
const UNAVAILABLE: HttpAnswer = { httpCode: 503, status: 'UNAVAILABLE', speaks: false };

export const HTTP_ANSWERS: HttpAnswerTable = {
  ERR_INVALID_MESSAGE: BAD_REQUEST,
  ERR_INVALID_FIELD: BAD_REQUEST,
  ERR_INVALID_DEVICE_ID: BAD_REQUEST,
  ERR_DEVICE_ID_MQTT_WILDCARD: BAD_REQUEST,
  ERR_INVALID_SUBFOLDER: BAD_REQUEST,
  ERR_INVALID_BASE64: BAD_REQUEST,
  ERR_UNKNOWN_TYPE: BAD_REQUEST,
  // Google has no status of its own for 413; the field it is about is named as for any invalid argument.
  ERR_PAYLOAD_TOO_LARGE: { httpCode: 413, status: 'INVALID_ARGUMENT', speaks: true },
  // A queue record's version: no HTTP request carries one, so meeting it here is our fault.
  ERR_UNSUPPORTED_VERSION: INTERNAL,
  ERR_AUTH_MISSING: UNAUTHENTICATED,
  ERR_AUTH_INVALID: UNAUTHENTICATED,
  ERR_AUTH_EXPIRED: UNAUTHENTICATED,
  ERR_AUTH_CLAIM: UNAUTHENTICATED,
  ERR_AUTH_FORBIDDEN: { httpCode: 403, status: 'PERMISSION_DENIED', speaks: true },
  ERR_QUEUE_THROTTLED: { httpCode: 429, status: 'RESOURCE_EXHAUSTED', speaks: false },
  ERR_QUEUE_UNAVAILABLE: UNAVAILABLE,
  // Secrets Manager could not be read: the device's credentials may be fine, try again later.
  ERR_KEY_UNAVAILABLE: UNAVAILABLE,
  // The deployment's settings or keys are wrong: nothing the device can change.
  ERR_CONFIG: INTERNAL,
  ERR_KEY_INVALID: INTERNAL,
  // The config table failed a read or a write.
  ERR_STORE_CONFLICT: INTERNAL,
  ERR_STORE_UNAVAILABLE: INTERNAL,
  ERR_INTERNAL: INTERNAL,
  // The bridge's side: no HTTP route talks to it, so one of these here is a defect.
  ERR_CONNECT_TIMEOUT: INTERNAL,
  ERR_CONNECT_REFUSED: INTERNAL,
  ERR_CONNECT_REFUSED_AUTH: INTERNAL,
  ERR_TLS: INTERNAL,
  ERR_CONNECTION_LOST: INTERNAL,
  ERR_TAKEOVER: INTERNAL,
  ERR_ATTACH_REJECTED: INTERNAL,
  ERR_ATTACH_TIMEOUT: INTERNAL,
  ERR_DEVICE_NOT_FOUND: INTERNAL,
  ERR_INVALID_TOPIC: INTERNAL,
  ERR_GATEWAY_ERROR: INTERNAL,
  ERR_PUBACK_TIMEOUT: INTERNAL,
  ERR_DEADLINE: INTERNAL,
  ERR_DEVICE_DETACHED: INTERNAL,
  ERR_UNEXPECTED_PACKET_ID: INTERNAL,
  ERR_UNEXPECTED_MESSAGE_TYPE: INTERNAL,
  ERR_SUBSCRIBE_REJECTED: INTERNAL,
  ERR_SUBACK_TIMEOUT: INTERNAL,
  ERR_DEVICE_CONFIG_TIMEOUT: INTERNAL,
  ERR_ATTACH_LIMIT: INTERNAL,
};

/** What a device is told when the message may not be shown. */
const FIXED_MESSAGES: Partial<Record<number, string>> = {
  429: 'too many requests; retry after a pause',
  500: 'internal error',
  503: 'the service is unavailable; retry later',
};

export function errorEnvelopeFor(e: unknown): { httpCode: number; envelope: ErrorEnvelope } {
  if (e instanceof HttpRefusal) return { httpCode: e.httpCode, envelope: errorEnvelope(e.httpCode, e.status, e.message) };
  const answer = isRelayError(e) ? HTTP_ANSWERS[e.code] : INTERNAL;
  const message = answer.speaks && isRelayError(e) ? e.message : (FIXED_MESSAGES[answer.httpCode] ?? 'internal error');
  const field = answer.speaks && isRelayError(e) ? e.field : undefined;
  return { httpCode: answer.httpCode, envelope: errorEnvelope(answer.httpCode, answer.status, message, field) };
}

export function errorEnvelope(httpCode: number, status: ApiStatus, message: string, field?: string): ErrorEnvelope {
  const error: ApiErrorBody = { code: httpCode, message, status };
  if (field !== undefined) {
    error.details = [{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field, description: message }] }];
  }
  return { error };
}

/** RFC 9110 §11.6.1: a 401 names the schemes that could succeed. Undefined when there are none to name. */
export function wwwAuthenticate(schemes: readonly string[] | undefined): string | undefined {
  if (schemes === undefined || schemes.length === 0) return undefined;
  return schemes.map((s) => `${s} realm="iotcore-relay"`).join(', ');
}
