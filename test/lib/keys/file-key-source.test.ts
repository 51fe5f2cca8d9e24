import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayError } from '../../../lib/errors.js';
import { signGatewayJwt } from '../../../lib/jwt.js';
import { FileKeySource } from '../../../lib/keys/file-key-source.js';
import type { SigningKey } from '../../../lib/keys/signing-key.js';
import { ecPems, expectNoKeyMaterial, rejection, rsaPems, type EcPems, type RsaPems } from './pem-factory.js';

let dir: string;
let ec: EcPems;
let ecOther: EcPems;
let rsa: RsaPems;

beforeAll(async () => {
  [dir, ec, ecOther, rsa] = await Promise.all([
    mkdtemp(join(tmpdir(), 'iotcore-relay-keyfile-')),
    ecPems(),
    ecPems(),
    rsaPems(),
  ]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function signedBy(key: SigningKey, publicKey: EcPems['publicKey']): Promise<boolean> {
  const token = await signGatewayJwt({ ...key, project: 'demo-project' });
  return jwtVerify(token, publicKey).then(
    () => true,
    () => false,
  );
}

describe('FileKeySource', () => {
  it('reads a PEM file (SEC1, as openssl ecparam writes it)', async () => {
    const path = join(dir, 'ec_private.pem');
    await writeFile(path, ec.sec1WithParameters);
    const key = await new FileKeySource(path).signingKey('gw-1');
    expect(key.alg).toBe('ES256');
    expect(await signedBy(key, ec.publicKey)).toBe(true);
  });

  it('reads a JSON file shaped like the secret, per gateway', async () => {
    const path = join(dir, 'gateway-keys.json');
    await writeFile(path, JSON.stringify({ 'gw-1': { privateKey: rsa.pkcs1, algorithm: 'RS256' }, 'gw-2': ec.pkcs8 }));
    const source = new FileKeySource(path);
    const gw1 = await source.signingKey('gw-1');
    expect(gw1.alg).toBe('RS256');
    expect(await signedBy(gw1, rsa.publicKey)).toBe(true);
    expect(await signedBy(await source.signingKey('gw-2'), ec.publicKey)).toBe(true);
    await expect(source.signingKey('gw-3')).rejects.toMatchObject({
      code: 'ERR_KEY_INVALID',
      message: `key file ${path}: no key for gateway gw-3 (the document has entries for gw-1, gw-2)`,
    });
  });

  it('reads the file once: a later change is not seen by the same source', async () => {
    const path = join(dir, 'read-once.pem');
    await writeFile(path, ec.pkcs8);
    const source = new FileKeySource(path);
    await source.signingKey('gw-1');
    await writeFile(path, ecOther.pkcs8);
    expect(await signedBy(await source.signingKey('gw-1'), ec.publicKey)).toBe(true);
    expect(await signedBy(await new FileKeySource(path).signingKey('gw-1'), ecOther.publicKey)).toBe(true);
  });

  it('reports a missing file as ERR_KEY_UNAVAILABLE, and reads it once it exists', async () => {
    const path = join(dir, 'later.pem');
    const source = new FileKeySource(path);
    const e = await rejection(() => source.signingKey('gw-1'));
    expect(e).toBeInstanceOf(RelayError);
    expect(e).toMatchObject({ code: 'ERR_KEY_UNAVAILABLE', message: `key file ${path} could not be read (ENOENT)` });
    await writeFile(path, ec.pkcs8);
    expect((await source.signingKey('gw-1')).alg).toBe('ES256');
  });

  it('reports a file holding no usable key as ERR_KEY_INVALID without its content', async () => {
    const p384 = await ecPems('secp384r1');
    const path = join(dir, 'p384.pem');
    await writeFile(path, p384.pkcs8);
    const e = await rejection(() => new FileKeySource(path).signingKey('gw-1'));
    expect(e).toMatchObject({ code: 'ERR_KEY_INVALID' });
    expect((e as Error).message).toContain(`key file ${path}`);
    expectNoKeyMaterial(e, p384.pkcs8);
  });
});

describe('FileKeySource: one file per gateway ({gateway} in the path)', () => {
  it('reads the file of the gateway asked for, and only that one', async () => {
    const sub = await mkdtemp(join(dir, 'per-gateway-'));
    await writeFile(join(sub, 'gw-001_private.pem'), ec.pkcs8);
    await writeFile(join(sub, 'gw-002_private.pem'), ecOther.pkcs8);
    const source = new FileKeySource(join(sub, '{gateway}_private.pem'));
    expect(await signedBy(await source.signingKey('gw-001'), ec.publicKey)).toBe(true);
    expect(await signedBy(await source.signingKey('gw-002'), ecOther.publicKey)).toBe(true);
    const e = await rejection(() => source.signingKey('gw-003'));
    expect(e).toMatchObject({ code: 'ERR_KEY_UNAVAILABLE' });
    expect((e as Error).message).toContain(join(sub, 'gw-003_private.pem'));
  });

  it('refuses any other brace in the path as ERR_CONFIG', () => {
    expect(() => new FileKeySource(join(dir, '{gw}.pem'))).toThrow(/may hold only the placeholder \{gateway\}/);
  });
});
