import { createPrivateKey } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RelayError } from '../../lib/errors.js';
import { DEFAULT_JWT_LIFETIME_SECONDS, jwtLifetimeFromEnv, signGatewayJwt } from '../../lib/jwt.js';
import { importSigningKey, type SigningKey } from '../../lib/keys/signing-key.js';
import { ecPems, rsaPems, type EcPems, type RsaPems } from './keys/pem-factory.js';
import { thrownRelayError } from '../helpers/relay-error.js';

const project = 'demo-project';
const now = new Date('2025-06-01T12:00:00.750Z');
const iat = Math.floor(now.getTime() / 1000);

let rsa: RsaPems;
let ec: EcPems;
let rsaKey: SigningKey;
let ecKey: SigningKey;

beforeAll(async () => {
  [rsa, ec] = await Promise.all([rsaPems(), ecPems()]);
  [rsaKey, ecKey] = await Promise.all([
    importSigningKey(rsa.pkcs1, { origin: 'test' }),
    importSigningKey(ec.sec1, { origin: 'test' }),
  ]);
});

const configError = (fn: () => unknown): RelayError => thrownRelayError(fn, 'ERR_CONFIG');

describe('signGatewayJwt', () => {
  it.each(['RS256', 'ES256'] as const)('signs a %s token the public key verifies, with exactly iat, exp and aud', async (alg) => {
    const { key, publicKey } = alg === 'RS256' ? { key: rsaKey, publicKey: rsa.publicKey } : { key: ecKey, publicKey: ec.publicKey };
    expect(key.alg).toBe(alg);
    const token = await signGatewayJwt({ ...key, project, now });

    expect(decodeProtectedHeader(token)).toEqual({ alg, typ: 'JWT' });
    const { payload } = await jwtVerify(token, publicKey, {
      algorithms: [alg],
      audience: project,
      typ: 'JWT',
      currentDate: now,
    });
    expect(payload).toEqual({ iat, exp: iat + DEFAULT_JWT_LIFETIME_SECONDS, aud: project });
    // The bridge compares aud with the project ID as a string, not as a one-element array.
    expect(typeof payload.aud).toBe('string');
  });

  it('does not verify against another key pair', async () => {
    const stranger = await ecPems();
    const token = await signGatewayJwt({ ...ecKey, project, now });
    await expect(jwtVerify(token, stranger.publicKey, { currentDate: now })).rejects.toMatchObject({
      code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
    });
  });

  it('defaults iat to the current time', async () => {
    const before = Math.floor(Date.now() / 1000);
    const token = await signGatewayJwt({ ...ecKey, project });
    const { payload } = await jwtVerify(token, ec.publicKey);
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(payload.iat).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
    expect(payload.exp).toBe(payload.iat! + 3600);
  });

  it('accepts a KeyObject as well as an imported CryptoKey', async () => {
    const token = await signGatewayJwt({ key: createPrivateKey(rsa.pkcs8), alg: 'RS256', project, now });
    const { payload } = await jwtVerify(token, rsa.publicKey, { currentDate: now });
    expect(payload.aud).toBe(project);
  });

  it('honours a lifetime up to the 24 h the bridge allows', async () => {
    for (const lifetimeSeconds of [1, 20 * 60, 24 * 60 * 60]) {
      const token = await signGatewayJwt({ ...ecKey, project, now, lifetimeSeconds });
      const { payload } = await jwtVerify(token, ec.publicKey, { currentDate: now });
      expect(payload.exp! - payload.iat!).toBe(lifetimeSeconds);
    }
  });

  it('refuses a lifetime above 24 h, zero, negative or fractional', async () => {
    for (const lifetimeSeconds of [24 * 60 * 60 + 1, 0, -60, 90.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(signGatewayJwt({ ...ecKey, project, now, lifetimeSeconds })).rejects.toMatchObject({
        code: 'ERR_CONFIG',
        field: 'lifetimeSeconds',
      });
    }
  });

  it('refuses an empty project, which the bridge would reject as a wrong audience', async () => {
    await expect(signGatewayJwt({ ...ecKey, project: ' ', now })).rejects.toMatchObject({ code: 'ERR_CONFIG', field: 'project' });
  });

  it('reports a key that cannot make the algorithm as ERR_KEY_INVALID', async () => {
    await expect(signGatewayJwt({ key: ecKey.key, alg: 'RS256', project, now })).rejects.toMatchObject({
      code: 'ERR_KEY_INVALID',
    });
  });
});

describe('jwtLifetimeFromEnv', () => {
  it('defaults to 60 minutes when unset or empty', () => {
    expect(jwtLifetimeFromEnv({})).toBe(3600);
    expect(jwtLifetimeFromEnv({ IOTCORE_JWT_LIFETIME_MINUTES: '' })).toBe(3600);
  });

  it('reads whole minutes from 1 to 1440', () => {
    expect(jwtLifetimeFromEnv({ IOTCORE_JWT_LIFETIME_MINUTES: '1' })).toBe(60);
    expect(jwtLifetimeFromEnv({ IOTCORE_JWT_LIFETIME_MINUTES: ' 20 ' })).toBe(1200);
    expect(jwtLifetimeFromEnv({ IOTCORE_JWT_LIFETIME_MINUTES: '1440' })).toBe(86400);
  });

  it.each(['0', '1441', '-5', '1.5', '20m', 'abc'])('refuses %j', (value) => {
    const e = configError(() => jwtLifetimeFromEnv({ IOTCORE_JWT_LIFETIME_MINUTES: value }));
    expect(e.field).toBe('IOTCORE_JWT_LIFETIME_MINUTES');
    expect(e.message).toContain(JSON.stringify(value));
  });
});
