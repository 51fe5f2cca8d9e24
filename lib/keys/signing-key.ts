/**
 * Turns a gateway's private key PEM into a key that signs its connection JWT, and decides the algorithm from the
 * key itself. IoT Core accepts exactly two JWT algorithms (docs/protocol.md §1.3): RS256 (an RSA key) and
 * ES256 (an EC key on P-256, `prime256v1`), so the key alone says which one to use.
 *
 * Accepted PEM forms are the ones the usual OpenSSL commands write:
 * - PKCS#8, `BEGIN PRIVATE KEY` (`openssl genpkey`, and the `iotcore-relay keys` command),
 * - PKCS#1, `BEGIN RSA PRIVATE KEY` (`openssl genrsa -traditional`),
 * - SEC1, `BEGIN EC PRIVATE KEY` (`openssl ecparam -genkey`, with or without its leading `EC PARAMETERS` block).
 *
 * Imported keys are kept for the life of the process, keyed by a digest of the PEM text, so a warm Lambda container
 * never parses the same key twice, and a rotated secret (different text) gets a freshly imported key.
 * The resulting CryptoKey is not extractable: nothing downstream can turn it back into key material.
 *
 * @example
 * const { key, alg } = await importSigningKey(pem, { origin: 'secret gw-keys, entry gw-1' });
 * const jwt = await signGatewayJwt({ key, alg, project: 'demo-project' });
 */
import { createHash, createPrivateKey, webcrypto, type KeyObject } from 'node:crypto';
import { RelayError } from '../errors.js';

export type CryptoKey = webcrypto.CryptoKey;

/** The two JWT algorithms the bridge accepts. */
export type GatewayKeyAlgorithm = 'RS256' | 'ES256';
export const GATEWAY_KEY_ALGORITHMS: readonly GatewayKeyAlgorithm[] = ['RS256', 'ES256'];

/** What a key source hands to the JWT signer. */
export interface SigningKey {
  key: CryptoKey | KeyObject;
  alg: GatewayKeyAlgorithm;
}

/** Shorter RSA keys are refused: 2048 bits is the floor of current guidance (NIST SP 800-131A) and of the samples. */
export const MIN_RSA_MODULUS_BITS = 2048;

export interface ImportOptions {
  /**
   * Where the PEM came from, for error messages (a secret ID, a file path, a map entry). It must not contain key
   * material: it is copied into every error this module throws.
   */
  origin: string;
  /** The `algorithm` the key document declared, if any; it must agree with the key. Validated here. */
  declaredAlgorithm?: unknown;
}

const PRIVATE_KEY_LABELS = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY']);
const PEM_LABEL = /-----BEGIN ([A-Z0-9 ]+)-----/g;

/** Process-wide cache: digest of the PEM text -> the imported key (a promise, so concurrent callers share one import). */
const imported = new Map<string, Promise<SigningKey>>();

export async function importSigningKey(pem: string, options: ImportOptions): Promise<SigningKey> {
  const declared = checkDeclaredAlgorithm(options.declaredAlgorithm, options.origin);
  const text = normalizePem(pem);
  const cacheKey = createHash('sha256').update(text).digest('base64url');
  let entry = imported.get(cacheKey);
  if (entry === undefined) {
    // Parsing and the checks run synchronously, so a bad key throws with this caller's origin and is never cached.
    const keyObject = parsePrivateKey(text, options.origin);
    const alg = algorithmOf(keyObject, options.origin);
    entry = toCryptoKey(keyObject, alg);
    imported.set(cacheKey, entry);
    entry.catch(() => imported.delete(cacheKey));
  }
  const signingKey = await entry;
  if (declared !== undefined && declared !== signingKey.alg) {
    throw new RelayError(
      'ERR_KEY_INVALID',
      `${options.origin}: algorithm ${declared} was declared, but the key is ${describeAlgorithm(signingKey.alg)}`,
    );
  }
  return signingKey;
}

