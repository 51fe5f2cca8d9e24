import { jwtVerify } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { RelayError } from '../../../lib/errors.js';
import { signGatewayJwt } from '../../../lib/jwt.js';
import { SecretsManagerKeySource } from '../../../lib/keys/secrets-manager-key-source.js';
import type { SigningKey } from '../../../lib/keys/signing-key.js';
import { startSecretsManagerEndpoint, type SecretsManagerEndpoint } from '../../helpers/secrets-manager-endpoint.js';
import { ecPems, expectNoKeyMaterial, rejection, rsaPems, type EcPems, type RsaPems } from './pem-factory.js';

let sm: SecretsManagerEndpoint;
let ec: EcPems;
let ecRotated: EcPems;
let rsa: RsaPems;
let secretSeq = 0;

beforeAll(async () => {
  [sm, ec, ecRotated, rsa] = await Promise.all([startSecretsManagerEndpoint(), ecPems(), ecPems(), rsaPems()]);
});
afterAll(async () => {
  await sm.close();
});
beforeEach(() => {
  sm.fail(undefined);
});
afterEach(() => {
  vi.useRealTimers();
});

/** A secret name no other test uses, so call counts are per test. */
function freshSecret(value: string | Uint8Array): string {
  const name = `iotcore/gateway-keys-${++secretSeq}`;
  sm.putSecret(name, value);
  return name;
}

/** True when a JWT signed with `key` verifies with `publicKey`: identifies which key pair a source returned. */
async function signedBy(key: SigningKey, publicKey: EcPems['publicKey']): Promise<boolean> {
  const token = await signGatewayJwt({ ...key, project: 'demo-project' });
  return jwtVerify(token, publicKey, { audience: 'demo-project' }).then(
    () => true,
    () => false,
  );
}

async function unavailable(source: SecretsManagerKeySource, ...pems: string[]): Promise<RelayError> {
  const e = await rejection(() => source.signingKey('gw-1'));
  expect(e).toBeInstanceOf(RelayError);
  expect((e as RelayError).code).toBe('ERR_KEY_UNAVAILABLE');
  expectNoKeyMaterial(e, ...pems);
  return e as RelayError;
}

describe('SecretsManagerKeySource: secret shapes', () => {
  it('reads a bare PEM secret through the real SDK client', async () => {
    const secretId = freshSecret(ec.sec1);
    const source = new SecretsManagerKeySource({ secretId, client: sm.client() });
    const key = await source.signingKey('gw-1');
    expect(key.alg).toBe('ES256');
    expect(await signedBy(key, ec.publicKey)).toBe(true);
    expect(sm.calls(secretId)).toBe(1);
  });

  it('finds each gateway of a map secret, with its own algorithm', async () => {
    const secretId = freshSecret(
      JSON.stringify({ 'gw-1': { privateKey: ec.pkcs8, algorithm: 'ES256' }, 'gw-2': rsa.pkcs1 }),
    );
    const source = new SecretsManagerKeySource({ secretId, client: sm.client() });
    const gw1 = await source.signingKey('gw-1');
    const gw2 = await source.signingKey('gw-2');
    expect(gw1.alg).toBe('ES256');
    expect(gw2.alg).toBe('RS256');
    expect(await signedBy(gw1, ec.publicKey)).toBe(true);
    expect(await signedBy(gw2, rsa.publicKey)).toBe(true);
    // One secret serves every gateway: two lookups, one fetch.
    expect(sm.calls(secretId)).toBe(1);
  });

  it('reports a gateway missing from the map as ERR_KEY_INVALID, naming the secret and the gateway', async () => {
    const secretId = freshSecret(JSON.stringify({ 'gw-1': ec.pkcs8 }));
    const source = new SecretsManagerKeySource({ secretId, client: sm.client() });
    const e = await rejection(() => source.signingKey('gw-3'));
    expect(e).toMatchObject({ code: 'ERR_KEY_INVALID' });
    expect((e as Error).message).toBe(`secret ${secretId}: no key for gateway gw-3 (the document has entries for gw-1)`);
  });

  it('refuses a P-384 key in the secret without putting key material in the error', async () => {
    const p384 = await ecPems('secp384r1');
    const secretId = freshSecret(JSON.stringify({ privateKey: p384.pkcs8 }));
    const source = new SecretsManagerKeySource({ secretId, client: sm.client() });
    const e = await rejection(() => source.signingKey('gw-1'));
    expect(e).toMatchObject({ code: 'ERR_KEY_INVALID' });
    expect((e as Error).message).toContain(`secret ${secretId}`);
    expectNoKeyMaterial(e, p384.pkcs8);
  });

  it('refuses an explicit algorithm that contradicts the key', async () => {
    const secretId = freshSecret(JSON.stringify({ 'gw-1': { privateKey: rsa.pkcs8, algorithm: 'ES256' } }));
    const source = new SecretsManagerKeySource({ secretId, client: sm.client() });
    const e = await rejection(() => source.signingKey('gw-1'));
    expect(e).toMatchObject({ code: 'ERR_KEY_INVALID' });
    expect((e as Error).message).toContain('ES256 was declared, but the key is an RSA key (RS256)');
  });

  it('reads a secret stored as SecretBinary, and one addressed by its ARN', async () => {
    const name = `iotcore/binary-${++secretSeq}`;
    const arn = sm.putSecret(name, new TextEncoder().encode(ec.pkcs8));
    const source = new SecretsManagerKeySource({ secretId: arn, client: sm.client() });
    expect(await signedBy(await source.signingKey('gw-1'), ec.publicKey)).toBe(true);
    expect(sm.calls(arn)).toBe(1);
  });
});

