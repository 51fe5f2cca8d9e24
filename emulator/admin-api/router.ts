/**
 * Finding the route of a request: the URL's path split into decoded segments and a custom method (`:verb`), matched
 * against route templates such as `/v1/projects/{project}/.../devices/{device}:sendCommandToDevice`.
 *
 * Routes are one entry per method and path; the router gathers the entries of one path into a resource, which
 * knows its methods (for a 405's `Allow`) and the query parameters it accepts.
 *
 * @example
 * const router = new Router([{ method: 'GET', path: '/emulator/health', handle }]);
 * router.find(parseUrl('/emulator/health?alt=json')); // { resource, params: {} }
 */
import { decodeComponent } from '../rest-json.js';

export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/** One method on one path. */
export interface RouteEntry {
  method: Method;
  /** Literal segments and `{name}` for a captured one, then `:verb` for a custom method. */
  path: string;
  /** Query parameters it reads; any other (bar Google's system parameters) is refused. */
  query?: readonly string[];
}

export interface ParsedUrl {
  segments: string[];
  verb: string | undefined;
  query: string;
}

/** The entries of one path. */
export interface Resource<R extends RouteEntry> {
  readonly segments: readonly string[];
  readonly verb: string | undefined;
  readonly methods: ReadonlyMap<Method, R>;
  /**
   * The query parameters of all its methods together: a parameter meant for another method of the same resource
   * is ignored, not refused.
   */
  readonly queryParams: readonly string[];
}

export function parseUrl(rawUrl: string): ParsedUrl {
  let url = rawUrl;
  // Absolute-form request targets (RFC 9112 §3.2.2), as a proxy would send them.
  const absolute = /^https?:\/\/[^/?#]*/i.exec(url);
  if (absolute) url = url.slice(absolute[0].length) || '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  if (!path.startsWith('/')) return { segments: [], verb: undefined, query };
  // Segments are decoded one by one, so an encoded `/` stays inside its segment (and matches no ID); an encoded
  // colon (`%3A`, as some clients send custom methods) becomes a colon before the verb is split off.
  const segments = path.slice(1).split('/').map((s) => decodeComponent(s, 'URL path'));
  return { ...splitVerb(segments), query };
}

/** IDs never contain a colon, so the first one in the last segment starts the custom method. */
function splitVerb(segments: string[]): { segments: string[]; verb: string | undefined } {
  const last = segments[segments.length - 1];
  const colon = last === undefined ? -1 : last.indexOf(':');
  if (last === undefined || colon < 0) return { segments, verb: undefined };
  return { segments: [...segments.slice(0, -1), last.slice(0, colon)], verb: last.slice(colon + 1) };
}

/** How a URL names itself in a NOT_FOUND message. */
export function describeUrl(url: ParsedUrl): string {
  return `/${url.segments.join('/')}${url.verb === undefined ? '' : `:${url.verb}`}`;
}

export class Router<R extends RouteEntry> {
  readonly resources: readonly Resource<R>[];

  /** Throws on two entries for one method and path. Resources, and their methods, keep the entries' order. */
  constructor(entries: readonly R[]) {
    const byPath = new Map<string, { segments: string[]; verb: string | undefined; methods: Map<Method, R> }>();
    for (const entry of entries) {
      const template = splitVerb(entry.path.replace(/^\//, '').split('/'));
      const key = `${template.segments.join('/')}:${template.verb ?? ''}`;
      const resource = byPath.get(key) ?? { ...template, methods: new Map<Method, R>() };
      if (resource.methods.has(entry.method)) throw new Error(`two routes for ${entry.method} ${entry.path}`);
      resource.methods.set(entry.method, entry);
      byPath.set(key, resource);
    }
    this.resources = [...byPath.values()].map((r) => ({ ...r, queryParams: [...new Set([...r.methods.values()].flatMap((e) => e.query ?? []))] }));
  }

  /** The resource the URL names and the segments it captured, whatever the method. */
  find(url: ParsedUrl): { resource: Resource<R>; params: Record<string, string> } | undefined {
    for (const resource of this.resources) {
      const params = capture(resource, url);
      if (params !== undefined) return { resource, params };
    }
    return undefined;
  }
}

/** The entry of a method, if the resource has it; `Object.prototype`'s names are no methods. */
export function entryFor<R extends RouteEntry>(resource: Resource<R>, method: string | undefined): R | undefined {
  return resource.methods.get(method as Method);
}

function capture(resource: Resource<RouteEntry>, url: ParsedUrl): Record<string, string> | undefined {
  if (resource.segments.length !== url.segments.length || resource.verb !== url.verb) return undefined;
  const params: Record<string, string> = {};
  for (const [i, pattern] of resource.segments.entries()) {
    const segment = url.segments[i]!;
    if (pattern.startsWith('{')) {
      if (segment === '') return undefined;
      params[pattern.slice(1, -1)] = segment;
    } else if (pattern !== segment) {
      return undefined;
    }
  }
  return params;
}
