/**
 * The emulator's admin REST API: Cloud IoT Core's device-manager v1 paths (docs/protocol.md §6.1) served over
 * the emulator's registry, plus `/emulator/*` routes that show what the bridge received and sent.
 *
 * It speaks the same JSON as Google's API: camelCase fields (snake_case accepted on input, as proto3 JSON parsers
 * do), int64 as strings, bytes as base64, and the error envelope `{"error":{"code","message","status"}}`. Every
 * failure, including a bug, becomes an envelope; the handler never throws and never puts a stack in a response.
 *
 * @example
 * const server = http.createServer(createAdminHandler(registry, bridge));
 * server.listen(8081, '127.0.0.1');
 * // curl -s localhost:8081/v1/projects/demo-project/locations/us-central1/registries/demo-registry/devices
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_COMMAND_BYTES } from '../lib/iotcore/limits.js';
import { subfolderProblem } from '../lib/iotcore/topics.js';
import { ApiError } from './registry.js';
import type { Device, DeviceInput, DeviceRegistry, Registry } from './registry.js';
import {
  BINDING_SHAPE,
  DEVICE_SHAPE,
  MODIFY_CONFIG_SHAPE,
  Query,
  SEND_COMMAND_SHAPE,
  badArg,
  decodeBytes,
  decodeComponent,
  deviceFieldMask,
  deviceInput,
  isObject,
  optString,
  parseBody,
  projectDevice,
  readBody,
  requiredString,
  send,
  sendError,
} from './rest-json.js';
import type { Json, Shape } from './rest-json.js';

/** The part of the MQTT side the admin API needs: deliver a command to a connected, subscribed device. */
export interface CommandBridge {
  /** Returns false when the device is not connected or not subscribed to its commands topic. */
  sendCommand(registryId: string, deviceId: string, subfolder: string | undefined, payload: Buffer): boolean;
}

/** devices.list and registries.list pages: the quota page's maximum (docs/protocol.md §4), also the default. */
const MAX_PAGE_SIZE = 500;
/** deviceIds and deviceNumIds each take at most this many IDs (ListDevicesRequest). */
const MAX_LIST_IDS = 10_000;

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

interface RouteRequest {
  params: Record<string, string>;
  query: Query;
  /** The JSON body, `{}` when empty; read only by routes that take one. */
  body(): Promise<Json>;
}

type RouteHandler = (req: RouteRequest) => unknown;

interface Route {
  /** Literal segments, and `{name}` for a captured one. */
  segments: readonly string[];
  /** The custom method after a colon in the last segment (`devices/d:sendCommandToDevice`). */
  verb?: string;
  /** Query parameters the route reads; any other (bar Google's system parameters) is refused. */
  queryParams: readonly string[];
  /** The message the JSON body holds, for routes that take one. */
  body?: { shape: Shape; name: string };
  methods: Partial<Record<Method, RouteHandler>>;
}



/** How a list is sorted for paging: the sort key of an item, its order, and which keys a page token may hold. */
interface PageOrder<T> {
  key(item: T): string;
  compare(a: string, b: string): number;
  validKey(key: string): boolean;
}

/** Devices page in numId order, which is creation order: numIds are handed out increasing. */
const BY_NUM_ID: PageOrder<Device> = {
  key: (d) => d.numId,
  compare: (a, b) => {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  },
  validKey: (k) => /^\d{1,20}$/.test(k),
};

const BY_ID: PageOrder<DeviceRegistry> = {
  key: (r) => r.id,
  compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0),
  validKey: () => true,
};

/**
 * One page of a list sorted by `order`. The token names the last item served rather than an offset, so creating
 * or deleting devices between two calls neither repeats nor skips the others.
 */
