/**
 * The ingest routes, matched on the request path:
 *
 * | method and path | what it takes |
 * |---|---|
 * | `POST /v1/projects/{p}/locations/{l}/registries/{r}/devices/{d}:publishEvent` | IoT Core HTTP bridge telemetry |
 * | `POST /v1/projects/{p}/locations/{l}/registries/{r}/devices/{d}:setState` | IoT Core HTTP bridge state |
 * | `POST /devices/{d}/events[/{subfolder...}]` | the raw body as one event |
 * | `POST /devices/{d}/state` | the raw body as the device's state |
 * | `POST /devices/{d}/batch` | buffered readings, JSON |
 *
 * The batch route is a sub-path rather than a `:batch` verb so that it falls under the same `/devices/{d}/...`
 * route of the HTTP API as the other simple-form paths.
 *
 * The path is taken as API Gateway HTTP APIs deliver it: already percent-decoded. The one exception is a colon
 * before the bridge verb still written `%3A`, which reaches us when a client encodes it and nothing in front
 * decodes the path (a function URL, a plain HTTP server); device IDs cannot contain a colon, so the reading is
 * unambiguous.
 *
 * @example
 * matchRoute('POST', '/devices/pump-0042/events/alarms/high', registry);
 * // { route: { kind: 'event', form: 'simple', deviceId: 'pump-0042', subfolder: 'alarms/high' } }
 */
import { registryName, type RegistryPath } from '../iotcore/topics.js';

export type IngestRoute =
  | { kind: 'event'; form: 'bridge'; deviceId: string }
  | { kind: 'event'; form: 'simple'; deviceId: string; subfolder?: string }
  | { kind: 'state'; form: 'bridge' | 'simple'; deviceId: string }
  | { kind: 'batch'; deviceId: string };

export type RouteMatch =
  | { route: IngestRoute }
  | { notFound: string }
  /** The path is a route, the method is not POST. */
  | { methodNotAllowed: string };

const BRIDGE = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/registries\/([^/]+)\/devices\/([^/]+)$/;
const SIMPLE = /^\/devices\/([^/]+)\/(events|state|batch)(?:\/(.*))?$/s;
const VERBS: Record<string, 'event' | 'state'> = { publishEvent: 'event', setState: 'state' };

export function matchRoute(method: string, path: string, registry: RegistryPath): RouteMatch {
  const match = routeOf(path, registry);
  if ('route' in match && method.toUpperCase() !== 'POST') {
    return { methodNotAllowed: `${method.toUpperCase()} is not allowed on ${path}; use POST` };
  }
  return match;
}

function routeOf(path: string, registry: RegistryPath): { route: IngestRoute } | { notFound: string } {
  const bridge = BRIDGE.exec(path);
  if (bridge) {
    const [, project, location, registryId, last] = bridge as unknown as [string, string, string, string, string];
    const split = splitVerb(last);
    const kind = split ? VERBS[split.verb] : undefined;
    if (split === undefined || kind === undefined) {
      return { notFound: `no such method on a device: ${path} (use :publishEvent or :setState)` };
    }
    // Another project or registry is not an error of the request's shape: it names something this relay does not
    // serve, which IoT Core answers with NOT_FOUND too.
    const asked = registryName({ project, location, registry: registryId });
    if (asked !== registryName(registry)) return { notFound: `registry ${asked} is not served here` };
    return { route: { kind, form: 'bridge', deviceId: split.deviceId } };
  }
  const simple = SIMPLE.exec(path);
  if (simple) {
    const [, deviceId, what, rest] = simple as unknown as [string, string, 'events' | 'state' | 'batch', string | undefined];
    if (what === 'events') {
      // `/events/` leaves an empty subfolder, which the subfolder check refuses with a reason; it is not dropped.
      const route: IngestRoute = { kind: 'event', form: 'simple', deviceId };
      return { route: rest === undefined ? route : { ...route, subfolder: rest } };
    }
    if (rest !== undefined) return { notFound: `${what} takes no subpath: ${path}` };
    return { route: what === 'state' ? { kind: 'state', form: 'simple', deviceId } : { kind: 'batch', deviceId } };
  }
  return { notFound: `no route for ${path}` };
}

function splitVerb(segment: string): { deviceId: string; verb: string } | undefined {
  const colon = segment.lastIndexOf(':');
  if (colon > 0) return { deviceId: segment.slice(0, colon), verb: segment.slice(colon + 1) };
  const encoded = /^(.+)%3A([A-Za-z]+)$/i.exec(segment);
  return encoded ? { deviceId: encoded[1]!, verb: encoded[2]! } : undefined;
}
