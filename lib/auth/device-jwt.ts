/**
 * Verifies a device JWT the way IoT Core's bridges do (docs/protocol.md §1.3):
 * - header `alg` RS256 or ES256 and `typ` JWT, both present;
 * - signed by one of the device's registered keys;
 * - `aud` is the project ID, as a single string;
 * - `iat` no more than 10 minutes in the future, `exp` not passed by more than 10 minutes of clock skew, and
 *   `exp - iat` at most 24 hours;
 * - `nbf` is ignored, as IoT Core ignores it.
 *
 * The signature is checked before the claims, so a sender without a device key learns nothing about what a valid
 * token would need. Claims are checked here rather than by `jwtVerify`, which would also enforce `nbf`.
 *
 * @example
 * const claims = await verifyDeviceJwt(token, { project: 'demo-project', deviceId: 'pump-0042', keys });
 */
import { compactVerify, decodeJwt, decodeProtectedHeader, errors as joseErrors } from 'jose';
import { describeInput, RelayError } from '../errors.js';
import { isDeviceId } from '../iotcore/device-id.js';
import { JWT_CLOCK_SKEW_SECONDS, MAX_JWT_LIFETIME_SECONDS } from '../iotcore/limits.js';
import { assertDeviceToken } from '../queue/message.js';
import { DEVICE_JWT_ALGORITHMS, type DeviceJwtAlgorithm, type DevicePublicKey } from './device-public-keys.js';

export interface DeviceJwtClaims {
  aud: string;
  iat: number;
  exp: number;
}

export interface VerifyDeviceJwtOptions {
  /** The JWT audience IoT Core requires: the project ID. */
  project: string;
  /** The device the keys belong to, for messages. */
  deviceId: string;
  keys: readonly DevicePublicKey[];
  now?: Date;
}

const invalid = (message: string): RelayError => new RelayError('ERR_AUTH_INVALID', message);
const claim = (message: string): RelayError => new RelayError('ERR_AUTH_CLAIM', message);

export async function verifyDeviceJwt(token: string, options: VerifyDeviceJwtOptions): Promise<DeviceJwtClaims> {
  // The relay checks a queued deviceToken with this same rule; a token it would refuse is refused here already.
  try {
    assertDeviceToken(token, 'token');
  } catch (e) {
    throw invalid(`the bearer token is not usable: ${(e as Error).message}`);
  }
  const alg = headerAlgorithm(token);
  const candidates = options.keys.filter((k) => k.alg === alg);
  let payload: Uint8Array | undefined;
  for (const candidate of candidates) {
    try {
      payload = (await compactVerify(token, candidate.key, { algorithms: [alg] })).payload;
      break;
    } catch (e) {
      if (e instanceof joseErrors.JWSSignatureVerificationFailed) continue;
      throw invalid('the token is not a valid JWS');
    }
  }
  if (payload === undefined) {
    // One message whether the device is unknown, has no key of this type, or another key signed the token, so
    // the answer does not tell a prober which device IDs exist.
    throw invalid(`the token's signature does not match a registered key of device ${options.deviceId}`);
  }
  return checkClaims(payload, options);
}

/**
 * The device a token names, before any verification: ClearBlade's `uid` claim or `sub`. Undefined when it names
 * none. IoT Core's own device tokens name no device (the device is the one in the URL or client ID).
 * Throws ERR_AUTH_INVALID when the token names a device in a way that cannot be used.
 */
export function deviceNamedInJwt(token: string): string | undefined {
  let payload: Record<string, unknown>;
  try {
    payload = decodeJwt(token);
  } catch {
    throw invalid('the bearer token is not a JWT');
  }
  const named = [payload['uid'], payload['sub']].filter((v) => v !== undefined);
  if (named.length === 0) return undefined;
  const [first] = named;
  if (!isDeviceId(first) || named.some((v) => v !== first)) {
    throw invalid('the token names its device (uid or sub) with something that is not one valid device ID');
  }
  return first;
}

function headerAlgorithm(token: string): DeviceJwtAlgorithm {
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw invalid('the bearer token is not a JWT');
  }
  const alg = header['alg'];
  if (typeof alg !== 'string' || !(DEVICE_JWT_ALGORITHMS as readonly string[]).includes(alg)) {
    throw invalid(`the token's alg must be RS256 or ES256 (got ${describeInput(alg)})`);
  }
  // Both header fields are mandatory on the bridge; typ compares case-insensitively (RFC 7519 §5.1).
  const typ = header['typ'];
  if (typeof typ !== 'string' || typ.toUpperCase() !== 'JWT') {
    throw invalid(`the token's header must carry typ "JWT" (got ${describeInput(typ)})`);
  }
  return alg as DeviceJwtAlgorithm;
}

function checkClaims(payload: Uint8Array, options: VerifyDeviceJwtOptions): DeviceJwtClaims {
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    throw invalid('the token payload is not JSON');
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw invalid('the token payload is not a JSON object');
  const { aud, iat, exp } = claims as Record<string, unknown>;

  if (typeof aud !== 'string') throw claim('aud must be the project ID, as a single string');
  if (aud !== options.project) throw claim(`aud must be the project ID ${options.project} (got ${describeInput(aud)})`);
  if (!isSeconds(iat)) throw claim('iat must be a NumericDate (seconds since the epoch)');
  if (!isSeconds(exp)) throw claim('exp must be a NumericDate (seconds since the epoch)');

  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  if (iat > now + JWT_CLOCK_SKEW_SECONDS) {
    throw claim(`iat is ${iat - now} s in the future; at most ${JWT_CLOCK_SKEW_SECONDS} s of clock skew is allowed`);
  }
  if (exp <= iat) throw claim('exp must be after iat');
  if (exp - iat > MAX_JWT_LIFETIME_SECONDS) {
    throw claim(`the token lives ${exp - iat} s (exp - iat); at most ${MAX_JWT_LIFETIME_SECONDS} s (24 h) is allowed`);
  }
  if (now > exp + JWT_CLOCK_SKEW_SECONDS) {
    throw new RelayError('ERR_AUTH_EXPIRED', `the token expired ${now - exp} s ago; sign a new one`);
  }
  return { aud, iat, exp };
}

function isSeconds(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}
