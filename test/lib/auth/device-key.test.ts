import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deriveDeviceKey, deviceKeyMatches, masterKeyFromText } from '../../../lib/auth/device-key.js';
import { isDeviceId } from '../../../lib/iotcore/device-id.js';

const MASTER = masterKeyFromText('0123456789abcdef0123456789abcdef', 'test master');

describe('deriveDeviceKey', () => {
  it('is base64url(HMAC-SHA256(master, deviceId)), unpadded', () => {
    // Computed independently: python3 -c "hmac.new(master, b'pump-0042', hashlib.sha256)" -> urlsafe_b64encode, '=' stripped.
    expect(deriveDeviceKey(MASTER, 'pump-0042')).toBe('F9wuQtLm3xrbnrZYxq5_waOdK6Plq2IvLDNXnr4nLrU');
    expect(deriveDeviceKey(MASTER, 'sensor-7')).toBe('OhUNrXrfpG_g3NndDLW6onYcQ7CLEbewvtrKWAkBxSc');
  });

  it('refuses to derive a key for something that is not a device ID', () => {
    expect(() => deriveDeviceKey(MASTER, 'a/b')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_DEVICE_ID' }));
  });
});

describe('deviceKeyMatches', () => {
  it("accepts the device's own key and no other device's", () => {
    const key = deriveDeviceKey(MASTER, 'pump-0042');

    expect(deviceKeyMatches(MASTER, 'pump-0042', key)).toBe(true);
    expect(deviceKeyMatches(MASTER, 'pump-0043', key)).toBe(false);
  });

  it('refuses a key of the wrong shape: padded, standard alphabet, truncated, empty', () => {
    const key = deriveDeviceKey(MASTER, 'pump-0042');

    for (const bad of [`${key}=`, key.replaceAll('_', '/'), key.slice(0, 42), '', `${key}A`]) {
      expect(deviceKeyMatches(MASTER, 'pump-0042', bad)).toBe(false);
    }
  });

  it('refuses the other spellings of the same 32 bytes (the spare bits of the last character)', () => {
    const key = deriveDeviceKey(MASTER, 'pump-0042'); // ends in 'U' = 0b010100; U, V, W, X decode alike
    const alias = `${key.slice(0, -1)}V`;

    expect(Buffer.from(alias, 'base64url')).toEqual(Buffer.from(key, 'base64url'));
    expect(deviceKeyMatches(MASTER, 'pump-0042', alias)).toBe(false);
  });

  it('gives every device a different key, each matching only its own device (property)', () => {
    const deviceId = fc.stringMatching(/^[a-zA-Z][-a-zA-Z0-9._+~%]{2,40}$/).filter(isDeviceId);
    fc.assert(
      fc.property(deviceId, deviceId, (a, b) => {
        fc.pre(a !== b);
        const keyA = deriveDeviceKey(MASTER, a);
        expect(deviceKeyMatches(MASTER, a, keyA)).toBe(true);
        expect(deviceKeyMatches(MASTER, b, keyA)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });
});

describe('masterKeyFromText', () => {
  it('trims surrounding whitespace, so a file with a trailing newline gives the same keys', () => {
    expect(deriveDeviceKey(masterKeyFromText('0123456789abcdef0123456789abcdef\n', 'file'), 'pump-0042')).toBe(deriveDeviceKey(MASTER, 'pump-0042'));
  });

  it('refuses a master shorter than 32 bytes, without quoting it', () => {
    expect(() => masterKeyFromText('  short-secret \n', 'secret m')).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG', message: 'secret m: the device key master secret is 12 bytes; at least 32 are needed' }),
    );
  });
});
