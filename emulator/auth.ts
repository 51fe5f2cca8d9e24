/**
 * Device authentication as the bridge does it (docs/protocol.md §1.2–1.4): the MQTT client ID names the device,
 * the password is a JWT signed with one of the device's registered keys. The same token rules apply to the device
 * JWT a gateway puts in an attach payload (§3.2), so both go through `verifyDeviceToken`.
 *
 * @example
 * const verdict = await authenticateConnect(registry, { clientId, username, password }, { authFailureCode: 4, skewSeconds: 600 });
 * if (!verdict.ok) refuse(verdict.returnCode, verdict.reason);
 */
import { compactVerify, decodeJwt, decodeProtectedHeader, importSPKI, importX509 } from 'jose';
import type { CryptoKey } from 'jose';
import { MAX_JWT_LIFETIME_SECONDS } from '../lib/iotcore/limits.js';
import { parseClientId } from '../lib/iotcore/topics.js';
import type { DeviceCredential, KeyFormat, Registry } from './registry.js';

export type DeviceJwtAlg = 'RS256' | 'ES256';

/** Which credential formats can verify which JWT alg ([CB-JWT]: the alg must match a registered key). */
const FORMATS_OF: Record<DeviceJwtAlg, readonly KeyFormat[]> = {
  RS256: ['RSA_PEM', 'RSA_X509_PEM'],
  ES256: ['ES256_PEM', 'ES256_X509_PEM'],
};

export interface TokenRules {
  /** The project ID: the only `aud` accepted. */
  project: string;
  /** Clock skew allowed on `iat` and `exp`, in seconds (the bridge allows 10 min). */
  skewSeconds: number;
  /** Whether `exp - iat` may exceed 24 h by the skew too (BridgeOptions.jwtLifetime 'with-skew'); strict if absent. */
  lifetimeWithSkew?: boolean;
  now?: Date;
}

export type TokenVerdict =
  | { ok: true; alg: DeviceJwtAlg; iat: number; exp: number }
  | { ok: false; reason: string };

/** Strict compact form: three base64url parts, no padding ([CB-JWT] warns its decoding is stricter than Google's). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Checks a device JWT against the device's credentials. Never throws; the reason is safe to log (it never quotes
 * the token or a key).
 */
export async function verifyDeviceToken(token: string, credentials: readonly DeviceCredential[], rules: TokenRules): Promise<TokenVerdict> {
  if (!COMPACT_JWS.test(token)) return { ok: false, reason: 'the token is not a compact JWS (three base64url parts without padding)' };
  let header: ReturnType<typeof decodeProtectedHeader>;
  let claims: ReturnType<typeof decodeJwt>;
  try {
    header = decodeProtectedHeader(token);
    claims = decodeJwt(token);
  } catch {
    return { ok: false, reason: 'the token header or claims are not base64url JSON' };
  }
  const alg = header.alg;
  if (alg !== 'RS256' && alg !== 'ES256') return { ok: false, reason: `alg ${JSON.stringify(alg)?.slice(0, 40)} is not RS256 or ES256` };
  // [CB-JWT]: both header fields are mandatory.
  if (typeof header.typ !== 'string' || header.typ.toUpperCase() !== 'JWT') return { ok: false, reason: 'the header lacks typ "JWT"' };

  // [CB-JWT]: an aud other than the project ID is rejected without further checks; it must be a single string.
  if (typeof claims.aud !== 'string') return { ok: false, reason: 'aud must be a single string, the project ID' };
  if (claims.aud !== rules.project) return { ok: false, reason: `aud is not the project ID ${rules.project}` };
  const { iat, exp } = claims;
  if (typeof iat !== 'number' || !Number.isFinite(iat)) return { ok: false, reason: 'iat is missing or not a number' };
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return { ok: false, reason: 'exp is missing or not a number' };
  const now = (rules.now ?? new Date()).getTime() / 1000;
  if (iat > now + rules.skewSeconds) return { ok: false, reason: 'iat is in the future beyond the allowed clock skew' };
  if (now >= exp + rules.skewSeconds) return { ok: false, reason: 'the token has expired (exp plus the allowed clock skew is past)' };
  if (exp <= iat) return { ok: false, reason: 'exp is not after iat' };
  const maxLifetime = MAX_JWT_LIFETIME_SECONDS + (rules.lifetimeWithSkew === true ? rules.skewSeconds : 0);
  if (exp - iat > maxLifetime) return { ok: false, reason: `exp - iat exceeds 24 h${rules.lifetimeWithSkew === true ? ' plus the allowed clock skew' : ''}` };
  // nbf is ignored, as the bridge documents ([CB-JWT]).

  const nowMs = now * 1000;
  const candidates = credentials.filter(
    (c) =>
      FORMATS_OF[alg].includes(c.publicKey.format) &&
      // An expired credential is ignored for new authentications, not deleted ([PROTO]).
      (c.expirationTime === undefined || Date.parse(c.expirationTime) > nowMs),
  );
  if (candidates.length === 0) return { ok: false, reason: `the device has no unexpired credential for ${alg}` };
  for (const credential of candidates) {
    const key = await importCredential(credential, alg);
    if (key === undefined) continue;
    try {
      await compactVerify(token, key, { algorithms: [alg] });
      return { ok: true, alg, iat, exp };
    } catch {
      // try the next credential: a device may hold up to three keys during a rotation
    }
  }
  return { ok: false, reason: `the signature matches none of the device's ${alg} credentials` };
}

