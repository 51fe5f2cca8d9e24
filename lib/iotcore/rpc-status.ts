/**
 * Google's canonical statuses (google.rpc.Code), the one definition the relay and the emulator share. IoT Core
 * speaks them in two ways: by name in the `status` of its HTTP error envelope (docs/protocol.md §6.1), and by number
 * in the `code` of a device's `lastErrorStatus` (§6.3). `OK` is left out: nothing here reports a success this way.
 *
 * Each status has the HTTP status Google's APIs answer it with; an answer may use another one where HTTP has a
 * closer fit (405, 413), keeping the status name.
 *
 * @example
 * registry.setLastError(registryId, deviceId, { code: RPC.FAILED_PRECONDITION, message: 'no Pub/Sub topic' });
 * errorEnvelope(HTTP_STATUS_OF.NOT_FOUND, 'NOT_FOUND', 'no such resource'); // 404
 */
export const RPC = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** A status by name, as an error envelope carries it. */
export type ApiStatus = keyof typeof RPC;

export const HTTP_STATUS_OF: Readonly<Record<ApiStatus, number>> = {
  CANCELLED: 499,
  UNKNOWN: 500,
  INVALID_ARGUMENT: 400,
  DEADLINE_EXCEEDED: 504,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  PERMISSION_DENIED: 403,
  RESOURCE_EXHAUSTED: 429,
  FAILED_PRECONDITION: 400,
  ABORTED: 409,
  OUT_OF_RANGE: 400,
  UNIMPLEMENTED: 501,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  DATA_LOSS: 500,
  UNAUTHENTICATED: 401,
};
