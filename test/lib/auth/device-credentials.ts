/**
 * Test devices with key pairs, their key document, and device JWTs with any claims a test wants (valid or not).
 *
 * @example
 * const pump = ecDevice('pump-0042');
 * const token = await deviceJwt(pump, { aud: 'demo-project' });
 * const doc = keyDocument([pump]); // {"pump-0042": ["-----BEGIN PUBLIC KEY-----..."]}
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT, type JWTHeaderParameters } from 'jose';

export interface TestDevice {
  id: string;
  alg: 'ES256' | 'RS256';
  privateKey: KeyObject;
  publicKeyPem: string;
  /** PKCS#8 PEM of the private key, for the CLI's --key. */
  privateKeyPem: string;
}

export function ecDevice(id: string): TestDevice {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return device(id, 'ES256', privateKey, publicKey);
}

/** RSA key generation takes a while: make one per file. */
export function rsaDevice(id: string): TestDevice {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return device(id, 'RS256', privateKey, publicKey);
}

function device(id: string, alg: TestDevice['alg'], privateKey: KeyObject, publicKey: KeyObject): TestDevice {
  return {
    id,
    alg,
    privateKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

export const PROJECT = 'demo-project';
export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/**
 * Signs a JWT with the device's key. Claims default to a valid IoT Core device token (aud = PROJECT, iat now,
 * exp in 20 minutes); a claim set to `undefined` is left out. The header defaults to `{alg, typ: "JWT"}`.
 */
export async function deviceJwt(
  signer: TestDevice,
  claims: Record<string, unknown> = {},
  header: Partial<JWTHeaderParameters> & { typ?: string | undefined } = {},
): Promise<string> {
  const iat = nowSeconds();
  const all: Record<string, unknown> = { aud: PROJECT, iat, exp: iat + 20 * 60, ...claims };
  const payload = Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
  const protectedHeader = Object.fromEntries(
    Object.entries({ alg: signer.alg, typ: 'JWT', ...header }).filter(([, v]) => v !== undefined),
  ) as JWTHeaderParameters;
  return new SignJWT(payload).setProtectedHeader(protectedHeader).sign(signer.privateKey);
}

/** The key document a key source holds: device ID -> its public key PEMs. */
export function keyDocument(devices: readonly TestDevice[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ ...Object.fromEntries(devices.map((d) => [d.id, [d.publicKeyPem]])), ...extra });
}