function paginate<T>(items: readonly T[], order: PageOrder<T>, query: Query): { page: T[]; nextPageToken?: string } {
  const sorted = [...items].sort((a, b) => order.compare(order.key(a), order.key(b)));
  const requested = query.count('pageSize', 0);
  // Zero means "the server's default" (ListDevicesRequest); more than the maximum is cut to it, not refused.
  const size = requested === 0 ? MAX_PAGE_SIZE : Math.min(requested, MAX_PAGE_SIZE);
  const token = query.one('pageToken');
  let start = 0;
  if (token !== undefined && token !== '') {
    const after = readPageToken(token, order);
    start = sorted.findIndex((t) => order.compare(order.key(t), after) > 0);
    if (start < 0) start = sorted.length;
  }
  const page = sorted.slice(start, start + size);
  const last = page[page.length - 1];
  if (last === undefined || start + size >= sorted.length) return { page };
  return { page, nextPageToken: Buffer.from(JSON.stringify({ after: order.key(last) })).toString('base64url') };
}

function readPageToken<T>(token: string, order: PageOrder<T>): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (isObject(parsed) && typeof parsed.after === 'string' && order.validKey(parsed.after)) return parsed.after;
  throw badArg('pageToken is not one this API returned');
}

// --- routes -----------------------------------------------------------------------------------------------------

const LOCATION = ['v1', 'projects', '{project}', 'locations', '{location}'];
const REGISTRY = [...LOCATION, 'registries', '{registry}'];
const DEVICE = [...REGISTRY, 'devices', '{device}'];

