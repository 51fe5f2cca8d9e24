/**
 * The emulator's admin REST API: Cloud IoT Core's device-manager v1 paths (docs/protocol.md §6.1) served over
 * the emulator's registry, plus `/emulator/*` routes that show what the bridge received and sent, and that set the
 * bridge's faults and close a client's connection.
 *
 * It speaks the same JSON as Google's API: camelCase fields (snake_case accepted on input, as proto3 JSON parsers
 * do), int64 as strings, bytes as base64, and the error envelope `{"error":{"code","message","status"}}`. Every
 * failure, including a bug, becomes an envelope; the handler never throws and never puts a stack in a response.
 *
 * The routes are in admin-api/routes.ts, what their query parameters ask for in admin-api/query.ts, their bodies
 * and list responses in admin-api/json-shapes.ts, and how a URL finds its route in admin-api/router.ts.
 *
 * @example
 * const server = http.createServer(createAdminHandler(registry, bridge));
 * server.listen(8081, '127.0.0.1');
 * // curl -s localhost:8081/v1/projects/demo-project/locations/us-central1/registries/demo-registry/devices
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './registry.js';
import type { ConfigUpdateRate } from './rate-limit.js';
import type { Registry } from './registry.js';
import { Query, parseBody, readBody, send, sendError } from './rest-json.js';
import type { Json } from './rest-json.js';
import { ADMIN_ROUTES, checkLocation } from './admin-api/routes.js';
import type { AdminRequest, AdminRoute, CommandBridge, FaultControl } from './admin-api/routes.js';
import { Router, describeUrl, entryFor, parseUrl } from './admin-api/router.js';

export type { CommandBridge, FaultControl } from './admin-api/routes.js';

/**
 * The request handler of the admin port. `bridge.sendCommand` is how sendCommandToDevice reaches the MQTT side, and
 * `faults` how the /emulator/faults and kick routes do (without it they answer 501); everything else reads or changes
 * `registry`, whose events (`config`, `device-blocked`, `device-deleted`) the MQTT side already listens to.
 *
 * @example
 * const admin = http.createServer(createAdminHandler(registry, { sendCommand: () => false })); // no device online
 * admin.listen(0, '127.0.0.1');
 */
export function createAdminHandler(
  registry: Registry,
  bridge: CommandBridge,
  faults?: FaultControl,
  options: { configRate?: ConfigUpdateRate } = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const router = new Router(ADMIN_ROUTES);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = parseUrl(req.url ?? '/');
    const found = router.find(url);
    if (found === undefined) throw new ApiError('NOT_FOUND', `no such resource or method: ${describeUrl(url)}`);
    const route = entryFor(found.resource, req.method);
    if (route === undefined) {
      const allow = [...found.resource.methods.keys()].join(', ');
      const error = new ApiError('UNIMPLEMENTED', `${req.method ?? ''} is not supported on this resource; use ${allow}`, 405);
      send(res, error.httpCode, error.toEnvelope(), { allow });
      return;
    }
    const query = new Query(url.query);
    query.checkKnown(found.resource.queryParams);
    const result = await route.handle(adminRequest({ registry, bridge, faults, configRate: options.configRate }, found.params, query, req, route));
    send(res, 200, result ?? {});
  }

  return (req, res) => {
    handle(req, res)
      .catch((e: unknown) => sendError(req, res, e, 'admin API'))
      // Last resort, so that nothing a request does can end the process with an unhandled rejection.
      .catch(() => res.destroy());
  };
}

/** What the handler serves: the registry, the MQTT side as far as the routes reach it, and the config update rate. */
interface Served {
  registry: Registry;
  bridge: CommandBridge;
  faults: FaultControl | undefined;
  configRate: ConfigUpdateRate | undefined;
}

function adminRequest({ registry, bridge, faults, configRate }: Served, params: Record<string, string>, query: Query, req: IncomingMessage, route: AdminRoute): AdminRequest {
  const message = route.body;
  let body: Promise<Json> | undefined;
  const registryId = (): string => {
    checkLocation(registry, params);
    return registry.getRegistry(params.registry!).id;
  };
  return {
    registry,
    bridge,
    faultControl: () => {
      if (faults === undefined) throw new ApiError('UNIMPLEMENTED', 'this admin API serves no MQTT bridge: it has no faults and no connections');
      return faults;
    },
    params,
    query,
    // Read at most once, and only by the routes that take a body; a GET's body is left for Node to discard.
    body: () => (body ??= message === undefined ? Promise.resolve({}) : readBody(req).then((raw) => parseBody(raw, message.shape, message.name))),
    registryId,
    device: () => registry.getDevice(registryId(), params.device!),
    configRate,
  };
}
