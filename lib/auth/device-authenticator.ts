/**
 * Authenticates a request as one device, and allows it to act only for that device.
 *
 * - `Bearer <JWT>`: the token is verified against the keys of the device it names (`uid` or `sub`) or, when it
 *   names none (IoT Core's own tokens), of the device the request is for. A valid token of device A used for
 *   device B is refused with ERR_AUTH_FORBIDDEN; an anonymous token of A used for B simply fails the signature
 *   check against B's keys (ERR_AUTH_INVALID).
 * - `Device-Key <key>`: the key must be the target device's HMAC key (`device-key.ts`).
 *
 * A scheme whose secret is not configured is refused as an invalid credential, not as a server error: the device
 * can do nothing about it, and the operator sees the scheme list in `WWW-Authenticate`.
 *
 * @example
 * const auth = new DeviceAuthenticator({ project: 'demo-project', publicKeys, masterSecret });
 * const device = await auth.authenticate(headers.authorization, 'pump-0042');
 * if (device.method === 'jwt') queueMessage.deviceToken = device.token;
 */
import { RelayError } from '../errors.js';
import { assertDeviceId } from '../iotcore/device-id.js';
import { parseAuthorization, type AuthScheme } from './authorization-header.js';
import { deviceKeyMatches, masterKeyFromText } from './device-key.js';
import { deviceNamedInJwt, verifyDeviceJwt, type DeviceJwtClaims } from './device-jwt.js';
import type { DevicePublicKeys } from './device-public-keys.js';
import type { SecretTextSource } from './secret-text-source.js';

export type AuthenticatedDevice =
  | { deviceId: string; method: 'jwt'; token: string; claims: DeviceJwtClaims }
  | { deviceId: string; method: 'device-key' };

export interface DeviceAuthenticatorOptions {
  /** The JWT audience: the IoT Core project ID. */
  project: string;
  /** Enables `Bearer` device JWTs. */
  publicKeys?: DevicePublicKeys;
  /** Enables `Device-Key`. */
  masterSecret?: SecretTextSource;
  now?: () => Date;
}

export class DeviceAuthenticator {
  /** The schemes that can succeed, in the order a `WWW-Authenticate` header lists them. */
  readonly schemes: readonly AuthScheme[];
  private master: { text: string; key: Buffer } | undefined;

  constructor(private readonly options: DeviceAuthenticatorOptions) {
    if (options.publicKeys === undefined && options.masterSecret === undefined) {
      throw new RelayError('ERR_CONFIG', 'device authentication needs device public keys, a device key master secret, or both');
    }
    this.schemes = [
      ...(options.publicKeys ? (['Bearer'] as const) : []),
      ...(options.masterSecret ? (['Device-Key'] as const) : []),
    ];
  }

  /**
   * The device a request authenticates as, which is always `deviceId`. Throws RelayError ERR_AUTH_MISSING,
   * ERR_AUTH_INVALID, ERR_AUTH_EXPIRED, ERR_AUTH_CLAIM or ERR_AUTH_FORBIDDEN for the device's fault, and
   * ERR_KEY_UNAVAILABLE, ERR_KEY_INVALID or ERR_CONFIG when the keys cannot be read or used.
   */
  async authenticate(authorization: string | undefined, deviceId: string): Promise<AuthenticatedDevice> {
    assertDeviceId(deviceId);
    const presented = parseAuthorization(authorization);
    if (presented.scheme === 'Bearer') return this.viaJwt(presented.credential, deviceId);
    return this.viaDeviceKey(presented.credential, deviceId);
  }

  private async viaJwt(token: string, deviceId: string): Promise<AuthenticatedDevice> {
    const { publicKeys } = this.options;
    if (publicKeys === undefined) throw new RelayError('ERR_AUTH_INVALID', 'device JWTs are not accepted here; use Device-Key');
    const signer = deviceNamedInJwt(token) ?? deviceId;
    const claims = await verifyDeviceJwt(token, {
      project: this.options.project,
      deviceId: signer,
      keys: await publicKeys.keysFor(signer),
      ...(this.options.now ? { now: this.options.now() } : {}),
    });
    if (signer !== deviceId) {
      throw new RelayError('ERR_AUTH_FORBIDDEN', `the token is device ${signer}'s; it may not act for device ${deviceId}`);
    }
    return { deviceId, method: 'jwt', token, claims };
  }

  private async viaDeviceKey(key: string, deviceId: string): Promise<AuthenticatedDevice> {
    const { masterSecret } = this.options;
    if (masterSecret === undefined) throw new RelayError('ERR_AUTH_INVALID', 'device keys are not accepted here; use a device JWT');
    const text = await masterSecret.read();
    if (this.master?.text !== text) this.master = { text, key: masterKeyFromText(text, masterSecret.origin) };
    if (!deviceKeyMatches(this.master.key, deviceId, key)) {
      throw new RelayError('ERR_AUTH_INVALID', `the device key is not device ${deviceId}'s`);
    }
    return { deviceId, method: 'device-key' };
  }
}
