/**
 * TLS material of the emulator. The real bridge serves TLS 1.2 or later only (docs/protocol.md §1.1), so does
 * this one. Unless certificate files are given, each start makes a throwaway CA and a server certificate for
 * `localhost` and `127.0.0.1` signed by it; clients trust that CA explicitly (it is written to a file) and keep
 * full verification on, as they must against ClearBlade.
 *
 * @example
 * const material = await generateTlsMaterial();
 * tls.createServer({ ...serverOptions(material) }, onSocket);
 * fs.writeFileSync('ca.pem', material.caPem);
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { TlsOptions } from 'node:tls';
import * as x509 from '@peculiar/x509';

export interface TlsMaterial {
  /** The server certificate chain, PEM. */
  certPem: string;
  /** The server's private key, PKCS#8 PEM. Never logged, never written out. */
  keyPem: string;
  /** The CA clients should trust, PEM; undefined when files were given without one. */
  caPem: string | undefined;
}

/** Names the generated server certificate is valid for: what a local client dials. */
export const SERVER_NAMES = { dns: ['localhost'], ip: ['127.0.0.1', '::1'] } as const;

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;

// The library types its crypto parameter as the DOM `Crypto`, which this Node-only project does not load; Node's
// webcrypto object implements that interface.
const crypto = webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.create>[1];

/** RFC 5280 §4.1.2.2: a positive serial of at most 20 octets; clearing the top bit keeps the DER integer positive. */
function serialNumber(): string {
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  return serial.toString('hex');
}

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/** A fresh CA and a server certificate signed by it, both ECDSA P-256, valid from an hour ago for 30 days. */
export async function generateTlsMaterial(now = new Date()): Promise<TlsMaterial> {
  // An hour of slack covers a client whose clock is a little behind.
  const notBefore = new Date(now.getTime() - 60 * 60 * 1000);
  const notAfter = new Date(now.getTime() + 30 * DAY_MS);
  const subtle = webcrypto.subtle;

  const caKeys = (await subtle.generateKey(ECDSA_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      name: [{ CN: ['iotcore-relay emulator CA'] }],
      notBefore,
      notAfter,
      signingAlgorithm: ECDSA_SHA256,
      keys: caKeys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );

  const serverKeys = (await subtle.generateKey(ECDSA_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const serverCert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: [{ CN: ['localhost'] }],
      issuer: caCert.subject,
      notBefore,
      notAfter,
      signingAlgorithm: ECDSA_SHA256,
      publicKey: serverKeys.publicKey,
      signingKey: caKeys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension([
          ...SERVER_NAMES.dns.map((value) => ({ type: 'dns' as const, value })),
          ...SERVER_NAMES.ip.map((value) => ({ type: 'ip' as const, value })),
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );

  return {
    certPem: serverCert.toString('pem'),
    keyPem: await pkcs8Pem(serverKeys.privateKey),
    caPem: caCert.toString('pem'),
  };
}

/** Reads a certificate chain, its key and optionally the CA to hand to clients. */
export async function readTlsMaterial(files: { cert: string; key: string; ca?: string }): Promise<TlsMaterial> {
  const [certPem, keyPem, caPem] = await Promise.all([
    readFile(files.cert, 'utf8'),
    readFile(files.key, 'utf8'),
    files.ca === undefined ? Promise.resolve(undefined) : readFile(files.ca, 'utf8'),
  ]);
  return { certPem, keyPem, caPem };
}

/** Server options: TLS 1.2 is the floor the bridge documents ([CB-REQ]), no client certificates. */
export function serverOptions(material: TlsMaterial): TlsOptions {
  return { cert: material.certPem, key: material.keyPem, minVersion: 'TLSv1.2' };
}
