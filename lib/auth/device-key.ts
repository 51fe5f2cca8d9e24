/**
 * Device keys for devices that cannot sign a JWT: each device's key is `HMAC-SHA256(master, deviceId)`, written in
 * base64url without padding (43 characters). One master secret serves every device, so there is no per-device
 * storage to provision or keep in sync: a key can be computed when the device is flashed, and checked here from
 * the device ID alone.
 *
 * The master is the secret's text with surrounding whitespace removed, taken as UTF-8 bytes, so the same secret
 * read from a file with a trailing newline or from Secrets Manager gives the same keys.
 *
 * @example
 * const master = masterKeyFromText(await source.read(), source.origin);
 * const key = deriveDeviceKey(master, 'pump-0042'); // 'q0Z...' (43 characters)
 * deviceKeyMatches(master, 'pump-0042', key);        // true
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { RelayError } from '../errors.js';
import { assertDeviceId } from '../iotcore/device-id.js';

/** Anyone holding the master can act as every device; under 32 bytes (256 bits) it could be guessed offline. */
export const MIN_MASTER_SECRET_BYTES = 32;
/** base64url of a 32-byte HMAC-SHA256, unpadded. */
const DEVICE_KEY = /^[A-Za-z0-9_-]{43}$/;

export function masterKeyFromText(text: string, origin: string): Buffer {
  const master = Buffer.from(text.trim(), 'utf8');
  if (master.byteLength < MIN_MASTER_SECRET_BYTES) {
    // The length is said, the content never is.
    throw new RelayError(
      'ERR_CONFIG',
      `${origin}: the device key master secret is ${master.byteLength} bytes; at least ${MIN_MASTER_SECRET_BYTES} are needed`,
    );
  }
  return master;
}

export function deriveDeviceKey(master: Uint8Array, deviceId: string): string {
  assertDeviceId(deviceId);
  return createHmac('sha256', master).update(deviceId, 'utf8').digest('base64url');
}

/**
 * Compares in constant time. A key of the wrong shape is refused before any comparison (its length is public).
 * The text is compared, not the decoded bytes: the last base64url character carries 2 spare bits, so decoding
 * would accept four spellings of one key.
 */
export function deviceKeyMatches(master: Uint8Array, deviceId: string, presented: string): boolean {
  if (!DEVICE_KEY.test(presented)) return false;
  const expected = Buffer.from(deriveDeviceKey(master, deviceId), 'ascii');
  return timingSafeEqual(expected, Buffer.from(presented, 'ascii'));
}
