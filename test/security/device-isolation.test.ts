/**
 * Who may do what on the HTTP routes: every deployed route refuses a request without a valid credential, and a
 * device can never write for another device nor read another device's config, whatever credential of its own it
 * presents and however it names the other device (path, token claims, body fields).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpApiEvent } from '../helpers/apigw-events.js';
import { deployedRoutes, startHttpRoutes, validBody, type HttpAnswer, type HttpRoutes } from './http-routes.js';

let http: HttpRoutes;

beforeAll(async () => {
  http = await startHttpRoutes();
});
afterAll(() => http?.stop());

const request = (route: { method: 'GET' | 'POST'; path: string }, headers: Record<string, string>): Promise<HttpAnswer> =>
  http.call(httpApiEvent({ method: route.method, path: route.path, headers, ...(route.method === 'POST' ? { body: validBody(route.path) } : {}) }));

describe('every route refuses an unauthenticated request', () => {
  const credentials: [string, Record<string, string>][] = [
    ['no Authorization header', {}],
    ['an empty Authorization header', { authorization: '' }],
    ['a scheme alone', { authorization: 'Bearer' }],
    ['an unknown scheme', { authorization: 'Basic ZGV2LWE6cGFzc3dvcmQ=' }],
    ['a token that is not a JWT', { authorization: 'Bearer not-a-jwt' }],
    ['an unsigned JWT', { authorization: 'Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJhdWQiOiJkZW1vLXByb2plY3QifQ.' }],
    ['a device key of the wrong shape', { authorization: 'Device-Key short' }],
    ['a well-formed device key that is no device\'s', { authorization: `Device-Key ${'A'.repeat(43)}` }],
  ];
  for (const route of deployedRoutes('dev-a')) {
    it(`${route.method} ${route.path}`, async () => {
      for (const [what, headers] of credentials) {
        const answer = await request(route, headers);
        expect(answer.status, `${what}: ${answer.body}`).toBe(401);
        expect(JSON.parse(answer.body).error.status, what).toBe('UNAUTHENTICATED');
        // RFC 9110 §11.6.1: the 401 names the schemes that can succeed.
        expect(answer.headers['www-authenticate'], what).toMatch(/Bearer realm=.*Device-Key realm=/);
        expect(answer.body, what).not.toContain('secret-of');
      }
      expect(await http.queued()).toEqual([]);
    });
  }

  it('the same routes do answer a valid credential (the refusals above are about the credential)', async () => {
    for (const route of deployedRoutes('dev-a')) {
      const answer = await request(route, await http.bearer('dev-a'));
      expect(answer.status, `${route.method} ${route.path}: ${answer.body}`).toBe(route.method === 'GET' ? 200 : 202);
    }
    const queued = await http.queued();
    expect(queued.length).toBe(6);
    expect(new Set(queued.map((m) => m.deviceId))).toEqual(new Set(['dev-a']));
  });
});

describe('a device acts only for itself', () => {
  /** Credentials of dev-a, each aimed at dev-b. */
  const asA = async (): Promise<[string, Record<string, string>, number][]> => [
    ["dev-a's token (naming no device)", await http.bearer('dev-a'), 401],
    ["dev-a's token naming dev-a (uid)", await http.bearer('dev-a', { uid: 'dev-a' }), 403],
    ["dev-a's token naming dev-a (sub)", await http.bearer('dev-a', { sub: 'dev-a' }), 403],
    ["dev-a's key signing a token that claims to be dev-b", await http.bearer('dev-a', { uid: 'dev-b' }), 401],
    ["dev-a's token naming dev-a and dev-b at once", await http.bearer('dev-a', { uid: 'dev-a', sub: 'dev-b' }), 401],
    ["dev-a's device key", { authorization: `Device-Key ${http.deviceKey('dev-a')}` }, 401],
  ];

  it.each(deployedRoutes('dev-b').map((r) => [r.method, r.path, r] as const))('%s %s with any credential of dev-a is refused', async (_m, _p, route) => {
    for (const [what, headers, status] of await asA()) {
      const answer = await request(route, headers);
      expect(answer.status, `${what}: ${answer.body}`).toBe(status);
      expect(answer.body, what).not.toContain('secret-of');
    }
    expect(await http.queued()).toEqual([]);
  });

  it('a device key written for dev-a works for dev-a only; device keys of unknown-looking IDs are per ID', async () => {
    expect((await request({ method: 'POST', path: '/devices/dev-a/events' }, { authorization: `Device-Key ${http.deviceKey('dev-a')}` })).status).toBe(202);
    expect((await request({ method: 'POST', path: '/devices/dev-a2/events' }, { authorization: `Device-Key ${http.deviceKey('dev-a')}` })).status).toBe(401);
    expect((await request({ method: 'POST', path: '/devices/DEV-A/events' }, { authorization: `Device-Key ${http.deviceKey('dev-a')}` })).status).toBe(401);
    expect((await http.queued()).map((m) => m.deviceId)).toEqual(['dev-a']);
  });

  it('no body field can name another device: the queued record is always the authenticated device\'s', async () => {
    const auth = await http.bearer('dev-a');
    const b64 = Buffer.from('x').toString('base64');
    const attempts: [string, string, number][] = [
      ['/devices/dev-a/batch', JSON.stringify({ readings: [{ payload: 'x', deviceId: 'dev-b' }] }), 400],
      ['/devices/dev-a/batch', JSON.stringify({ readings: [{ payload: 'x' }], deviceId: 'dev-b' }), 400],
      [`/v1/projects/demo-project/locations/us-central1/registries/demo-registry/devices/dev-a:publishEvent`, JSON.stringify({ binary_data: b64, gatewayInfo: { delegatedDeviceId: 'dev-b' } }), 400],
      [`/v1/projects/demo-project/locations/us-central1/registries/demo-registry/devices/dev-a:publishEvent`, JSON.stringify({ binary_data: b64, deviceId: 'dev-b' }), 400],
      [`/v1/projects/demo-project/locations/us-central1/registries/demo-registry/devices/dev-a:setState`, JSON.stringify({ state: { binary_data: b64, deviceId: 'dev-b' } }), 400],
      // A raw body is an opaque payload: naming dev-b inside it changes nothing.
      ['/devices/dev-a/events', JSON.stringify({ v: 1, deviceId: 'dev-b', payload: 'x' }), 202],
      // The subfolder is one topic level set under dev-a's own events topic; it cannot climb to dev-b's.
      ['/devices/dev-a/events/../../dev-b/events', 'x', 202],
    ];
    for (const [path, body, status] of attempts) {
      const answer = await http.call(httpApiEvent({ method: 'POST', path, body, headers: auth }));
      expect(answer.status, `${path} ${body}: ${answer.body}`).toBe(status);
    }
    const queued = await http.queued();
    expect(queued.map((m) => m.deviceId)).toEqual(['dev-a', 'dev-a']);
    expect(queued[1]!.subfolder).toBe('../../dev-b/events');
  });

  it('reads: each device gets its own config and nobody else\'s', async () => {
    const own = await request({ method: 'GET', path: '/devices/dev-b/config' }, await http.bearer('dev-b'));
    expect(own.status).toBe(200);
    expect(Buffer.from(own.body, 'base64')).toEqual(http.configs['dev-b']);
    const other = await request({ method: 'GET', path: '/devices/dev-b/config' }, await http.bearer('dev-a', { uid: 'dev-a' }));
    expect(other.status).toBe(403);
    expect(other.body).not.toContain(http.configs['dev-b']!.toString('base64'));
  });
});
