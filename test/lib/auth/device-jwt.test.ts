import { generateKeyPairSync, KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deviceNamedInJwt, verifyDeviceJwt } from '../../../lib/auth/device-jwt.js';
import { importDevicePublicKey, type DevicePublicKey } from '../../../lib/auth/device-public-keys.js';
import type { RelayErrorCode } from '../../../lib/errors.js';
import { generateGatewayKeyPair } from '../../../lib/keys/key-pair.js';
import { selfSignedCertificate } from '../../../lib/keys/self-signed-certificate.js';
import { deviceJwt, ecDevice, nowSeconds, PROJECT, rsaDevice } from './device-credentials.js';
import { rejectedRelayError } from '../../helpers/relay-error.js';

const pump = ecDevice('pump-0042');
const other = ecDevice('pump-0043');
const rsa = rsaDevice('meter-0001');
const keysOf = (...pems: string[]): DevicePublicKey[] => pems.map((p, i) => importDevicePublicKey(p, `test key ${i}`));
const verify = (token: string, keys = keysOf(pump.publicKeyPem), now?: Date) =>
  verifyDeviceJwt(token, { project: PROJECT, deviceId: 'pump-0042', keys, ...(now ? { now } : {}) });

async function refusal(p: Promise<unknown>): Promise<{ code: RelayErrorCode; message: string }> {
  const { code, message } = await rejectedRelayError(p);
  return { code, message };
}

describe('verifyDeviceJwt: accepted tokens', () => {
  it('accepts an ES256 token of the device and returns its claims', async () => {
    const iat = nowSeconds();
    const claims = await verify(await deviceJwt(pump, { iat, exp: iat + 3600 }));

    expect(claims).toEqual({ aud: PROJECT, iat, exp: iat + 3600 });
  });

  it('accepts an RS256 token against an RSA key', async () => {
    const token = await deviceJwt(rsa);

    await expect(verifyDeviceJwt(token, { project: PROJECT, deviceId: rsa.id, keys: keysOf(rsa.publicKeyPem) })).resolves.toMatchObject({ aud: PROJECT });
  });

  it('accepts a key registered as an X.509 certificate (ES256_X509_PEM)', async () => {
    const pair = await generateGatewayKeyPair('ES256');
    const cert = await selfSignedCertificate(pair, { commonName: 'pump-0042' });
    const signer = { ...pump, privateKey: KeyObject.from(pair.keys.privateKey) };

    await expect(verify(await deviceJwt(signer), keysOf(cert))).resolves.toMatchObject({ aud: PROJECT });
  });

  it('tries each registered key: the second one may be the signer (key rotation)', async () => {
    await expect(verify(await deviceJwt(pump), keysOf(other.publicKeyPem, rsa.publicKeyPem, pump.publicKeyPem))).resolves.toBeDefined();
  });

  it('allows 10 minutes of clock skew on iat and exp, and ignores nbf as IoT Core does', async () => {
    const now = nowSeconds();
    const early = await deviceJwt(pump, { iat: now + 590, exp: now + 1200 });
    const late = await deviceJwt(pump, { iat: now - 3600, exp: now - 590 });
    const withNbf = await deviceJwt(pump, { nbf: now + 3600 });

    await expect(verify(early)).resolves.toBeDefined();
    await expect(verify(late)).resolves.toBeDefined();
    await expect(verify(withNbf)).resolves.toBeDefined();
  });

  it('accepts a lifetime of exactly 24 hours', async () => {
    const iat = nowSeconds();

    await expect(verify(await deviceJwt(pump, { iat, exp: iat + 86_400 }))).resolves.toBeDefined();
  });
});

