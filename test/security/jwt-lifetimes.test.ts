/**
 * JWT lifetimes and shapes within IoT Core's bounds (docs/protocol.md §1.3): at most 24 h from `iat` to `exp`,
 * 10 minutes of clock skew, `aud` the project ID as one string, `alg` RS256 or ES256 with `typ` JWT.
 *
 * - Gateway JWTs: read off the CONNECT packets the relay handler sends (through a proxy in front of the emulator),
 *   for the default lifetime and the longest allowed; a longer one is a configuration error that sends nothing.
 * - Device JWTs at the HTTP routes: each bound is accepted on its edge and refused one step past it, and tokens
 *   that would verify under a lax verifier (unsigned, HMAC keyed with the public key) are refused.
 */
import { SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/index.js';
import { httpApiPost } from '../helpers/apigw-events.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';
import { eventBody, GW, lambdaContext, makeRelayFleet, PUMPS, sqsEvent, sqsRecord } from '../helpers/relay-fixtures.js';
import { nowSeconds, PROJECT } from '../lib/auth/device-credentials.js';
import { startInterceptingProxy, type InterceptingProxy } from '../reliability/mqtt-intercepting-proxy.js';
import { startRelayHandler } from '../reliability/relay-handler-harness.js';
import { captureOutput } from '../helpers/captured-output.js';
import { startHttpRoutes, type HttpRoutes } from './http-routes.js';

describe('gateway JWTs the relay signs', () => {
  let fleet: Fleet;
  let emulator: Emulator;
  let proxy: InterceptingProxy;

  beforeAll(async () => {
    fleet = await makeRelayFleet();
    emulator = await startEmulator({ registry: fleet.document, adminPort: null });
    proxy = await startInterceptingProxy(emulator);
  });
  afterAll(async () => {
    await proxy?.close();
    await emulator?.close();
  });

  /** Runs one batch through a handler configured with `minutes`; returns the JWTs it presented and what went back. */
  async function signedWith(minutes: string | undefined): Promise<{ jwts: string[]; failedBack: number; signedAt: number }> {
    const env: Record<string, string> = { POWERTOOLS_METRICS_DISABLED: 'true', POWERTOOLS_LOG_LEVEL: 'SILENT' };
    if (minutes !== undefined) env.IOTCORE_JWT_LIFETIME_MINUTES = minutes;
    const relay = await startRelayHandler({ fleet, bridge: proxy, env });
    const before = proxy.passwords.length;
    const signedAt = nowSeconds();
    const output = captureOutput();
    try {
      const response = await relay.handler(sqsEvent([sqsRecord(eventBody(PUMPS[0]!), { groupId: GW.assoc }), sqsRecord(eventBody('east-01'), { groupId: GW.east })]), lambdaContext(8_000));
      return { jwts: proxy.passwords.slice(before), failedBack: response.batchItemFailures.length, signedAt };
    } finally {
      output.restore();
      await relay.close();
    }
  }

  it.each([
    [undefined, 3600],
    ['1', 60],
    ['1440', 86_400],
  ])('IOTCORE_JWT_LIFETIME_MINUTES=%s: exp - iat is %i s, aud the project, ES256 with typ JWT, nothing else', async (minutes, lifetime) => {
    const { jwts, failedBack, signedAt } = await signedWith(minutes);
    expect(failedBack).toBe(0);
    expect(jwts).toHaveLength(2);
    for (const jwt of jwts) {
      expect(decodeProtectedHeader(jwt)).toEqual({ alg: 'ES256', typ: 'JWT' });
      const claims = decodeJwt(jwt);
      expect(Object.keys(claims).sort()).toEqual(['aud', 'exp', 'iat']);
      expect(claims.aud).toBe(fleet.project);
      expect(claims.exp! - claims.iat!).toBe(lifetime);
      expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(24 * 3600);
      expect(Math.abs(claims.iat! - signedAt)).toBeLessThanOrEqual(5);
    }
  });

  it.each(['1441', '0', '-5', '60.5'])('IOTCORE_JWT_LIFETIME_MINUTES=%s is refused: nothing is signed or sent, every record goes back', async (minutes) => {
    const { jwts, failedBack } = await signedWith(minutes);
    expect(jwts).toEqual([]);
    expect(failedBack).toBe(2);
  });
});

describe('device JWTs at the HTTP routes', () => {
  let http: HttpRoutes;
  beforeAll(async () => {
    http = await startHttpRoutes();
  });
  afterAll(() => http?.stop());

  const post = async (headers: Record<string, string>): Promise<{ status: number; message: string }> => {
    const answer = await http.call(httpApiPost('/devices/dev-a/events', 'x', headers));
    return { status: answer.status, message: answer.status === 202 ? '' : (JSON.parse(answer.body).error.message as string) };
  };
  const now = nowSeconds();

  it.each([
    ['exp - iat = 24 h exactly', { iat: now - 60, exp: now - 60 + 86_400 }, 202],
    ['exp - iat = 24 h + 1 s', { iat: now - 60, exp: now - 60 + 86_401 }, 401],
    ['iat 9 minutes ahead (within the skew)', { iat: now + 540, exp: now + 1200 }, 202],
    ['iat 11 minutes ahead', { iat: now + 660, exp: now + 1200 }, 401],
    ['exp passed 9 minutes ago (within the skew)', { iat: now - 1200, exp: now - 540 }, 202],
    ['exp passed 11 minutes ago', { iat: now - 1200, exp: now - 660 }, 401],
    ['exp before iat', { iat: now, exp: now - 1 }, 401],
    ['no exp', { exp: undefined }, 401],
    ['no iat', { iat: undefined }, 401],
    ['exp as a string', { exp: String(now + 600) }, 401],
    ['aud missing', { aud: undefined }, 401],
    ['aud as an array', { aud: [PROJECT] }, 401],
    ['aud another project', { aud: 'other-project' }, 401],
    ['nbf in the future (ignored, as IoT Core ignores it)', { nbf: now + 3600 }, 202],
  ] as [string, Record<string, unknown>, number][])('%s: %i', async (_what, claims, status) => {
    const answer = await post(await http.bearer('dev-a', claims));
    expect(answer.status, answer.message).toBe(status);
    expect(await http.queued()).toHaveLength(status === 202 ? 1 : 0);
  });

  it('refuses tokens a lax verifier would take: unsigned, HMAC keyed with the public key, other algorithms, no typ', async () => {
    const device = http.devices['dev-a'];
    const claims = { aud: PROJECT, iat: now, exp: now + 600 };
    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const forged = [
      `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`,
      await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(device.publicKeyPem)),
      await new SignJWT(claims).setProtectedHeader({ alg: 'ES256' }).sign(device.privateKey),
      // The right key and claims, the header's alg swapped after signing.
      (await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'JWT' }).sign(device.privateKey)).replace(/^[^.]+/, b64({ alg: 'RS256', typ: 'JWT' })),
    ];
    for (const token of forged) {
      const answer = await post({ authorization: `Bearer ${token}` });
      expect(answer.status, `${token.split('.')[0]}: ${answer.message}`).toBe(401);
    }
    expect(await http.queued()).toEqual([]);
  });
});