function routes(registry: Registry, bridge: CommandBridge): Route[] {
  /** The registry the path names; NOT_FOUND when the project or location is not the emulator's. */
  const registryOf = (params: Record<string, string>): DeviceRegistry => {
    checkLocation(params);
    return registry.getRegistry(params.registry!);
  };
  const checkLocation = (params: Record<string, string>): void => {
    if (params.project !== registry.project || params.location !== registry.location) {
      const what = params.registry === undefined ? 'location' : 'registry';
      const name = `projects/${params.project}/locations/${params.location}${params.registry === undefined ? '' : `/registries/${params.registry}`}`;
      throw new ApiError('NOT_FOUND', `${what} ${name} not found`);
    }
  };
  const deviceOf = (params: Record<string, string>): Device => registry.getDevice(registryOf(params).id, params.device!);

  return [
    {
      segments: [...LOCATION, 'registries'],
      queryParams: ['pageSize', 'pageToken'],
      methods: {
        GET: ({ params, query }) => {
          checkLocation(params);
          const { page, nextPageToken } = paginate(registry.registries(), BY_ID, query);
          return { deviceRegistries: page, ...(nextPageToken === undefined ? {} : { nextPageToken }) };
        },
      },
    },
    {
      segments: REGISTRY,
      queryParams: [],
      methods: { GET: ({ params }) => registryOf(params) },
    },
    {
      segments: [...REGISTRY, 'devices'],
      body: { shape: DEVICE_SHAPE, name: 'device' },
      queryParams: [
        'deviceIds',
        'deviceNumIds',
        'gatewayListOptions.gatewayType',
        'gatewayListOptions.associationsGatewayId',
        'gatewayListOptions.associationsDeviceId',
        'fieldMask',
        'pageSize',
        'pageToken',
      ],
      methods: {
        GET: ({ params, query }) => listDevices(registry, registryOf(params).id, query),
        POST: async ({ params, body }) => {
          const registryId = registryOf(params).id;
          const b = await body();
          const input = deviceInput(b);
          // devices.create takes the ID in the body; the name is the server's to set (§6.1).
          const name = b.name;
          if (name !== undefined && name !== '') throw badArg('device.name must be empty: the server sets it from the registry and device.id');
          if (input.id === undefined || input.id === '') throw badArg('device.id is required');
          return registry.createDevice(registryId, input as DeviceInput);
        },
      },
    },
    {
      segments: DEVICE,
      body: { shape: DEVICE_SHAPE, name: 'device' },
      queryParams: ['fieldMask', 'updateMask'],
      methods: {
        GET: ({ params, query }) => {
          const device = deviceOf(params);
          const mask = deviceFieldMask(query.one('fieldMask'), 'fieldMask');
          return mask.length === 0 ? device : projectDevice(device, mask);
        },
        PATCH: async ({ params, query, body }) => {
          const registryId = registryOf(params).id;
          const input = deviceInput(await body());
          const mask = deviceFieldMask(query.one('updateMask'), 'updateMask');
          if (mask.length === 0) throw badArg('updateMask is required and names the fields to change, e.g. updateMask=blocked,metadata');
          return registry.patchDevice(registryId, params.device!, input, mask);
        },
        DELETE: ({ params }) => {
          registry.deleteDevice(registryOf(params).id, params.device!);
          return {};
        },
      },
    },
    {
      segments: DEVICE,
      verb: 'modifyCloudToDeviceConfig',
      body: { shape: MODIFY_CONFIG_SHAPE, name: 'request' },
      queryParams: [],
      methods: {
        POST: async ({ params, body }) => {
          const registryId = registryOf(params).id;
          const b = await body();
          if (b.binaryData === undefined) throw badArg('binaryData is required (use "" for an empty config)');
          const data = decodeBytes(b.binaryData, 'binaryData');
          return registry.modifyConfig(registryId, params.device!, data.toString('base64'), int64(b.versionToUpdate, 'versionToUpdate'));
        },
      },
    },
    {
      segments: DEVICE,
      verb: 'sendCommandToDevice',
      body: { shape: SEND_COMMAND_SHAPE, name: 'request' },
      queryParams: [],
      methods: {
        POST: async ({ params, body }) => {
          const registryId = registryOf(params).id;
          const device = registry.getDevice(registryId, params.device!);
          const b = await body();
          if (b.binaryData === undefined) throw badArg('binaryData is required');
          const payload = decodeBytes(b.binaryData, 'binaryData');
          if (payload.byteLength > MAX_COMMAND_BYTES) throw badArg(`binaryData is larger than ${MAX_COMMAND_BYTES} bytes`);
          const subfolder = optString(b, 'subfolder', 'request') || undefined;
          // The empty subfolder is the bare /devices/{id}/commands topic; any other goes after it and must not
          // add a wildcard, a NUL or an empty level (docs/protocol.md §2).
          const problem = subfolder === undefined ? undefined : subfolderProblem(subfolder);
          if (problem !== undefined) throw badArg(`subfolder ${problem}`);
          if (!bridge.sendCommand(registryId, device.id, subfolder, payload)) {
            // Commands are never queued: only a device connected and subscribed right now gets one (§2).
            throw new ApiError('FAILED_PRECONDITION', `device is not connected/subscribed: ${device.name}`);
          }
          return {};
        },
      },
    },
    {
      segments: [...DEVICE, 'configVersions'],
      queryParams: ['numVersions'],
      methods: {
        GET: ({ params, query }) => {
          const versions = registry.configVersions(registryOf(params).id, params.device!);
          const n = query.count('numVersions', 0);
          return { deviceConfigs: n === 0 ? versions : versions.slice(0, n) };
        },
      },
    },
    {
      segments: [...DEVICE, 'states'],
      queryParams: ['numStates'],
      methods: {
        GET: ({ params, query }) => {
          const states = registry.states(registryOf(params).id, params.device!);
          const n = query.count('numStates', 0);
          return { deviceStates: n === 0 ? states : states.slice(0, n) };
        },
      },
    },
    ...(['bindDeviceToGateway', 'unbindDeviceFromGateway'] as const).map(
      (verb): Route => ({
        segments: REGISTRY,
        verb,
        body: { shape: BINDING_SHAPE, name: 'request' },
        queryParams: [],
        methods: {
          POST: async ({ params, body }) => {
            const registryId = registryOf(params).id;
            const b = await body();
            const gatewayId = requiredString(b, 'gatewayId', 'request');
            const deviceId = requiredString(b, 'deviceId', 'request');
            if (verb === 'bindDeviceToGateway') registry.bind(registryId, gatewayId, deviceId);
            else registry.unbind(registryId, gatewayId, deviceId);
            return {};
          },
        },
      }),
    ),
    {
      segments: ['emulator', 'events'],
      queryParams: ['registryId', 'deviceId', 'gatewayId', 'since'],
      methods: {
        GET: ({ query }) => {
          const since = query.one('since');
          if (since !== undefined && !/^\d+$/.test(since)) throw badArg('since must be a messageId');
          const filter = { since, registryId: query.one('registryId'), deviceId: query.one('deviceId'), gatewayId: query.one('gatewayId') };
          return { events: registry.traffic.eventsMatching(filter) };
        },
      },
    },
    {
      segments: ['emulator', 'errors'],
      queryParams: ['gatewayId'],
      methods: {
        GET: ({ query }) => {
          return { errors: registry.traffic.errorsOf(query.one('gatewayId')) };
        },
      },
    },
    {
      segments: ['emulator', 'health'],
      queryParams: [],
      methods: {
        GET: () => ({ status: 'ok', project: registry.project, location: registry.location, registries: registry.registries().map((r) => r.id) }),
      },
    },
  ];
}

