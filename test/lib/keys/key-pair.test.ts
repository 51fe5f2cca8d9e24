import { createPrivateKey, createPublicKey, KeyObject, sign, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateGatewayKeyPair } from '../../../lib/keys/key-pair.js';
import { importSigningKey } from '../../../lib/keys/signing-key.js';

const dir = mkdtempSync(join(tmpdir(), 'key-pair-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('generateGatewayKeyPair', () => {
  it('makes a P-256 pair for ES256', async () => {
    const pair = await generateGatewayKeyPair('ES256');
    expect(pair.alg).toBe('ES256');
    expect(createPrivateKey(pair.privateKeyPem).asymmetricKeyDetails).toEqual({ namedCurve: 'prime256v1' });
  });

  it('makes a 2048-bit RSA pair with exponent 65537 for RS256', async () => {
    const pair = await generateGatewayKeyPair('RS256');
    expect(pair.alg).toBe('RS256');
    expect(createPublicKey(pair.publicKeyPem).asymmetricKeyDetails).toMatchObject({ modulusLength: 2048, publicExponent: 65537n });
  });

  it.each(['ES256', 'RS256'] as const)('%s: writes PKCS#8 and SPKI PEMs of one pair, the same as its Web Crypto keys', async (alg) => {
    const pair = await generateGatewayKeyPair(alg);
    expect(pair.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
    expect(pair.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);
    expect(createPublicKey(pair.privateKeyPem).equals(createPublicKey(pair.publicKeyPem))).toBe(true);
    expect(KeyObject.from(pair.keys.publicKey).equals(createPublicKey(pair.publicKeyPem))).toBe(true);
    expect(pair.keys.privateKey.extractable).toBe(true);
  });

  it.each(['ES256', 'RS256'] as const)('%s: a key written to a file signs what its public key verifies', async (alg) => {
    const pair = await generateGatewayKeyPair(alg);
    const file = join(dir, `gw-${alg}.pem`);
    writeFileSync(file, pair.privateKeyPem, { mode: 0o600 });
    const signingKey = await importSigningKey(readFileSync(file, 'utf8'), { origin: file });
    expect(signingKey.alg).toBe(alg);
    const data = Buffer.from('header.payload');
    const signature = sign('sha256', data, createPrivateKey(readFileSync(file, 'utf8')));
    expect(verify('sha256', data, pair.publicKeyPem, signature)).toBe(true);
    expect(verify('sha256', Buffer.from('header.other'), pair.publicKeyPem, signature)).toBe(false);
  });

  it('makes a new pair each time', async () => {
    const [a, b] = await Promise.all([generateGatewayKeyPair('ES256'), generateGatewayKeyPair('ES256')]);
    expect(a.publicKeyPem).not.toBe(b.publicKeyPem);
  });
});
