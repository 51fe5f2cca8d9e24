import { X509Certificate, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDeviceList, readDeviceList } from '../../../lib/fleet/device-list.js';
import { credentialFromPem, gatewayKeySource, hasKey } from '../../../lib/fleet/gateway-keys.js';
import { generateGatewayKeyPair } from '../../../lib/keys/key-pair.js';
import { selfSignedCertificate } from '../../../lib/keys/self-signed-certificate.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleet-inputs-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('device list files', () => {
  it('reads one ID a line, skipping blank lines and comments, or a JSON array', () => {
    expect(parseDeviceList('\uFEFFpump-0001\r\n\n  pump-0002  # the spare\n# retired:\n#pump-0003\npump-0004', 'd.txt')).toEqual(['pump-0001', 'pump-0002', 'pump-0004']);
    expect(parseDeviceList(' ["pump-0001", "pump-0002"]\n', 'd.json')).toEqual(['pump-0001', 'pump-0002']);
  });

  it('names the line or index of every bad or repeated ID', () => {
    expect(() => parseDeviceList('pump-0001\npump/2\npump-0001\ngoog-x\n', 'd.txt')).toThrow(
      /d\.txt: 3 bad entries:\n {2}line 2: device ID "pump\/2" must start with a letter.*\n {2}line 3: pump-0001 is listed twice \(first at line 1\)\n {2}line 4: device ID "goog-x" must not start with "goog"/,
    );
    expect(() => parseDeviceList('["ok-1", 42, null]', 'd.json')).toThrow(/\[1\]: device ID 42 must be a string\n {2}\[2\]: device ID null must be a string/);
    expect(() => parseDeviceList('[1, 2', 'd.json')).toThrow(/d\.json: starts with \[ but is not a JSON array/);
    expect(() => parseDeviceList('{"a": 1}', 'd.json')).toThrow(/bad entr/);
    expect(() => parseDeviceList('# nothing\n\n', 'd.txt')).toThrow(/lists no device/);
  });

  it('sums up long lists of problems', () => {
    const lines = Array.from({ length: 25 }, (_, i) => `bad/${i}`).join('\n');
    const message = (() => {
      try {
        parseDeviceList(lines, 'd.txt');
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    })();
    expect(message.split('\n')).toHaveLength(12);
    expect(message).toMatch(/… and 15 more$/);
  });

  it('says which file cannot be read', async () => {
    await expect(readDeviceList(join(dir, 'missing.txt'))).rejects.toThrow(/device list .*missing\.txt cannot be read: ENOENT/);
  });
});

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
    let message = '';
    try {
      credentialFromPem(ec.privateKeyPem, 'gw-1_private.pem');
    } catch (e) {
      message = (e as Error).message;
    }
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