describe('SecretsManagerKeySource: cache', () => {
  it('serves warm calls within the TTL from the cache, and fetches again after it', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2025-01-01T00:00:00Z') });
    const secretId = freshSecret(ec.pkcs8);
    const source = new SecretsManagerKeySource({ secretId, cacheSeconds: 300, client: sm.client() });

    const first = await source.signingKey('gw-1');
    for (let i = 0; i < 50; i++) expect((await source.signingKey('gw-1')).key).toBe(first.key);
    vi.setSystemTime(new Date('2025-01-01T00:04:59Z'));
    await source.signingKey('gw-1');
    expect(sm.calls(secretId)).toBe(1);

    vi.setSystemTime(new Date('2025-01-01T00:05:01Z'));
    const later = await source.signingKey('gw-1');
    expect(sm.calls(secretId)).toBe(2);
    // Same PEM text, so the imported key is reused: only the secret string was fetched again.
    expect(later.key).toBe(first.key);
  });

  it('picks up a rotated secret after the TTL, with a newly imported key', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2025-01-01T00:00:00Z') });
    const secretId = freshSecret(JSON.stringify({ 'gw-1': ec.pkcs8 }));
    const source = new SecretsManagerKeySource({ secretId, cacheSeconds: 60, client: sm.client() });
    const before = await source.signingKey('gw-1');

    sm.putSecret(secretId, JSON.stringify({ 'gw-1': ecRotated.pkcs8 }));
    expect(await signedBy(await source.signingKey('gw-1'), ec.publicKey)).toBe(true);

    vi.setSystemTime(new Date('2025-01-01T00:01:01Z'));
    const after = await source.signingKey('gw-1');
    expect(after.key).not.toBe(before.key);
    expect(await signedBy(after, ecRotated.publicKey)).toBe(true);
    expect(await signedBy(after, ec.publicKey)).toBe(false);
    expect(sm.calls(secretId)).toBe(2);
  });

  it('keeps serving a cached secret while Secrets Manager throttles', async () => {
    const secretId = freshSecret(ec.pkcs8);
    const source = new SecretsManagerKeySource({ secretId, client: sm.client() });
    await source.signingKey('gw-1');
    sm.throttle();
    expect((await source.signingKey('gw-1')).alg).toBe('ES256');
    expect(sm.calls(secretId)).toBe(1);
  });

  it('gives concurrent first calls one cache: no call after them fetches again within the TTL', async () => {
    const secretId = freshSecret(ec.pkcs8);
    const source = new SecretsManagerKeySource({ secretId, client: sm.client() });
    // The first calls of a cold container come together, one per gateway session, while the client still loads.
    const first = await Promise.all(Array.from({ length: 4 }, () => source.signingKey('gw-1')));
    expect(first.every((k) => k.alg === 'ES256')).toBe(true);
    // They share one read: one GetSecretValue, not one per session.
    expect(sm.calls(secretId)).toBe(1);
    for (let i = 0; i < 5; i++) await source.signingKey('gw-1');
    expect(sm.calls(secretId)).toBe(1);
  });

  it('shares one read among calls that arrive while it is in progress after the TTL, and not a failed one', async () => {
    const secretId = freshSecret(ec.pkcs8);
    const source = new SecretsManagerKeySource({ secretId, cacheSeconds: 0, client: sm.client() });
    await Promise.all(Array.from({ length: 3 }, () => source.signingKey('gw-1')));
    expect(sm.calls(secretId)).toBe(1);
    // A finished read is not reused: with a TTL of 0, the next call reads again.
    await source.signingKey('gw-1');
    expect(sm.calls(secretId)).toBe(2);
    sm.fail({ type: 'ThrottlingException', status: 400 });
    const failures = await Promise.allSettled(Array.from({ length: 3 }, () => source.signingKey('gw-1')));
    expect(failures.every((f) => f.status === 'rejected')).toBe(true);
    expect(sm.calls(secretId)).toBe(3);
    // The failed read is not kept either: the next call reads again, and succeeds.
    sm.fail(undefined);
    expect((await source.signingKey('gw-1')).alg).toBe('ES256');
    expect(sm.calls(secretId)).toBe(4);
  });

  it('fetches on every call with a TTL of 0', async () => {
    const secretId = freshSecret(ec.pkcs8);
    const source = new SecretsManagerKeySource({ secretId, cacheSeconds: 0, client: sm.client() });
    for (let i = 0; i < 3; i++) await source.signingKey('gw-1');
    expect(sm.calls(secretId)).toBe(3);
  });

  it('refuses a TTL that is negative or not whole seconds', () => {
    for (const cacheSeconds of [-1, 0.5, Number.NaN]) {
      expect(() => new SecretsManagerKeySource({ secretId: 's', cacheSeconds, client: sm.client() })).toThrow(
        expect.objectContaining({ code: 'ERR_CONFIG' }),
      );
    }
  });
});

