/**
 * The route table of the HTTP API, matched as API Gateway HTTP APIs match: the most specific route wins.
 */
import { describe, expect, it } from 'vitest';
import { httpApiRoutes, matchRoute } from '../../local/http-api-routes.js';
import { loadServerlessTemplate, parseServerlessTemplate } from '../../local/serverless-template.js';
import { projectRoot } from '../../local/stack.js';

const synthetic = parseServerlessTemplate(
  `
functions:
  catchAll: { handler: h.a, events: [{ httpApi: '*' }] }
  greedy: { handler: h.b, events: [{ httpApi: 'ANY /a/{rest+}' }] }
  param: { handler: h.c, events: [{ httpApi: 'GET /a/{x}' }] }
  literal: { handler: h.d, events: [{ httpApi: { method: get, path: /a/b } }] }
`,
  'routes.yml',
  { stage: 'local' },
);

describe('matchRoute', () => {
  const routes = httpApiRoutes(synthetic);
  const pick = (method: string, path: string) => {
    const m = matchRoute(routes, method, path);
    return m && { fn: m.route.functionName, routeKey: m.route.routeKey, params: m.pathParameters };
  };

  it('prefers literal segments, then parameters, then a greedy parameter, then the catch-all', () => {
    expect(pick('GET', '/a/b')).toEqual({ fn: 'literal', routeKey: 'GET /a/b', params: undefined });
    expect(pick('GET', '/a/c')).toEqual({ fn: 'param', routeKey: 'GET /a/{x}', params: { x: 'c' } });
    expect(pick('POST', '/a/c')).toEqual({ fn: 'greedy', routeKey: 'ANY /a/{rest+}', params: { rest: 'c' } });
    expect(pick('GET', '/a/c/d')).toEqual({ fn: 'greedy', routeKey: 'ANY /a/{rest+}', params: { rest: 'c/d' } });
    expect(pick('DELETE', '/elsewhere')).toEqual({ fn: 'catchAll', routeKey: '$default', params: undefined });
  });

  it("serves the project's routes with the functions serverless.yml names", () => {
    const project = httpApiRoutes(loadServerlessTemplate(`${projectRoot()}/serverless.yml`, { stage: 'local' }));
    const fn = (method: string, path: string) => matchRoute(project, method, path)?.route.functionName;
    expect(fn('POST', '/devices/pump-0001/events')).toBe('ingest');
    expect(matchRoute(project, 'POST', '/devices/pump-0001/events/alarms/high')?.pathParameters).toEqual({ device: 'pump-0001', subfolder: 'alarms/high' });
    expect(fn('POST', '/v1/projects/p/locations/l/registries/r/devices/pump-0001:publishEvent')).toBe('ingest');
    expect(fn('GET', '/devices/pump-0001/config')).toBe('config');
    // No route: API Gateway answers 404 itself.
    expect(fn('GET', '/devices/pump-0001/events')).toBeUndefined();
    expect(fn('POST', '/devices/pump-0001')).toBeUndefined();
  });
});
