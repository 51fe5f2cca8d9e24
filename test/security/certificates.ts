/**
 * Certificates a bridge should never be trusted with: issued for another host name, expired, or chained to a CA
 * the client does not know. ECDSA P-256 throughout (fast to make). Each is written to files so the emulator can
 * serve it (`tlsFiles`).
 *
 * @example
 * const ca = await makeCa();
 * const leaf = await issueServerCertificate(ca, { dns: ['bridge.example.invalid'] });
 * const files = await writeTlsFiles(dir, 'wrong-host', ca, leaf);
 * const emulator = await startEmulator({ tlsFiles: files, ... });
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;
const HOUR_MS = 60 * 60 * 1000;
// The library types its crypto parameter as the DOM `Crypto`; Node's webcrypto implements it.
const crypto = webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.create>[1];

export interface TestCa {
  certPem: string;
  cert: x509.X509Certificate;
  keys: webcrypto.CryptoKeyPair;
}

export interface ServerCertificate {
  certPem: string;
  keyPem: string;
}

const serial = (): string => {
  const s = randomBytes(16);
  s[0] = s[0]! & 0x7f;
  return s.toString('hex');
};

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key)).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${(der.match(/.{1,64}/g) ?? []).join('\n')}\n-----END PRIVATE KEY-----\n`;
}

export async function makeCa(name = 'untrusted test CA'): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial(),
      name: [{ CN: [name] }],
      notBefore: new Date(Date.now() - 24 * HOUR_MS),
      notAfter: new Date(Date.now() + 24 * HOUR_MS),
      signingAlgorithm: ECDSA_SHA256,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    },
    crypto,
  );
  return { certPem: cert.toString('pem'), cert, keys };
}

export interface ServerCertificateOptions {
  dns?: string[];
  ip?: string[];
  notBefore?: Date;
  notAfter?: Date;
}

/** A server certificate signed by `ca`, valid for exactly the names given. */
export async function issueServerCertificate(ca: TestCa, o: ServerCertificateOptions): Promise<ServerCertificate> {
  const keys = (await webcrypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const names = [...(o.dns ?? []).map((value) => ({ type: 'dns' as const, value })), ...(o.ip ?? []).map((value) => ({ type: 'ip' as const, value }))];
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: [{ CN: [o.dns?.[0] ?? o.ip?.[0] ?? 'server'] }],
      issuer: ca.cert.subject,
      notBefore: o.notBefore ?? new Date(Date.now() - HOUR_MS),
      notAfter: o.notAfter ?? new Date(Date.now() + 24 * HOUR_MS),
      signingAlgorithm: ECDSA_SHA256,
      publicKey: keys.publicKey,
      signingKey: ca.keys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(names),
      ],
    },
    crypto,
  );
  return { certPem: cert.toString('pem'), keyPem: await pkcs8Pem(keys.privateKey) };
}

/** Writes a certificate, its key and its CA to `dir`; the paths are what the emulator's `tlsFiles` takes. */
export async function writeTlsFiles(dir: string, name: string, ca: TestCa, leaf: ServerCertificate): Promise<{ cert: string; key: string; ca: string }> {
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`), ca: join(dir, `${name}-ca.crt`) };
  await writeFile(files.cert, leaf.certPem);
  await writeFile(files.key, leaf.keyPem, { mode: 0o600 });
  await writeFile(files.ca, ca.certPem);
  return files;
}
