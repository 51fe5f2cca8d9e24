/**
 * IoT Core's error envelope, `{"error": {"code", "message", "status"}}` (docs/protocol.md §6.1), and the one
 * place that decides which HTTP status each RelayError code gets at the ingest. A 400 about a field also carries
 * Google's `BadRequest` detail naming the field, as Google APIs do.
 *
 * Only RelayErrors about the request speak their message to the device. Anything else, a server-side fault, is
 * answered with a fixed message: the cause goes to the log, never into a response.
 *
 * @example
 * errorEnvelopeFor(new RelayError('ERR_INVALID_SUBFOLDER', 'subfolder must not contain ...', { field: 'subfolder' }));
 * // { httpCode: 400, envelope: { error: { code: 400, status: 'INVALID_ARGUMENT', message: '...', details: [...] } } }
 */
import { isRelayError, type RelayErrorCode } from '../errors.js';

/** Google's canonical statuses, the ones the ingest answers with. */
export type ApiStatus =
  | 'INVALID_ARGUMENT'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'NOT_FOUND'
  | 'UNIMPLEMENTED'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAVAILABLE'
  | 'INTERNAL';

export interface ApiErrorBody {
  code: number;
  message: string;
  status: ApiStatus;
  details?: { '@type': string; fieldViolations: { field: string; description: string }[] }[];
}

export interface ErrorEnvelope {
  error: ApiErrorBody;
}

interface Disposition {
  httpCode: number;
  status: ApiStatus;
  /** Whether the RelayError's own message may be shown to the device. */
  speaks: boolean;
}

const BAD_REQUEST: Disposition = { httpCode: 400, status: 'INVALID_ARGUMENT', speaks: true };
const UNAUTHENTICATED: Disposition = { httpCode: 401, status: 'UNAUTHENTICATED', speaks: true };
const INTERNAL: Disposition = { httpCode: 500, status: 'INTERNAL', speaks: false };

const DISPOSITIONS: Partial<Record<RelayErrorCode, Disposition>> = {
  ERR_INVALID_MESSAGE: BAD_REQUEST,
  ERR_INVALID_FIELD: BAD_REQUEST,
  ERR_INVALID_DEVICE_ID: BAD_REQUEST,
  ERR_INVALID_SUBFOLDER: BAD_REQUEST,
  ERR_INVALID_BASE64: BAD_REQUEST,
  ERR_UNKNOWN_TYPE: BAD_REQUEST,
  // Google has no status of its own for 413; the field it is about is named as for any invalid argument.
  ERR_PAYLOAD_TOO_LARGE: { httpCode: 413, status: 'INVALID_ARGUMENT', speaks: true },
  ERR_AUTH_MISSING: UNAUTHENTICATED,
  ERR_AUTH_INVALID: UNAUTHENTICATED,
  ERR_AUTH_EXPIRED: UNAUTHENTICATED,
  ERR_AUTH_CLAIM: UNAUTHENTICATED,
  ERR_AUTH_FORBIDDEN: { httpCode: 403, status: 'PERMISSION_DENIED', speaks: true },
  ERR_QUEUE_THROTTLED: { httpCode: 429, status: 'RESOURCE_EXHAUSTED', speaks: false },
  ERR_QUEUE_UNAVAILABLE: { httpCode: 503, status: 'UNAVAILABLE', speaks: false },
  // Secrets Manager could not be read: the device's credentials may be fine, try again later.
  ERR_KEY_UNAVAILABLE: { httpCode: 503, status: 'UNAVAILABLE', speaks: false },
};

/** What a device is told when the message may not be shown. */
const FIXED_MESSAGES: Partial<Record<number, string>> = {
  429: 'too many requests; retry after a pause',
  500: 'internal error',
  503: 'the service is unavailable; retry later',
};

export function errorEnvelopeFor(e: unknown): { httpCode: number; envelope: ErrorEnvelope } {
  const disposition = (isRelayError(e) ? DISPOSITIONS[e.code] : undefined) ?? INTERNAL;
  const message = disposition.speaks && isRelayError(e) ? e.message : (FIXED_MESSAGES[disposition.httpCode] ?? 'internal error');
  const field = disposition.speaks && isRelayError(e) ? e.field : undefined;
  return { httpCode: disposition.httpCode, envelope: errorEnvelope(disposition.httpCode, disposition.status, message, field) };
}

export function errorEnvelope(httpCode: number, status: ApiStatus, message: string, field?: string): ErrorEnvelope {
  const error: ApiErrorBody = { code: httpCode, message, status };
  if (field !== undefined) {
    error.details = [{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field, description: message }] }];
  }
  return { error };
}
