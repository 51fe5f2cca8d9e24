/**
 * The HTTP API's route table, from the `httpApi` events of serverless.yml, matched as API Gateway HTTP APIs
 * match routes: `{name}` is one path segment, a final `{name+}` is the rest of the path, and when several routes
 * match, the most specific wins (literal segments before parameters, parameters before a greedy one), whatever
 * their order in the file. The handler sees `routeKey` and `pathParameters` as API Gateway would set them.
 *
 * @example
 * const routes = httpApiRoutes(template);
 * // [{ functionName: 'ingest', routeKey: 'POST /devices/{device}/{proxy+}', method: 'POST', ... }, ...]
 * matchRoute(routes, 'POST', '/devices/pump-0001/events'); // { route, pathParameters: { device: 'pump-0001', proxy: 'events' } }
 */
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { RelayError } from '../lib/errors.js';
import { isObject, type ServerlessTemplate } from './serverless-template.js';

export interface HttpApiRouteSpec {
  functionName: string;
  /** As API Gateway names it: `POST /devices/{device}/{proxy+}`, or `$default`. */
  routeKey: string;
  /** Upper case; undefined for ANY. */
  method: string | undefined;
  /** Undefined for `$default` / `*`, which matches every path. */
  segments: Segment[] | undefined;
}

type Segment = { literal: string } | { param: string } | { greedy: string };

export function httpApiRoutes(template: ServerlessTemplate): HttpApiRouteSpec[] {
  const routes: HttpApiRouteSpec[] = [];
  for (const functionName of template.functionNames()) {
    for (const event of template.functionEvents(functionName, 'httpApi')) {
      let method: string;
      let path: string;
      if (typeof event === 'string') {
        if (event === '*' || event === '$default') {
          [method, path] = ['*', '*'];
        } else {
          const space = event.indexOf(' ');
          if (space < 0) throw new RelayError('ERR_CONFIG', `functions.${functionName}: httpApi route "${event}" must be "METHOD /path"`);
          [method, path] = [event.slice(0, space).trim(), event.slice(space + 1).trim()];
        }
      } else if (isObject(event) && typeof event.method === 'string' && typeof event.path === 'string') {
        [method, path] = [event.method, event.path];
      } else {
        throw new RelayError('ERR_CONFIG', `functions.${functionName}: an httpApi event needs a method and a path`);
      }
      routes.push(routeSpec(functionName, method, path));
    }
  }
  return routes;
}

function routeSpec(functionName: string, method: string, path: string): HttpApiRouteSpec {
  const upper = method.toUpperCase();
  const anyMethod = upper === '*' || upper === 'ANY';
  if (path === '*') return { functionName, routeKey: anyMethod ? '$default' : `${upper} *`, method: anyMethod ? undefined : upper, segments: undefined };
  if (!path.startsWith('/')) throw new RelayError('ERR_CONFIG', `functions.${functionName}: httpApi path "${path}" must start with /`);
  const parts = path.slice(1).split('/');
  const segments: Segment[] = parts.map((part, i) => {
    const param = /^\{([A-Za-z0-9_]+)(\+)?\}$/.exec(part);
    if (param === null) return { literal: part };
    if (param[2] === '+') {
      if (i !== parts.length - 1) throw new RelayError('ERR_CONFIG', `functions.${functionName}: the greedy parameter of "${path}" must be last`);
      return { greedy: param[1]! };
    }
    return { param: param[1]! };
  });
  return { functionName, routeKey: `${anyMethod ? 'ANY' : upper} ${path}`, method: anyMethod ? undefined : upper, segments };
}

export interface RouteMatch {
  route: HttpApiRouteSpec;
  pathParameters: Record<string, string> | undefined;
}

/** The route API Gateway would pick for a request, or undefined (API Gateway then answers 404 Not Found). */
export function matchRoute(routes: readonly HttpApiRouteSpec[], method: string, path: string): RouteMatch | undefined {
  const upper = method.toUpperCase();
  const candidates: { match: RouteMatch; rank: number[] }[] = [];
  const parts = path.slice(1).split('/');
  for (const route of routes) {
    if (route.method !== undefined && route.method !== upper) continue;
    const params = route.segments === undefined ? {} : matchSegments(route.segments, parts);
    if (params === undefined) continue;
    candidates.push({
      match: { route, pathParameters: Object.keys(params).length > 0 ? params : undefined },
      rank: rankOf(route),
    });
  }
  candidates.sort((a, b) => compareRanks(a.rank, b.rank));
  return candidates[0]?.match;
}

function matchSegments(segments: readonly Segment[], parts: readonly string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if ('greedy' in s) {
      const rest = parts.slice(i).join('/');
      if (rest === '') return undefined;
      params[s.greedy] = rest;
      return params;
    }
    const part = parts[i];
    if (part === undefined || part === '') return undefined;
    if ('literal' in s) {
      if (s.literal !== part) return undefined;
    } else {
      params[s.param] = part;
    }
  }
  return segments.length === parts.length ? params : undefined;
}

/** Per segment 0 literal, 1 parameter, 2 greedy; the catch-all route last; a route for one method before ANY. */
function rankOf(route: HttpApiRouteSpec): number[] {
  if (route.segments === undefined) return [9, route.method === undefined ? 1 : 0];
  return [...route.segments.map((s) => ('literal' in s ? 0 : 'param' in s ? 1 : 2)), route.method === undefined ? 1 : 0];
}

function compareRanks(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  // Same prefix: the longer route names more of the path.
  return b.length - a.length;
}

/** The event as API Gateway fills it once a route matched. */
export function withRoute(event: APIGatewayProxyEventV2, match: RouteMatch): APIGatewayProxyEventV2 {
  return {
    ...event,
    routeKey: match.route.routeKey,
    ...(match.pathParameters ? { pathParameters: match.pathParameters } : {}),
    requestContext: { ...event.requestContext, routeKey: match.route.routeKey },
  };
}
