import { describe, expect, it } from 'vitest';
import { assertDeviceId, deviceIdProblem } from '../../../lib/iotcore/device-id.js';
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