describe('verifyDeviceJwt: refusals', () => {
  it('refuses a token signed by another key (bad signature) without saying whose', async () => {
    const r = await refusal(verify(await deviceJwt(other)));

    expect(r).toEqual({ code: 'ERR_AUTH_INVALID', message: "the token's signature does not match a registered key of device pump-0042" });
  });

  it('refuses with the same message when the device has no keys at all', async () => {
    const r = await refusal(verify(await deviceJwt(pump), []));

    expect(r.message).toBe("the token's signature does not match a registered key of device pump-0042");
  });

  it('refuses an RS256 token when the device only has EC keys', async () => {
    expect((await refusal(verify(await deviceJwt(rsa)))).code).toBe('ERR_AUTH_INVALID');
  });

  it('refuses algorithms other than RS256 and ES256', async () => {
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const token = await deviceJwt({ ...pump, alg: 'ES384' as 'ES256', privateKey: p384.privateKey });

    expect(await refusal(verify(token))).toEqual({ code: 'ERR_AUTH_INVALID', message: 'the token\'s alg must be RS256 or ES256 (got "ES384")' });
  });

  it('refuses a header without typ JWT, and accepts typ in any case', async () => {
    expect((await refusal(verify(await deviceJwt(pump, {}, { typ: undefined })))).message).toContain('typ "JWT"');
    await expect(verify(await deviceJwt(pump, {}, { typ: 'jwt' }))).resolves.toBeDefined();
  });

  it('refuses a wrong audience, and an audience given as an array', async () => {
    expect(await refusal(verify(await deviceJwt(pump, { aud: 'other-project' })))).toEqual({
      code: 'ERR_AUTH_CLAIM',
      message: 'aud must be the project ID demo-project (got "other-project")',
    });
    expect((await refusal(verify(await deviceJwt(pump, { aud: [PROJECT] })))).code).toBe('ERR_AUTH_CLAIM');
  });

  it('refuses an expired token once the skew is used up', async () => {
    const now = nowSeconds();
    const r = await refusal(verify(await deviceJwt(pump, { iat: now - 3600, exp: now - 601 })));

    expect(r.code).toBe('ERR_AUTH_EXPIRED');
    expect(r.message).toMatch(/^the token expired 60\d s ago/);
  });

  it('refuses iat more than 10 minutes in the future', async () => {
    const now = nowSeconds();

    expect((await refusal(verify(await deviceJwt(pump, { iat: now + 700, exp: now + 1200 })))).code).toBe('ERR_AUTH_CLAIM');
  });

  it('refuses a lifetime over 24 hours, exp before iat, and missing iat or exp', async () => {
    const iat = nowSeconds();
    const cases = [{ iat, exp: iat + 86_401 }, { iat, exp: iat }, { iat: undefined }, { exp: undefined }, { iat: 'yesterday' }];

    for (const claims of cases) expect((await refusal(verify(await deviceJwt(pump, claims)))).code).toBe('ERR_AUTH_CLAIM');
  });

  it('checks the signature before the claims: a forged expired token is told about its signature', async () => {
    const r = await refusal(verify(await deviceJwt(other, { aud: 'x', exp: 1 })));

    expect(r.code).toBe('ERR_AUTH_INVALID');
  });

  it('refuses strings that are not compact JWTs', async () => {
    for (const token of ['', 'abc', 'a.b', 'a.b.c.d', 'eyJhbGciOiJub25lIn0.e30.']) {
      expect((await refusal(verify(token))).code).toBe('ERR_AUTH_INVALID');
    }
  });

  it('uses the clock it is given', async () => {
    const token = await deviceJwt(pump, { iat: 1_000_000, exp: 1_000_000 + 3600 });

    await expect(verify(token, undefined, new Date(1_000_100 * 1000))).resolves.toBeDefined();
    expect((await refusal(verify(token, undefined, new Date((1_003_600 + 601) * 1000)))).code).toBe('ERR_AUTH_EXPIRED');
  });
});

describe('deviceNamedInJwt', () => {
  it("reads ClearBlade's uid claim or sub, and nothing when neither is there", async () => {
    expect(deviceNamedInJwt(await deviceJwt(pump, { uid: 'pump-0042' }))).toBe('pump-0042');
    expect(deviceNamedInJwt(await deviceJwt(pump, { sub: 'pump-0043' }))).toBe('pump-0043');
    expect(deviceNamedInJwt(await deviceJwt(pump))).toBeUndefined();
  });

  it('refuses a name that is not a device ID, or uid and sub that disagree', async () => {
    expect(() => deviceNamedInJwt('not-a-jwt')).toThrow(/not a JWT/);
    await expect(deviceJwt(pump, { sub: 'a/b' }).then(deviceNamedInJwt)).rejects.toMatchObject({ code: 'ERR_AUTH_INVALID' });
    await expect(deviceJwt(pump, { sub: 'pump-0042', uid: 'pump-0043' }).then(deviceNamedInJwt)).rejects.toMatchObject({ code: 'ERR_AUTH_INVALID' });
  });
});
