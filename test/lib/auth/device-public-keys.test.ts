import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DevicePublicKeys, importDevicePublicKey, MAX_KEYS_PER_DEVICE, parseDeviceKeyDocument } from '../../../lib/auth/device-public-keys.js';
import { fileTextSource } from '../../../lib/auth/secret-text-source.js';
import { generateGatewayKeyPair } from '../../../lib/keys/key-pair.js';
import { selfSignedCertificate } from '../../../lib/keys/self-signed-certificate.js';
import { rejectedRelayError, thrownRelayError } from '../../helpers/relay-error.js';
import { ecDevice, keyDocument, rsaDevice } from './device-credentials.js';

const pump = ecDevice('pump-0042');
const valve = rsaDevice('valve-0007');
const spki = (key: ReturnType<typeof generateKeyPairSync>['publicKey']): string => key.export({ type: 'spki', format: 'pem' }).toString();

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'device-public-keys-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Keys read from a file holding `text`. */
function keysFrom(name: string, text: string): DevicePublicKeys {
  writeFileSync(join(dir, name), text);
  return new DevicePublicKeys(fileTextSource(join(dir, name)));
}

describe('parseDeviceKeyDocument', () => {
  it('maps each device to its PEMs, or to why its entry is unusable', () => {
    const doc = parseDeviceKeyDocument(
      JSON.stringify({ 'pump-0042': [pump.publicKeyPem], 'broken-1': 'a PEM', 'many-1': Array(MAX_KEYS_PER_DEVICE + 1).fill(pump.publicKeyPem), 'mixed-1': ['a', 2] }),
      'file k.json',
    );
    expect(doc.get('pump-0042')).toEqual({ pems: [pump.publicKeyPem] });
    expect(doc.get('broken-1')).toEqual({ problem: 'the entry must be an array of PEM strings' });
    expect(doc.get('mixed-1')).toEqual({ problem: 'the entry must be an array of PEM strings' });
    expect(doc.get('many-1')).toEqual({ problem: '4 keys; a device has at most 3' });
  });

  it('skips keys that are no device ID: no request can ask for them', () => {
    const doc = parseDeviceKeyDocument(JSON.stringify({ 'goog-1': [], '1-starts-with-digit': [], 'ok-1': [] }), 'o');
    expect([...doc.keys()]).toEqual(['ok-1']);
  });

  it('refuses a document that is not a JSON object, without quoting it', () => {
    expect(thrownRelayError(() => parseDeviceKeyDocument('["-----BEGIN PUBLIC KEY-----"', 'file k.json'), 'ERR_KEY_INVALID').message).toBe('file k.json: the device key document is not valid JSON');
    for (const text of ['[]', 'null', '"x"']) {
      expect(thrownRelayError(() => parseDeviceKeyDocument(text, 'o'), 'ERR_KEY_INVALID').message).toBe('o: the device key document must be a JSON object of device IDs');
    }
  });
});

describe('importDevicePublicKey', () => {
  it('takes an ES256 or RS256 public key, in SPKI, PKCS#1 or a certificate', async () => {
    expect(importDevicePublicKey(pump.publicKeyPem, 'o').alg).toBe('ES256');
    expect(importDevicePublicKey(valve.publicKeyPem, 'o').alg).toBe('RS256');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expect(importDevicePublicKey(rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString(), 'o').alg).toBe('RS256');
    const pair = await generateGatewayKeyPair('ES256');
    const fromCertificate = importDevicePublicKey(await selfSignedCertificate(pair, { commonName: 'pump-0042' }), 'o');
    expect(fromCertificate.alg).toBe('ES256');
    expect(fromCertificate.key.equals(createPublicKey(pair.publicKeyPem))).toBe(true);
  });

  it('imports the same PEM once, whatever whitespace surrounds it', () => {
    expect(importDevicePublicKey(`\n  ${pump.publicKeyPem}\n\n`, 'o')).toBe(importDevicePublicKey(pump.publicKeyPem, 'o'));
  });

  it.each([
    ['text that is no PEM', () => 'hello', 'o: not a PEM (no -----BEGIN line)'],
    ['a private key', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), "o: is a private key; register the device's public key only"],
    ['a PEM that does not decode', () => '-----BEGIN PUBLIC KEY-----\nbroken\n-----END PUBLIC KEY-----', 'o: the PEM public key could not be decoded'],
    ['another kind of PEM', () => '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----', 'o: a PEM of type CERTIFICATE REQUEST; expected PUBLIC KEY or CERTIFICATE'],
    ['an RSA key under 2048 bits', () => spki(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey), 'o: RSA key of 1024 bits; at least 2048 are needed'],
    ['a P-384 key', () => spki(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey), 'o: an EC key on secp384r1 cannot verify RS256 or ES256; use RSA or P-256'],
    ['an Ed25519 key', () => spki(generateKeyPairSync('ed25519').publicKey), 'o: an ed25519 key cannot verify RS256 or ES256; use RSA or P-256'],
  ])('refuses %s', (_what, pem, message) => {
    expect(thrownRelayError(() => importDevicePublicKey(pem(), 'o'), 'ERR_KEY_INVALID').message).toBe(message);
  });
});

