import { createPrivateKey, generateKeyPairSync, webcrypto } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { RelayError } from '../../../lib/errors.js';
import { generateGatewayKeyPair } from '../../../lib/keys/key-pair.js';
import { selfSignedCertificate } from '../../../lib/keys/self-signed-certificate.js';
import { importSigningKey } from '../../../lib/keys/signing-key.js';
import { ecPems, expectNoKeyMaterial, rejection, rsaPems, type EcPems, type RsaPems } from './pem-factory.js';

const origin = 'test secret, entry gw-1';

let rsa: RsaPems;
let ec: EcPems;

beforeAll(async () => {
  [rsa, ec] = await Promise.all([rsaPems(), ecPems()]);
});

describe('importSigningKey: accepted PEM forms', () => {
  it.each([
    ['RSA PKCS#8 (openssl genpkey)', () => rsa.pkcs8, 'RS256'],
    ['RSA PKCS#1 (openssl genrsa -traditional)', () => rsa.pkcs1, 'RS256'],
    ['EC PKCS#8 (openssl genpkey)', () => ec.pkcs8, 'ES256'],
    ['EC SEC1 (openssl ecparam -genkey -noout)', () => ec.sec1, 'ES256'],
    ['EC SEC1 after an EC PARAMETERS block (openssl ecparam -genkey)', () => ec.sec1WithParameters, 'ES256'],
  ] as const)('%s is %s', async (_form, pem, alg) => {
    const result = await importSigningKey(pem(), { origin });
    expect(result.alg).toBe(alg);
    const key = result.key as webcrypto.CryptoKey;
    expect(key.type).toBe('private');
    expect(key.extractable).toBe(false);
    expect(key.usages).toEqual(['sign']);
    expect(key.algorithm.name).toBe(alg === 'RS256' ? 'RSASSA-PKCS1-v1_5' : 'ECDSA');
  });

  it('signs with the very key of the PEM (the public key verifies)', async () => {
    for (const [pem, publicKey, params] of [
      [rsa.pkcs1, rsa.publicKey, { name: 'RSASSA-PKCS1-v1_5' }],
      [ec.sec1, ec.publicKey, { name: 'ECDSA', hash: 'SHA-256' }],
    ] as const) {
      const { key } = await importSigningKey(pem, { origin });
      const data = Buffer.from('attach pump-0042');
      const signature = await webcrypto.subtle.sign(params, key as webcrypto.CryptoKey, data);
      const verifyParams =
        params.name === 'ECDSA' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
      const verifier = await webcrypto.subtle.importKey(
        'spki',
        publicKey.export({ type: 'spki', format: 'der' }),
        verifyParams,
        false,
        ['verify'],
      );
      expect(await webcrypto.subtle.verify(params, verifier, signature, data)).toBe(true);
    }
  });

  it('repairs a PEM whose line breaks arrived as literal \\n, and CRLF line ends', async () => {
    const escaped = ec.pkcs8.trim().replaceAll('\n', '\\n');
    expect(escaped).not.toContain('\n');
    expect((await importSigningKey(escaped, { origin })).alg).toBe('ES256');
    expect((await importSigningKey(rsa.pkcs8.replaceAll('\n', '\r\n'), { origin })).alg).toBe('RS256');
  });

  it('accepts a declared algorithm that matches the key', async () => {
    expect((await importSigningKey(rsa.pkcs8, { origin, declaredAlgorithm: 'RS256' })).alg).toBe('RS256');
    expect((await importSigningKey(ec.sec1, { origin, declaredAlgorithm: 'ES256' })).alg).toBe('ES256');
  });
});

