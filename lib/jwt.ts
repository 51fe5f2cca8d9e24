/**
 * The JWT a gateway presents as its MQTT password (docs/protocol.md §1.3): header `{alg, typ: "JWT"}` (both
 * mandatory), claims `iat`, `exp` and `aud` = the project ID, and nothing else the bridge would have to ignore.
 * The bridge refuses a token whose `exp - iat` exceeds 24 h, and closes the connection shortly after `exp` (plus
 * its 10-minute skew allowance), so the lifetime must outlast the session it opens, and no more.
 *
 * @example
 * const { key, alg } = await keySource.signingKey('gw-1');
 * const lifetimeSeconds = jwtLifetimeFromEnv(process.env);
 * const password = await signGatewayJwt({ key, alg, project: 'demo-project', lifetimeSeconds });
 */
import { SignJWT } from 'jose';
import type { KeyObject } from 'node:crypto';
import { RelayError } from './errors.js';
import { MAX_JWT_LIFETIME_SECONDS } from './iotcore/limits.js';
import type { CryptoKey, GatewayKeyAlgorithm } from './keys/signing-key.js';

export const DEFAULT_JWT_LIFETIME_SECONDS = 60 * 60;

export interface GatewayJwtOptions {
  key: CryptoKey | KeyObject;
  alg: GatewayKeyAlgorithm;
  /** The project ID, which the bridge requires as `aud`. */
  project: string;
  /** `exp - iat`, in seconds: 1 to 86400. Default 3600. */
  lifetimeSeconds?: number;
  /** The signing instant, `iat`. Default: now. */
  now?: Date;
}

export async function signGatewayJwt(options: GatewayJwtOptions): Promise<string> {
  const lifetime = options.lifetimeSeconds ?? DEFAULT_JWT_LIFETIME_SECONDS;
  checkLifetime(lifetime);
  if (typeof options.project !== 'string' || options.project.trim() === '') {
    throw new RelayError('ERR_CONFIG', 'the project ID (the JWT audience) is empty', { field: 'project' });
  }
  const iat = Math.floor((options.now ?? new Date()).getTime() / 1000);
  if (!Number.isFinite(iat)) throw new RelayError('ERR_CONFIG', 'the signing time is not a valid date', { field: 'now' });
  try {
    return await new SignJWT({})
      .setProtectedHeader({ alg: options.alg, typ: 'JWT' })
      .setIssuedAt(iat)
      .setExpirationTime(iat + lifetime)
      // A single string, not an array: the bridge compares `aud` with the project ID as a string.
      .setAudience(options.project)
      .sign(options.key);
  } catch (e) {
    // jose says why a key cannot make this algorithm (wrong type or curve); its messages never quote key bytes.
    throw new RelayError('ERR_KEY_INVALID', `cannot sign an ${options.alg} JWT with this key: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/**
 * `IOTCORE_JWT_LIFETIME_MINUTES` in seconds: a whole number of minutes from 1 to 1440 (24 h); unset or empty means
 * 60 minutes.
 */
export function jwtLifetimeFromEnv(env: Readonly<Record<string, string | undefined>>): number {
  const raw = env['IOTCORE_JWT_LIFETIME_MINUTES']?.trim() ?? '';
  if (raw === '') return DEFAULT_JWT_LIFETIME_SECONDS;
  const minutes = /^\d{1,9}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(minutes >= 1 && minutes * 60 <= MAX_JWT_LIFETIME_SECONDS)) {
    throw new RelayError(
      'ERR_CONFIG',
      `IOTCORE_JWT_LIFETIME_MINUTES must be a whole number of minutes from 1 to ${MAX_JWT_LIFETIME_SECONDS / 60}, ` +
        `the bridge's maximum JWT lifetime being 24 h (got ${JSON.stringify(raw)})`,
      { field: 'IOTCORE_JWT_LIFETIME_MINUTES' },
    );
  }
  return minutes * 60;
}

function checkLifetime(seconds: number): void {
  if (!Number.isSafeInteger(seconds) || seconds <= 0 || seconds > MAX_JWT_LIFETIME_SECONDS) {
    throw new RelayError(
      'ERR_CONFIG',
      `the JWT lifetime must be a whole number of seconds from 1 to ${MAX_JWT_LIFETIME_SECONDS}, ` +
        `the bridge's maximum being 24 h (got ${seconds})`,
      { field: 'lifetimeSeconds' },
    );
  }
}
