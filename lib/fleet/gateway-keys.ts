/**
 * The public keys `fleet gateways` registers on the pool's gateways: one file shared by the whole pool, or a path
 * template with `{gateway}` (`keys/{gateway}_public.pem`, as `iotcore-relay keys --out keys --name gw-1` writes
 * them). The credential format comes from the key itself: a P-256 key is `ES256_PEM`, an RSA key (2048 bits or
 * more) `RSA_PEM`, and a certificate `ES256_X509_PEM` or `RSA_X509_PEM`. A private key given by mistake is refused
 * without a word of its content.
 *
 * @example
 * const keys = gatewayKeySource('keys/{gateway}_public.pem');
 * const credential = await keys.credentialFor('gw-007'); // { publicKey: { format: 'ES256_PEM', key: '-----BEGIN PUBLIC KEY-----…' } }
 */
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { RelayError } from '../errors.js';
import type { KeyFormat } from '../clearblade/rest-client.js';
import { MIN_RSA_MODULUS_BITS } from '../keys/signing-key.js';

export interface GatewayCredential {
  publicKey: { format: KeyFormat; key: string };
}

export interface GatewayKeySource {
  /** The path or template as given. */
  readonly spec: string;
  readonly perGateway: boolean;
  /** Which file holds a gateway's key. */
  pathFor(gatewayId: string): string;
  credentialFor(gatewayId: string): Promise<GatewayCredential>;
}

export const GATEWAY_PLACEHOLDER = '{gateway}';

const bad = (path: string, why: string): RelayError => new RelayError('ERR_KEY_INVALID', `${path}: ${why}`);

export function gatewayKeySource(spec: string): GatewayKeySource {
  if (spec.trim() === '') throw new RelayError('ERR_CONFIG', 'the gateway public key path is empty');
  const perGateway = spec.includes(GATEWAY_PLACEHOLDER);
  const cache = new Map<string, Promise<GatewayCredential>>();
  const pathFor = (gatewayId: string): string => (perGateway ? spec.replaceAll(GATEWAY_PLACEHOLDER, gatewayId) : spec);
  return {
    spec,
    perGateway,
    pathFor,
    credentialFor(gatewayId: string): Promise<GatewayCredential> {
      const path = pathFor(gatewayId);
      let entry = cache.get(path);
      if (entry === undefined) {
        entry = readCredential(path);
        cache.set(path, entry);
      }
      return entry;
    },
  };
}

async function readCredential(path: string): Promise<GatewayCredential> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new RelayError('ERR_CONFIG', `gateway public key ${path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return credentialFromPem(text, path);
}

/** The credential for a public key or certificate PEM; throws ERR_KEY_INVALID naming `origin` otherwise. */
export function credentialFromPem(text: string, origin: string): GatewayCredential {
  const pem = text.replaceAll('\r\n', '\n').trim();
  const labels = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]);
  if (labels.length === 0) throw bad(origin, 'not a PEM public key or certificate (no -----BEGIN line)');
  if (labels.some((l) => l?.includes('PRIVATE KEY'))) {
    throw bad(origin, 'holds a PRIVATE key; give the public key (the *_public.pem file `iotcore-relay keys` writes)');
  }
  if (labels.length !== 1) throw bad(origin, `holds ${labels.length} PEM blocks; give exactly one public key or certificate`);
  if (labels[0] === 'CERTIFICATE') {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch {
      throw bad(origin, 'the certificate does not parse');
    }
    const alg = algorithmOf(cert.publicKey, origin);
    return { publicKey: { format: alg === 'ES256' ? 'ES256_X509_PEM' : 'RSA_X509_PEM', key: `${pem}\n` } };
  }
  if (labels[0] !== 'PUBLIC KEY' && labels[0] !== 'RSA PUBLIC KEY') throw bad(origin, `a ${labels[0]} block is not a public key`);
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw bad(origin, 'the public key does not parse');
  }
  const alg = algorithmOf(key, origin);
  // Registered as SubjectPublicKeyInfo, the form IoT Core's RSA_PEM and ES256_PEM hold.
  const spki = key.export({ type: 'spki', format: 'pem' }).toString();
  return { publicKey: { format: alg === 'ES256' ? 'ES256_PEM' : 'RSA_PEM', key: spki } };
}

function algorithmOf(key: KeyObject, origin: string): 'ES256' | 'RS256' {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve !== 'prime256v1') throw bad(origin, `EC key on curve ${curve ?? 'unknown'}: ES256 needs P-256 (prime256v1)`);
    return 'ES256';
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_MODULUS_BITS) throw bad(origin, `RSA key of ${bits} bits is too short; use at least ${MIN_RSA_MODULUS_BITS}`);
    return 'RS256';
  }
  throw bad(origin, `${key.asymmetricKeyType ?? 'unknown'} keys are not accepted by IoT Core; use a P-256 (ES256) or RSA (RS256) key`);
}

/** The public key of a stored credential as DER, to compare keys whatever their PEM layout; undefined if unreadable. */
export function publicKeyDer(credential: { publicKey?: { format?: string; key?: string } } | undefined): string | undefined {
  const pem = credential?.publicKey?.key;
  if (typeof pem !== 'string') return undefined;
  try {
    const key = pem.includes('CERTIFICATE') ? new X509Certificate(pem).publicKey : createPublicKey(pem);
    return key.export({ type: 'spki', format: 'der' }).toString('base64');
  } catch {
    return undefined;
  }
}

/** Whether a gateway's stored credentials include this key. */
export function hasKey(stored: readonly { publicKey?: { format?: string; key?: string } }[] | undefined, wanted: GatewayCredential): boolean {
  const der = publicKeyDer(wanted);
  return der !== undefined && (stored ?? []).some((c) => publicKeyDer(c) === der);
}