/** devices.list: filters, then a page, then the field mask (`id`, `name`, `numId` unless it asks for more). */
function listDevices(registry: Registry, registryId: string, query: Query): Json {
  const ids = query.list('deviceIds');
  const numIds = query.list('deviceNumIds');
  if (ids.length > MAX_LIST_IDS || numIds.length > MAX_LIST_IDS) throw badArg(`deviceIds and deviceNumIds take at most ${MAX_LIST_IDS} IDs each`);
  if (numIds.some((n) => !/^\d{1,20}$/.test(n))) throw badArg('deviceNumIds must be unsigned integers');
  const mask = deviceFieldMask(query.one('fieldMask'), 'fieldMask');

  const gatewayType = query.one('gatewayListOptions.gatewayType');
  const associationsGatewayId = query.one('gatewayListOptions.associationsGatewayId');
  const associationsDeviceId = query.one('gatewayListOptions.associationsDeviceId');
  // GatewayListOptions is a oneof: at most one of its filters per call.
  if ([gatewayType, associationsGatewayId, associationsDeviceId].filter((v) => v !== undefined && v !== '').length > 1) {
    throw badArg('gatewayListOptions takes only one of gatewayType, associationsGatewayId, associationsDeviceId');
  }
  let keep: (d: Device) => boolean = () => true;
  if (gatewayType === 'GATEWAY') keep = (d) => d.gatewayConfig.gatewayType === 'GATEWAY';
  // An unspecified gateway type means "not a gateway" (docs/protocol.md §3.1).
  else if (gatewayType === 'NON_GATEWAY') keep = (d) => d.gatewayConfig.gatewayType !== 'GATEWAY';
  else if (gatewayType !== undefined && gatewayType !== '' && gatewayType !== 'GATEWAY_TYPE_UNSPECIFIED') {
    throw badArg('gatewayListOptions.gatewayType must be GATEWAY or NON_GATEWAY');
  } else if (associationsGatewayId) {
    const bound = new Set(registry.boundDevices(registryId, registry.getDevice(registryId, associationsGatewayId).id));
    keep = (d) => bound.has(d.id);
  } else if (associationsDeviceId) {
    const gateways = new Set(registry.gatewaysOf(registryId, registry.getDevice(registryId, associationsDeviceId).id));
    keep = (d) => gateways.has(d.id);
  }

  const wanted = new Set(ids);
  const wantedNum = new Set(numIds.map((n) => BigInt(n).toString()));
  const selected = registry
    .listDevices(registryId)
    .filter((d) => (wanted.size === 0 && wantedNum.size === 0) || wanted.has(d.id) || wantedNum.has(d.numId))
    .filter(keep);
  const { page, nextPageToken } = paginate(selected, BY_NUM_ID, query);
  return { devices: page.map((d) => projectDevice(d, mask)), ...(nextPageToken === undefined ? {} : { nextPageToken }) };
}

