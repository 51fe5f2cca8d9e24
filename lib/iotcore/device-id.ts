/**
 * IoT Core's rule for device (and registry) IDs: a letter, then 2 to 254 of `[-a-zA-Z0-9._+~%]`, and never a
 * `goog` prefix (docs/protocol.md §4). Every ID is checked here before it goes into a topic or client ID, so
 * no input can add a topic level or a wildcard.
 *
 * The rule lets a `+` through, and `+` is an MQTT wildcard: MQTT 3.1.1 §4.7.1 forbids it in the topic name of a
 * PUBLISH, and a conforming bridge closes the connection on one, failing every other record of the session. An ID
 * that goes into a topic is therefore checked with `assertTopicDeviceId`, which refuses it with a code of its own.
 *
 * @example
 * assertDeviceId('pump-0042');      // ok
 * assertDeviceId('a/b');            // throws RelayError ERR_INVALID_DEVICE_ID
 * assertTopicDeviceId('pump+x');    // throws RelayError ERR_DEVICE_ID_MQTT_WILDCARD (IoT Core allows the ID)
 */
import { describeInput, RelayError } from '../errors.js';

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

/** Why an ID that IoT Core allows cannot go into an MQTT topic name, or undefined when it can. */
export function topicDeviceIdProblem(id: string): string | undefined {
  if (!id.includes('+')) return undefined;
  return "is a valid IoT Core device ID, but its '+' is an MQTT wildcard, which a topic name may not contain (MQTT 3.1.1 §4.7.1): it cannot be relayed over MQTT";
}

/** `assertDeviceId`, and then that the ID can go into an MQTT topic name. */
export function assertTopicDeviceId(id: unknown, field = 'deviceId'): asserts id is string {
  assertDeviceId(id, field);
  const problem = topicDeviceIdProblem(id);
  if (problem !== undefined) {
    throw new RelayError('ERR_DEVICE_ID_MQTT_WILDCARD', `${field} ${describeInput(id)} ${problem}`, { field });
  }
}