/**
 * The algorithm a parsed key signs with, or ERR_KEY_INVALID when IoT Core could not verify anything it signs.
 * Exposed for callers that already hold a KeyObject, which `signGatewayJwt` also accepts.
 */
export function algorithmOf(key: KeyObject, origin: string): GatewayKeyAlgorithm {
  if (key.type !== 'private') {
    throw new RelayError('ERR_KEY_INVALID', `${origin}: a private key is needed, got a ${key.type} key`);
  }
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_MODULUS_BITS) {
        throw new RelayError(
          'ERR_KEY_INVALID',
          `${origin}: RSA key of ${bits} bits is too short; use at least ${MIN_RSA_MODULUS_BITS} bits`,
        );
      }
      return 'RS256';
    }
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      // ES256 is ECDSA over P-256 only; a P-384 key would need ES384, which the bridge does not accept.
      if (curve !== 'prime256v1') {
        throw new RelayError(
          'ERR_KEY_INVALID',
          `${origin}: EC key on curve ${curve ?? 'unknown'} is not supported; ES256 needs P-256 (prime256v1)`,
        );
      }
      return 'ES256';
    }
    default:
      // rsa-pss keys are refused too: RS256 is RSASSA-PKCS1-v1_5, which a PSS-restricted key must not produce.
      throw new RelayError(
        'ERR_KEY_INVALID',
        `${origin}: ${key.asymmetricKeyType ?? 'unknown'} keys are not supported; ` +
          'use an RSA (RS256) or P-256 EC (ES256) key',
      );
  }
}

function checkDeclaredAlgorithm(value: unknown, origin: string): GatewayKeyAlgorithm | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && (GATEWAY_KEY_ALGORITHMS as readonly string[]).includes(value)) {
    return value as GatewayKeyAlgorithm;
  }
  throw new RelayError('ERR_KEY_INVALID', `${origin}: algorithm must be RS256 or ES256`);
}

/**
 * A PEM pasted into a JSON editor or a shell variable often arrives with its line breaks as the two characters
 * `\n`, or with CRLF; both are repaired. Nothing else is rewritten.
 */
function normalizePem(pem: string): string {
  let text = pem.trim();
  if (!text.includes('\n') && text.includes('\\n')) text = text.replaceAll('\\n', '\n');
  return text.replaceAll('\r\n', '\n');
}

function parsePrivateKey(text: string, origin: string): KeyObject {
  const labels = [...text.matchAll(PEM_LABEL)].map((m) => m[1] ?? '');
  if (labels.length === 0) {
    throw new RelayError('ERR_KEY_INVALID', `${origin}: not a PEM private key (no -----BEGIN line)`);
  }
  if (!labels.some((label) => PRIVATE_KEY_LABELS.has(label))) {
    const what = labels.includes('ENCRYPTED PRIVATE KEY')
      ? 'an encrypted private key; store it unencrypted (the secret itself is encrypted by KMS)'
      : `a PEM of type ${labels.join(', ')}, not a private key; expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY`;
    throw new RelayError('ERR_KEY_INVALID', `${origin}: ${what}`);
  }
  try {
    return createPrivateKey({ key: text, format: 'pem' });
  } catch {
    // OpenSSL's message says nothing useful beyond "unsupported"; the cause is dropped so no parser diagnostics
    // about the key's bytes travel along with the error.
    throw new RelayError('ERR_KEY_INVALID', `${origin}: the PEM private key could not be decoded`);
  }
}

async function toCryptoKey(keyObject: KeyObject, alg: GatewayKeyAlgorithm): Promise<SigningKey> {
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  try {
    const params =
      alg === 'RS256'
        ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
        : { name: 'ECDSA', namedCurve: 'P-256' };
    const key = await webcrypto.subtle.importKey('pkcs8', der, params, false, ['sign']);
    return { key, alg };
  } finally {
    der.fill(0);
  }
}

function describeAlgorithm(alg: GatewayKeyAlgorithm): string {
  return alg === 'RS256' ? 'an RSA key (RS256)' : 'a P-256 EC key (ES256)';
}