describe('importSigningKey: container-life cache', () => {
  it('returns the same imported key for the same PEM text, and a new one for a different PEM', async () => {
    const first = await importSigningKey(ec.pkcs8, { origin });
    const again = await importSigningKey(ec.pkcs8, { origin: 'somewhere else' });
    expect(again.key).toBe(first.key);

    const rotated = await ecPems();
    const next = await importSigningKey(rotated.pkcs8, { origin });
    expect(next.key).not.toBe(first.key);
  });

  it('shares one import between concurrent callers', async () => {
    const fresh = await ecPems();
    const keys = await Promise.all(Array.from({ length: 5 }, () => importSigningKey(fresh.sec1, { origin })));
    for (const k of keys) expect(k.key).toBe(keys[0]!.key);
  });

  it('checks the declared algorithm on every call, cached key or not', async () => {
    await importSigningKey(ec.pkcs8, { origin });
    await expect(importSigningKey(ec.pkcs8, { origin, declaredAlgorithm: 'RS256' })).rejects.toMatchObject({
      code: 'ERR_KEY_INVALID',
    });
  });
});

describe('importSigningKey: refused keys', () => {
  async function refusal(pem: string, declaredAlgorithm?: unknown): Promise<RelayError> {
    const e = await rejection(() => importSigningKey(pem, { origin, declaredAlgorithm }));
    expect(e).toBeInstanceOf(RelayError);
    expect((e as RelayError).code).toBe('ERR_KEY_INVALID');
    expect((e as RelayError).message).toContain(origin);
    expectNoKeyMaterial(e, pem);
    return e as RelayError;
  }

  it('refuses an EC key on P-384, naming the curve ES256 needs', async () => {
    const p384 = await ecPems('secp384r1');
    for (const pem of [p384.pkcs8, p384.sec1, p384.sec1WithParameters]) {
      const e = await refusal(pem);
      expect(e.message).toContain('secp384r1');
      expect(e.message).toContain('P-256 (prime256v1)');
    }
  });

  it('refuses an RSA key shorter than 2048 bits', async () => {
    const short = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    const e = await refusal(short);
    expect(e.message).toContain('1024 bits');
    expect(e.message).toContain('2048');
  });

  it('refuses key types the bridge cannot verify (Ed25519)', async () => {
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const e = await refusal(ed);
    expect(e.message).toContain('ed25519');
    expect(e.message).toContain('RS256');
  });

  it('refuses an algorithm that contradicts the key, either way', async () => {
    const e1 = await refusal(rsa.pkcs8, 'ES256');
    expect(e1.message).toContain('ES256 was declared, but the key is an RSA key (RS256)');
    const e2 = await refusal(ec.sec1, 'RS256');
    expect(e2.message).toContain('RS256 was declared, but the key is a P-256 EC key (ES256)');
  });

  it('refuses an algorithm the bridge does not know, before looking at the key', async () => {
    for (const declared of ['HS256', 'es256', 'ES384', 42, null]) {
      expect((await refusal(ec.pkcs8, declared)).message).toContain('algorithm must be RS256 or ES256');
    }
  });

  it('refuses text that is no PEM at all', async () => {
    expect((await refusal('not a key')).message).toContain('not a PEM private key');
  });

  it('refuses a public key or a certificate given in place of the private key', async () => {
    const publicPem = ec.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect((await refusal(publicPem)).message).toContain('PUBLIC KEY, not a private key');
    const pair = await generateGatewayKeyPair('ES256');
    const certificate = await selfSignedCertificate(pair, { commonName: 'gw-1' });
    expect((await refusal(certificate)).message).toContain('CERTIFICATE, not a private key');
  });

  it('refuses an encrypted PKCS#8 key with a hint', async () => {
    const encrypted = createPrivateKey(ec.pkcs8)
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pass-phrase' })
      .toString();
    expect((await refusal(encrypted)).message).toContain('encrypted private key');
  });

  it('refuses a damaged PEM without echoing any of it', async () => {
    const lines = ec.pkcs8.split('\n');
    // Keep the labels, break the DER inside: OpenSSL cannot decode it.
    const damaged = [lines[0], lines[1]!.slice(0, 20), lines.at(-2)].join('\n');
    const e = await refusal(damaged);
    expect(e.message).toContain('could not be decoded');
    expect(e.cause).toBeUndefined();
  });
});