describe('DevicePublicKeys', () => {
  it("reads a device's keys, and none for a device the document does not name", async () => {
    const keys = keysFrom('keys.json', keyDocument([pump, valve]));
    expect((await keys.keysFor('pump-0042')).map((k) => k.alg)).toEqual(['ES256']);
    expect((await keys.keysFor('valve-0007')).map((k) => k.alg)).toEqual(['RS256']);
    await expect(keys.keysFor('nobody-1')).resolves.toEqual([]);
    expect(keys.origin).toBe(`file ${join(dir, 'keys.json')}`);
  });

  it('keeps a bad entry of the key document to its own device', async () => {
    const doc = keyDocument([pump], { 'broken-1': 'not an array', 'private-1': [generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()], 'many-1': [pump.publicKeyPem, pump.publicKeyPem, pump.publicKeyPem, pump.publicKeyPem] });
    const keys = keysFrom('mixed.json', doc);
    const origin = `file ${join(dir, 'mixed.json')}`;

    await expect(keys.keysFor('pump-0042')).resolves.toHaveLength(1);
    expect((await rejectedRelayError(keys.keysFor('broken-1'), 'ERR_KEY_INVALID')).message).toBe(`${origin}, device broken-1: the entry must be an array of PEM strings`);
    expect((await rejectedRelayError(keys.keysFor('private-1'), 'ERR_KEY_INVALID')).message).toBe(`${origin}, device private-1, key 0: is a private key; register the device's public key only`);
    expect((await rejectedRelayError(keys.keysFor('many-1'), 'ERR_KEY_INVALID')).message).toMatch(/at most 3$/);
    await expect(keys.keysFor('nobody-1')).resolves.toEqual([]);
  });

  it('skips an unusable key next to a good one, so a mistyped new key does not lock the device out; with no good one it names the first fault', async () => {
    const broken = '-----BEGIN PUBLIC KEY-----\nbroken\n-----END PUBLIC KEY-----';
    const keys = keysFrom('rotation.json', JSON.stringify({ 'pump-0042': [broken, pump.publicKeyPem], 'valve-0007': ['junk', broken] }));
    expect((await keys.keysFor('pump-0042')).map((k) => k.alg)).toEqual(['ES256']);
    expect((await rejectedRelayError(keys.keysFor('valve-0007'), 'ERR_KEY_INVALID')).message).toMatch(/device valve-0007, key 0: not a PEM/);
  });

  it('reads the document again when its text changed', async () => {
    const file = join(dir, 'changing.json');
    writeFileSync(file, keyDocument([pump]));
    const keys = new DevicePublicKeys(fileTextSource(file, { maxAgeSeconds: 0 }));
    await expect(keys.keysFor('valve-0007')).resolves.toEqual([]);
    writeFileSync(file, keyDocument([pump, valve]));
    await expect(keys.keysFor('valve-0007')).resolves.toHaveLength(1);
  });

  it('passes on what the source throws', async () => {
    const keys = new DevicePublicKeys(fileTextSource(join(dir, 'absent.json')));
    expect((await rejectedRelayError(keys.keysFor('pump-0042'), 'ERR_CONFIG')).message).toContain('ENOENT');
  });

  it('refuses a document that is not a JSON object, without quoting it', async () => {
    const keys = keysFrom('bad.json', '["-----BEGIN PUBLIC KEY-----"');
    await expect(keys.keysFor('pump-0042')).rejects.toMatchObject({ code: 'ERR_KEY_INVALID', message: `file ${join(dir, 'bad.json')}: the device key document is not valid JSON` });
  });
});
