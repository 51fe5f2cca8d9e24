/**
 * Generates a gateway key pair the bridge accepts (docs/protocol.md §1.3): RSA 2048 for RS256, or P-256 for
 * ES256. The private key comes out as PKCS#8 PEM (`BEGIN PRIVATE KEY`), the form every key source here reads and
 * what `openssl genpkey` writes; the public key as SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`), which is what
 * IoT Core's `RSA_PEM` and `ES256_PEM` credential formats hold.
 *
 * @example
 * const pair = await generateGatewayKeyPair('ES256');
 * registerCredential({ format: 'ES256_PEM', key: pair.publicKeyPem });
 */
import { KeyObject, webcrypto } from 'node:crypto';
import { MIN_RSA_MODULUS_BITS, type GatewayKeyAlgorithm } from './signing-key.js';

export interface GatewayKeyPair {
  alg: GatewayKeyAlgorithm;
  /** PKCS#8 PEM. Secret: store it in Secrets Manager or a mode-0600 file, never in logs. */
  privateKeyPem: string;
  /** SubjectPublicKeyInfo PEM, to register on the gateway device. */
  publicKeyPem: string;
  /** The same pair as Web Crypto keys, e.g. to sign a self-signed certificate. */
  keys: webcrypto.CryptoKeyPair;
}

export async function generateGatewayKeyPair(alg: GatewayKeyAlgorithm): Promise<GatewayKeyPair> {
  const params =
    alg === 'RS256'
      ? {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: MIN_RSA_MODULUS_BITS,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: 'SHA-256',
        }
      : { name: 'ECDSA', namedCurve: 'P-256' };
  // Extractable, because the whole point is to write the private key out once.
  const keys = (await webcrypto.subtle.generateKey(params, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  return {
    alg,
    privateKeyPem: KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: KeyObject.from(keys.publicKey).export({ type: 'spki', format: 'pem' }).toString(),
    keys,
  };
}