describe('SecretsManagerKeySource: unavailable secrets', () => {
  it('tells a throttled read from a missing secret', async () => {
    const missing = await unavailable(
      new SecretsManagerKeySource({ secretId: 'iotcore/no-such-secret', client: sm.client() }),
    );
    expect(missing.message).toBe('secret iotcore/no-such-secret was not found (ResourceNotFoundException)');

    const secretId = freshSecret(ec.pkcs8);
    sm.throttle();
    const throttled = await unavailable(new SecretsManagerKeySource({ secretId, client: sm.client() }), ec.pkcs8);
    expect(throttled.message).toContain(`Secrets Manager throttled the read of secret ${secretId} (ThrottlingException)`);
    expect(throttled.message).not.toContain('not found');
    expect(missing.message).not.toContain('throttled');
  });

  it('does not cache a failure: the next call after throttling ends succeeds', async () => {
    const secretId = freshSecret(ec.pkcs8);
    const source = new SecretsManagerKeySource({ secretId, client: sm.client() });
    sm.throttle();
    await unavailable(source, ec.pkcs8);
    sm.throttle(false);
    expect((await source.signingKey('gw-1')).alg).toBe('ES256');
    expect(sm.calls(secretId)).toBe(2);
  });

  it('says when access is denied, and what the role needs', async () => {
    const secretId = freshSecret(ec.pkcs8);
    sm.fail({ type: 'AccessDeniedException', message: 'User is not authorized' });
    const e = await unavailable(new SecretsManagerKeySource({ secretId, client: sm.client() }), ec.pkcs8);
    expect(e.message).toContain('(AccessDeniedException)');
    expect(e.message).toContain('secretsmanager:GetSecretValue');
  });

  it('passes on the service message of other refusals', async () => {
    const secretId = freshSecret(ec.pkcs8);
    sm.fail({ type: 'InvalidRequestException', message: 'the secret is scheduled for deletion' });
    const e = await unavailable(new SecretsManagerKeySource({ secretId, client: sm.client() }), ec.pkcs8);
    expect(e.message).toBe(
      `Secrets Manager refused to read secret ${secretId} (InvalidRequestException: the secret is scheduled for deletion)`,
    );
  });

  it('reports a dropped connection as unreachable, not as a missing secret', async () => {
    const secretId = freshSecret(ec.pkcs8);
    sm.fail({ dropConnection: true });
    const e = await unavailable(new SecretsManagerKeySource({ secretId, client: sm.client() }), ec.pkcs8);
    expect(e.message).toMatch(new RegExp(`^Secrets Manager could not be reached to read secret ${secretId} \\(`));
    expect(e.message).toContain('socket hang up');
  });
});

describe('SecretsManagerKeySource: one secret per gateway ({gateway} in the secret ID)', () => {
  it("reads only the secret of the gateway asked for, each once within the TTL, through one client", async () => {
    const prefix = `iotcore/per-gateway-${++secretSeq}`;
    sm.putSecret(`${prefix}/gw-001`, ec.pkcs8);
    sm.putSecret(`${prefix}/gw-002`, JSON.stringify({ privateKey: ecRotated.pkcs8, algorithm: 'ES256' }));
    sm.putSecret(`${prefix}/gw-003`, rsa.pkcs8);
    const source = new SecretsManagerKeySource({ secretId: `${prefix}/{gateway}`, client: sm.client() });

    const [a, again, b] = await Promise.all([source.signingKey('gw-001'), source.signingKey('gw-001'), source.signingKey('gw-002')]);
    expect(await signedBy(a, ec.publicKey)).toBe(true);
    expect(await signedBy(again, ec.publicKey)).toBe(true);
    expect(await signedBy(b, ecRotated.publicKey)).toBe(true);
    expect(sm.calls(`${prefix}/gw-001`)).toBe(1);
    expect(sm.calls(`${prefix}/gw-002`)).toBe(1);
    expect(sm.calls(`${prefix}/gw-003`)).toBe(0);
  });

  it('names the gateway secret that is missing', async () => {
    const source = new SecretsManagerKeySource({ secretId: `iotcore/absent-${++secretSeq}/{gateway}`, client: sm.client() });
    const e = await rejection(() => source.signingKey('gw-9'));
    expect(e).toMatchObject({ code: 'ERR_KEY_UNAVAILABLE' });
    expect((e as Error).message).toContain(`iotcore/absent-${secretSeq}/gw-9 was not found`);
  });
});