/** Imported keys, by PEM: a fleet reconnecting after an outage must not re-parse every key on every attempt. */
const keyCache = new Map<string, Promise<CryptoKey | undefined>>();
const MAX_CACHED_KEYS = 10_000;

function importCredential(credential: DeviceCredential, alg: DeviceJwtAlg): Promise<CryptoKey | undefined> {
  const { format, key } = credential.publicKey;
  const cacheKey = `${alg}\n${format}\n${key}`;
  let imported = keyCache.get(cacheKey);
  if (imported === undefined) {
    if (keyCache.size >= MAX_CACHED_KEYS) keyCache.clear();
    const importer = format.endsWith('_X509_PEM') ? importX509 : importSPKI;
    // A credential that does not parse as its format says (or holds an RSA key under an ES256 format) simply
    // cannot verify anything; the registry accepted it because it looked like a PEM.
    imported = importer(key, alg).catch(() => undefined);
    keyCache.set(cacheKey, imported);
  }
  return imported;
}

/** The CONNACK codes a CONNECT can be refused with after authentication starts. */
export type AuthRefusal = 2 | 4 | 5;

export interface ConnectCredentials {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
}

export interface ConnectRules {
  /** The code for credential problems: CB documents 4, Google answered 5 (docs/protocol.md §1.4). */
  authFailureCode: 4 | 5;
  skewSeconds: number;
  lifetimeWithSkew?: boolean;
  /** Accept a CONNECT whose username is empty or absent (BridgeOptions.emptyUsername 'accept'); refused if not set. */
  acceptEmptyUsername?: boolean;
  now?: Date;
}

export type ConnectVerdict =
  | { ok: true; registryId: string; deviceId: string; exp: number }
  | { ok: false; returnCode: AuthRefusal; reason: string };

/**
 * Decides a CONNECT: the client ID must name a known device of this emulator's project and location, the
 * username must be non-empty (unless `acceptEmptyUsername`), the password a valid device JWT; blocked devices and registries with MQTT disabled
 * are refused with the credential-failure code.
 */
export async function authenticateConnect(registry: Registry, creds: ConnectCredentials, rules: ConnectRules): Promise<ConnectVerdict> {
  const refuse = (reason: string, returnCode: AuthRefusal = rules.authFailureCode): ConnectVerdict => ({ ok: false, returnCode, reason });
  const path = parseClientId(creds.clientId);
  // A client ID that is not a device path at all is an identifier problem (rc 2); a well-formed path naming an
  // unknown device was answered "not authorized" by Google (docs/protocol.md §7, wrong registry/device ID).
  if (path === undefined) return refuse('the client ID is not projects/{p}/locations/{l}/registries/{r}/devices/{d}', 2);
  if (path.project !== registry.project || path.location !== registry.location) {
    return refuse(`no registry ${path.registry} in project ${path.project}, location ${path.location}`);
  }
  const device = registry.findDevice(path.registry, path.deviceId);
  // numIds are accepted in REST paths only; the client ID carries the device ID (case-sensitive, [CB-MQTT]).
  if (device === undefined || device.id !== path.deviceId) return refuse(`unknown device ${path.deviceId} in registry ${path.registry}`);
  if ((creds.username === undefined || creds.username === '') && rules.acceptEmptyUsername !== true) {
    return refuse('the username is empty (the bridge ignores it, but it must be present for the password to be sent)');
  }
  if (creds.password === undefined || creds.password.length === 0) return refuse('no password (the device JWT)');
  if (registry.getRegistry(path.registry).mqttConfig.mqttEnabledState === 'MQTT_DISABLED') {
    return refuse(`MQTT is disabled on registry ${path.registry}`);
  }
  if (device.blocked) return refuse(`device ${device.id} is blocked`);
  const token = await verifyDeviceToken(creds.password.toString('utf8'), device.credentials, {
    project: registry.project,
    skewSeconds: rules.skewSeconds,
    lifetimeWithSkew: rules.lifetimeWithSkew === true,
    ...(rules.now ? { now: rules.now } : {}),
  });
  if (!token.ok) return refuse(`device ${device.id}: ${token.reason}`);
  return { ok: true, registryId: path.registry, deviceId: device.id, exp: token.exp };
}
