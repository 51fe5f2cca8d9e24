/**
 * IoT Core's rule for device (and registry) IDs: a letter, then 2 to 254 of `[-a-zA-Z0-9._+~%]`, and never a
 * `goog` prefix (docs/protocol.md §4). Every ID is checked here before it goes into a topic or client ID, so
 * no input can add a topic level or a wildcard.
 *
 * @example
 * assertDeviceId('pump-0042'); // ok
 * assertDeviceId('a/b');       // throws RelayError ERR_INVALID_DEVICE_ID
 */
import { RelayError } from '../errors.js';

const DEVICE_ID = /^[a-zA-Z][-a-zA-Z0-9._+~%]{2,254}$/;

/** Why an ID is refused, or undefined when it is valid. */
export function deviceIdProblem(id: unknown): string | undefined {
  if (typeof id !== 'string') return 'must be a string';
  if (id.length < 3 || id.length > 255) return `must be 3 to 255 characters long (got ${id.length})`;
  if (!DEVICE_ID.test(id)) return 'must start with a letter and contain only letters, digits and - . _ + ~ %';
  if (id.startsWith('goog')) return 'must not start with "goog"';
  return undefined;
}

export function isDeviceId(id: unknown): id is string {
  return deviceIdProblem(id) === undefined;
}

export function assertDeviceId(id: unknown, field = 'deviceId'): asserts id is string {
  const problem = deviceIdProblem(id);
  if (problem !== undefined) {
    throw new RelayError('ERR_INVALID_DEVICE_ID', `${field} ${problem}`, { field });
  }
}
