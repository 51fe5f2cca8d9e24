/**
 * Statuses the bridge writes to a device's `lastErrorStatus` when it refuses what the device did or ends its
 * connection (docs/protocol.md §6.3: `{code, message}`, code being a google.rpc.Code).
 *
 * @example
 * registry.setLastError(registryId, deviceId, { code: RPC.FAILED_PRECONDITION, message: 'no Pub/Sub topic' });
 */
export const RPC = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  ALREADY_EXISTS: 6,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  INTERNAL: 13,
  UNAUTHENTICATED: 16,
} as const;
