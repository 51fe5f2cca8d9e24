/**
 * A self-signed X.509 certificate around a gateway's public key, for the `RSA_X509_PEM` / `ES256_X509_PEM`
 * credential formats. A self-signed certificate is accepted as long as the registry holds no CA certificates; once
 * it does, new device credentials must be certificates signed by one of them (docs/protocol.md §6.3), and this
 * one will not do.
 *
 * @example
 * const pair = await generateGatewayKeyPair('ES256');
 * const pem = await selfSignedCertificate(pair, { commonName: 'gw-1', days: 365 });
 */
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { GatewayKeyAlgorithm } from './signing-key.js';

export interface SelfSignedCertificateOptions {
  /** Subject and issuer CN, usually the gateway ID. */
  commonName: string;
  /** Validity from `now`, in days. Default 365. */
  days?: number;
  now?: Date;
}

export const DEFAULT_CERTIFICATE_DAYS = 365;

export async function selfSignedCertificate(
  pair: { alg: GatewayKeyAlgorithm; keys: webcrypto.CryptoKeyPair },
  options: SelfSignedCertificateOptions,
): Promise<string> {
  const notBefore = options.now ?? new Date();
  const days = options.days ?? DEFAULT_CERTIFICATE_DAYS;
  const notAfter = new Date(notBefore.getTime() + days * 24 * 60 * 60 * 1000);
  // RFC 5280 §4.1.2.2: a positive serial of at most 20 octets; clearing the top bit keeps the DER integer positive.
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      // The JSON form, not a string DN: device IDs may contain `+`, which a string DN reads as an RDN separator.
      name: [{ CN: [options.commonName] }],
      notBefore,
      notAfter,
      signingAlgorithm:
        pair.alg === 'RS256' ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', hash: 'SHA-256' },
      keys: pair.keys,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ],
    },
    // The library's parameter is the DOM `Crypto` type, which this Node-only project does not load; Node's
    // webcrypto object is that same interface.
    webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[1],
  );
  return cert.toString('pem');
}
