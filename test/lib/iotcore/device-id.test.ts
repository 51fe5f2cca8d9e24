import { describe, expect, it } from 'vitest';
import { assertDeviceId, assertTopicDeviceId, deviceIdProblem, topicDeviceIdProblem } from '../../../lib/iotcore/device-id.js';
import { RelayError } from '../../../lib/errors.js';

describe('device ID rule', () => {
  it.each(['pump-0042', 'abc', 'A.b_c+d~e%f', 'x'.repeat(255)])('accepts %s', (id) => {
    expect(deviceIdProblem(id)).toBeUndefined();
  });

  it.each([
    ['ab', '3 to 255'],
    ['x'.repeat(256), '3 to 255'],
    ['1abc', 'start with a letter'],
    ['a/b/c', 'start with a letter and contain only'],
    ['dev+#', 'contain only'],
    ['dev\u0000ice', 'contain only'],
    ['dev ice', 'contain only'],
    ['google-1', 'goog'],
  ])('refuses %j', (id, why) => {
    expect(deviceIdProblem(id)).toContain(why);
    expect(() => assertDeviceId(id)).toThrow(RelayError);
  });

  it('refuses non-strings with a specific code and field', () => {
    try {
      assertDeviceId(42, 'deviceIds[3]');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(RelayError);
      expect((e as RelayError).code).toBe('ERR_INVALID_DEVICE_ID');
      expect((e as RelayError).field).toBe('deviceIds[3]');
    }
  });
});

describe('device IDs in an MQTT topic name', () => {
  it('let through every ID of IoT Core\'s rule without a +', () => {
    for (const id of ['pump-0042', 'A.b_c~d%e']) {
      expect(topicDeviceIdProblem(id)).toBeUndefined();
      expect(() => assertTopicDeviceId(id)).not.toThrow();
    }
  });

  it('refuse pump+x, which IoT Core allows, with a code of its own and a message that says why', () => {
    expect(deviceIdProblem('pump+x')).toBeUndefined();
    expect(() => assertDeviceId('pump+x')).not.toThrow();
    try {
      assertTopicDeviceId('pump+x', 'deviceIds[2]');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(RelayError);
      expect((e as RelayError).code).toBe('ERR_DEVICE_ID_MQTT_WILDCARD');
      expect((e as RelayError).field).toBe('deviceIds[2]');
      expect((e as RelayError).message).toBe(
        'deviceIds[2] "pump+x" is a valid IoT Core device ID, but its \'+\' is an MQTT wildcard, which a topic name may not contain (MQTT 3.1.1 §4.7.1): it cannot be relayed over MQTT',
      );
    }
  });

  it('refuse an ID that breaks IoT Core\'s rule as before, whether it holds a + or not', () => {
    expect(() => assertTopicDeviceId('dev+#')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_DEVICE_ID' }));
    expect(() => assertTopicDeviceId(42)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_DEVICE_ID' }));
  });
});