/** An int64 field: a JSON number or a decimal string; absent means 0. Returned in canonical decimal. */
function int64(value: unknown, field: string): string {
  if (value === undefined) return '0';
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof text !== 'string' || !/^-?\d{1,19}$/.test(text)) throw badArg(`${field} must be an integer`);
  const n = BigInt(text);
  if (n < 0n || n > 2n ** 63n - 1n) throw badArg(`${field} must be between 0 and 2^63-1`);
  return n.toString();
}

// --- HTTP -------------------------------------------------------------------------------------------------------

interface ParsedUrl {
  segments: string[];
  verb: string | undefined;
  query: string;
}

function parseUrl(rawUrl: string): ParsedUrl {
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
  let verb: string | undefined;
  const last = segments[segments.length - 1];
  const colon = last === undefined ? -1 : last.indexOf(':');
  if (last !== undefined && colon >= 0) {
    // IDs never contain a colon, so the first one starts the custom method.
    segments[segments.length - 1] = last.slice(0, colon);
    verb = last.slice(colon + 1);
  }
  return { segments, verb, query };
}

function match(route: Route, url: ParsedUrl): Record<string, string> | undefined {
  if (route.segments.length !== url.segments.length || route.verb !== url.verb) return undefined;
  const params: Record<string, string> = {};
  for (const [i, pattern] of route.segments.entries()) {
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


/**
 * The request handler of the admin port. `bridge.sendCommand` is how sendCommandToDevice reaches the MQTT side;
 * everything else reads or changes `registry`, whose events (`config`, `device-blocked`, `device-deleted`) the MQTT
 * side already listens to.
 *
 * @example
 * const admin = http.createServer(createAdminHandler(registry, { sendCommand: () => false })); // no device online
 * admin.listen(0, '127.0.0.1');
 */
export function createAdminHandler(registry: Registry, bridge: CommandBridge): (req: IncomingMessage, res: ServerResponse) => void {
  const table = routes(registry, bridge);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = parseUrl(req.url ?? '/');
    let route: Route | undefined;
    let params: Record<string, string> | undefined;
    for (const r of table) {
      params = match(r, url);
      if (params) {
        route = r;
        break;
      }
    }
    if (!route || !params) {
      const path = `/${url.segments.join('/')}${url.verb === undefined ? '' : `:${url.verb}`}`;
      throw new ApiError('NOT_FOUND', `no such resource or method: ${path}`);
    }
    const handler = Object.hasOwn(route.methods, req.method ?? '') ? route.methods[req.method as Method] : undefined;
    if (!handler) {
      const allow = Object.keys(route.methods).join(', ');
      const error = new ApiError('UNIMPLEMENTED', `${req.method ?? ''} is not supported on this resource; use ${allow}`, 405);
      send(res, error.httpCode, error.toEnvelope(), { allow });
      return;
    }
    const query = new Query(url.query);
    query.checkKnown(route.queryParams);
    const { body: message } = route;
    let body: Promise<Json> | undefined;
    const result = await handler({
      params,
      query,
      // Read at most once, and only by the routes that take a body; a GET's body is left for Node to discard.
      body: () => (body ??= message === undefined ? Promise.resolve({}) : readBody(req).then((raw) => parseBody(raw, message.shape, message.name))),
    });
    send(res, 200, result ?? {});
  }

  return (req, res) => {
    handle(req, res)
      .catch((e: unknown) => sendError(req, res, e, 'admin API'))
      // Last resort, so that nothing a request does can end the process with an unhandled rejection.
      .catch(() => res.destroy());
  };
}
