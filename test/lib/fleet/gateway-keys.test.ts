import { X509Certificate, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialFromPem, gatewayKeySource, hasKey, publicKeyDer } from '../../../lib/fleet/gateway-keys.js';
import { generateGatewayKeyPair } from '../../../lib/keys/key-pair.js';
import { selfSignedCertificate } from '../../../lib/keys/self-signed-certificate.js';
import { rejectedRelayError, thrownRelayError } from '../../helpers/relay-error.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gateway-keys-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('gateway public keys', () => {
  it('detects ES256 and RS256 keys and certificates from the key itself', async () => {
    const ec = await generateGatewayKeyPair('ES256');
    const rsa = await generateGatewayKeyPair('RS256');
    expect(credentialFromPem(ec.publicKeyPem, 'ec.pem').publicKey.format).toBe('ES256_PEM');
    expect(credentialFromPem(rsa.publicKeyPem, 'rsa.pem').publicKey.format).toBe('RSA_PEM');
    // PKCS#1 RSA public keys are registered as SubjectPublicKeyInfo.
    const pkcs1 = createPublicKey(rsa.publicKeyPem).export({ type: 'pkcs1', format: 'pem' }).toString();
    const fromPkcs1 = credentialFromPem(pkcs1, 'rsa1.pem');
    expect(fromPkcs1.publicKey).toEqual({ format: 'RSA_PEM', key: rsa.publicKeyPem });
    const cert = await selfSignedCertificate(ec, { commonName: 'gw-1' });
    const fromCert = credentialFromPem(cert, 'cert.pem');
    expect(fromCert.publicKey.format).toBe('ES256_X509_PEM');
    expect(new X509Certificate(fromCert.publicKey.key).subject).toContain('gw-1');
    // The same key compares equal in any of its forms.
    expect(hasKey([{ publicKey: { format: 'ES256_X509_PEM', key: cert } }], credentialFromPem(ec.publicKeyPem, 'ec.pem'))).toBe(true);
    expect(hasKey([{ publicKey: { format: 'RSA_PEM', key: rsa.publicKeyPem } }], credentialFromPem(ec.publicKeyPem, 'ec.pem'))).toBe(false);
    expect(hasKey(undefined, fromPkcs1)).toBe(false);
  });

  it('refuses private keys without quoting them, and keys IoT Core cannot verify', async () => {
    const ec = await generateGatewayKeyPair('ES256');
    const { message } = thrownRelayError(() => credentialFromPem(ec.privateKeyPem, 'gw-1_private.pem'), 'ERR_KEY_INVALID');
    expect(message).toBe('gw-1_private.pem: holds a PRIVATE key; give the public key (the *_public.pem file `iotcore-relay keys` writes)');
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => credentialFromPem(p384, 'p384.pem')).toThrow(/ES256 needs P-256/);
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => credentialFromPem(rsa1024, 'short.pem')).toThrow(/1024 bits is too short/);
    const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => credentialFromPem(ed, 'ed.pem')).toThrow(/ed25519 keys are not accepted/);
    expect(() => credentialFromPem('hello', 'x.pem')).toThrow(/no -----BEGIN line/);
    expect(() => credentialFromPem(`${ec.publicKeyPem}${ec.publicKeyPem}`, 'two.pem')).toThrow(/2 PEM blocks/);
  });

  it('reads one shared file, or one file per gateway from a template', async () => {
    const a = await generateGatewayKeyPair('ES256');
    const b = await generateGatewayKeyPair('RS256');
    await writeFile(join(dir, 'gw-a_public.pem'), a.publicKeyPem);
    await writeFile(join(dir, 'gw-b_public.pem'), b.publicKeyPem);
    const template = gatewayKeySource(join(dir, '{gateway}_public.pem'));
    expect(template.perGateway).toBe(true);
    expect((await template.credentialFor('gw-a')).publicKey).toEqual({ format: 'ES256_PEM', key: a.publicKeyPem });
    expect((await template.credentialFor('gw-b')).publicKey.format).toBe('RSA_PEM');
    await expect(template.credentialFor('gw-c')).rejects.toThrow(/gateway public key .*gw-c_public\.pem cannot be read: ENOENT/);
    const shared = gatewayKeySource(join(dir, 'gw-a_public.pem'));
    expect(shared.perGateway).toBe(false);
    expect(await shared.credentialFor('gw-x')).toEqual(await shared.credentialFor('gw-y'));
  });
});

describe('gateway public key edge cases', () => {
  it('registers an RSA certificate as RSA_X509_PEM, and reads keys written with CRLF line ends', async () => {
    const rsa = await generateGatewayKeyPair('RS256');
    const cert = await selfSignedCertificate(rsa, { commonName: 'gw-rsa' });
    expect(credentialFromPem(cert, 'c.pem').publicKey.format).toBe('RSA_X509_PEM');
    expect(credentialFromPem(rsa.publicKeyPem.replaceAll('\n', '\r\n'), 'crlf.pem').publicKey).toEqual({ format: 'RSA_PEM', key: rsa.publicKeyPem });
  });

  it.each([
    ['a certificate that does not parse', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', 'b.pem: the certificate does not parse'],
    ['a public key that does not parse', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----', 'b.pem: the public key does not parse'],
    ['another kind of block', '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----', 'b.pem: a CERTIFICATE REQUEST block is not a public key'],
  ])('refuses %s', (_what, pem, message) => {
    expect(thrownRelayError(() => credentialFromPem(pem, 'b.pem'), 'ERR_KEY_INVALID').message).toBe(message);
  });

  it('compares nothing it cannot read', () => {
    expect(publicKeyDer(undefined)).toBeUndefined();
    expect(publicKeyDer({ publicKey: { key: 'not a key' } })).toBeUndefined();
    expect(publicKeyDer({ publicKey: {} })).toBeUndefined();
  });

  it('refuses an empty path, names the file per gateway, and reads each file once', async () => {
    expect(thrownRelayError(() => gatewayKeySource('  '), 'ERR_CONFIG').message).toBe('the gateway public key path is empty');
    const source = gatewayKeySource(join(dir, 'once-{gateway}.pem'));
    expect(source.pathFor('gw-9')).toBe(join(dir, 'once-gw-9.pem'));
    const pair = await generateGatewayKeyPair('ES256');
    await writeFile(join(dir, 'once-gw-9.pem'), pair.publicKeyPem);
    const first = await source.credentialFor('gw-9');
    await writeFile(join(dir, 'once-gw-9.pem'), 'replaced');
    expect(await source.credentialFor('gw-9')).toBe(first);
    expect((await rejectedRelayError(gatewayKeySource(join(dir, 'bad.pem')).credentialFor('gw-1'), 'ERR_CONFIG')).message).toMatch(/cannot be read: ENOENT$/);
  });
});
