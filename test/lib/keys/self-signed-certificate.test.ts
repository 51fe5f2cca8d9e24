import { X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { describe, expect, it } from 'vitest';
import { generateGatewayKeyPair } from '../../../lib/keys/key-pair.js';
import { DEFAULT_CERTIFICATE_DAYS, selfSignedCertificate } from '../../../lib/keys/self-signed-certificate.js';

const DAY_MS = 24 * 60 * 60 * 1000;

describe('selfSignedCertificate', () => {
  it.each([
    ['ES256', 'ECDSA'],
    ['RS256', 'RSASSA-PKCS1-v1_5'],
  ] as const)('%s: a certificate of the pair, signed by it with SHA-256, for its common name', async (alg, signatureName) => {
    const pair = await generateGatewayKeyPair(alg);
    const pem = await selfSignedCertificate(pair, { commonName: 'gw-1' });
    const cert = new X509Certificate(pem);
    expect(cert.subject).toBe('CN=gw-1');
    expect(cert.issuer).toBe('CN=gw-1');
    expect(cert.publicKey.export({ type: 'spki', format: 'pem' })).toBe(pair.publicKeyPem);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(new x509.X509Certificate(pem).signatureAlgorithm).toMatchObject({ name: signatureName, hash: { name: 'SHA-256' } });
  });

  it('is no CA, and signs only: both extensions critical', async () => {
    const cert = new x509.X509Certificate(await selfSignedCertificate(await generateGatewayKeyPair('ES256'), { commonName: 'gw-1' }));
    const constraints = cert.getExtension(x509.BasicConstraintsExtension);
    expect(constraints).toMatchObject({ ca: false, critical: true });
    const usage = cert.getExtension(x509.KeyUsagesExtension);
    expect(usage).toMatchObject({ usages: x509.KeyUsageFlags.digitalSignature, critical: true });
    expect(new X509Certificate(cert.toString('pem')).ca).toBe(false);
  });

  it('is valid from now for a year by default, or from the time and for the days given', async () => {
    const pair = await generateGatewayKeyPair('ES256');
    const before = Math.floor(Date.now() / 1000) * 1000;
    const byDefault = new x509.X509Certificate(await selfSignedCertificate(pair, { commonName: 'gw-1' }));
    expect(byDefault.notBefore.getTime()).toBeGreaterThanOrEqual(before);
    expect(byDefault.notBefore.getTime()).toBeLessThanOrEqual(Date.now());
    expect(byDefault.notAfter.getTime() - byDefault.notBefore.getTime()).toBe(DEFAULT_CERTIFICATE_DAYS * DAY_MS);

    const now = new Date('2030-01-01T00:00:00Z');
    const given = new x509.X509Certificate(await selfSignedCertificate(pair, { commonName: 'gw-1', now, days: 30 }));
    expect(given.notBefore.toISOString()).toBe('2030-01-01T00:00:00.000Z');
    expect(given.notAfter.toISOString()).toBe('2030-01-31T00:00:00.000Z');
  });

  it('keeps a common name with a + whole, as one attribute', async () => {
    const cert = new x509.X509Certificate(await selfSignedCertificate(await generateGatewayKeyPair('ES256'), { commonName: 'gw+a=b' }));
    expect(cert.subjectName.getField('CN')).toEqual(['gw+a=b']);
  });

  it('gives each certificate a positive serial number of 16 octets at most', async () => {
    const pair = await generateGatewayKeyPair('ES256');
    const serials = await Promise.all(Array.from({ length: 8 }, async () => new X509Certificate(await selfSignedCertificate(pair, { commonName: 'gw-1' })).serialNumber));
    expect(new Set(serials).size).toBe(8);
    for (const serial of serials) {
      // 16 random octets with the top bit cleared: a positive integer below 2^127, which DER holds in 16 octets.
      expect(BigInt(`0x${serial}`)).toBeGreaterThan(0n);
      expect(BigInt(`0x${serial}`)).toBeLessThan(2n ** 127n);
    }
  });
});
