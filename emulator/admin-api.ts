/**
 * The emulator's admin REST API: Cloud IoT Core's device-manager v1 paths (iotcore-protocol.md §6.1) served over
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
import type { Device, DeviceInput, DeviceRegistry, GatewayAuthMethod, GatewayType, Registry } from './registry.js';

/** The part of the MQTT side the admin API needs: deliver a command to a connected, subscribed device. */
export interface CommandBridge {
  /** Returns false when the device is not connected or not subscribed to its commands topic. */
  sendCommand(registryId: string, deviceId: string, subfolder: string | undefined, payload: Buffer): boolean;
}

/** Request bodies larger than this are refused with 413 before they are parsed. */
const MAX_BODY_BYTES = 1024 * 1024;
/** devices.list and registries.list pages: the quota page's maximum (iotcore-protocol.md §4), also the default. */
const MAX_PAGE_SIZE = 500;
/** deviceIds and deviceNumIds each take at most this many IDs (ListDevicesRequest). */
const MAX_LIST_IDS = 10_000;

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
type Json = Record<string, unknown>;

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

// --- errors -----------------------------------------------------------------------------------------------------

const badArg = (message: string): ApiError => new ApiError('INVALID_ARGUMENT', message);

// --- query strings ----------------------------------------------------------------------------------------------

/**
 * System parameters every Google API takes (discovery-based clients send `alt` and `$.xgafv`). They are accepted
 * and ignored: the emulator always answers pretty-printed JSON with every field.
 */
const SYSTEM_PARAMS = new Set(['alt', 'key', 'prettyPrint', 'fields', 'quotaUser', 'accessToken', 'oauthToken', 'callback', 'uploadType', 'uploadProtocol', '$.xgafv']);

class Query {
  private readonly values = new Map<string, string[]>();

  constructor(raw: string) {
    for (const pair of raw.split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const key = toCamelPath(decodeComponent(eq < 0 ? pair : pair.slice(0, eq), 'query parameter name'));
      // A literal `+` stays a `+`: device IDs may contain it, none of these parameters ever holds a space, and
      // people type IDs into curl without encoding them.
      const value = eq < 0 ? '' : decodeComponent(pair.slice(eq + 1), `query parameter ${key}`);
      this.values.set(key, [...(this.values.get(key) ?? []), value]);
    }
  }

  /** Refuses parameters the route does not know, so a typo (`pagesize`) is an error and not a silent default. */
  checkKnown(known: readonly string[]): void {
    for (const key of this.values.keys()) {
      if (!known.includes(key) && !SYSTEM_PARAMS.has(key)) throw badArg(`unknown query parameter "${key}"`);
    }
  }

  one(key: string): string | undefined {
    const v = this.values.get(key);
    return v === undefined ? undefined : v[v.length - 1];
  }

  /** A repeated field: `?deviceIds=a&deviceIds=b`, and for convenience `?deviceIds=a,b` (no ID holds a comma). */
  list(key: string): string[] {
    return (this.values.get(key) ?? []).flatMap((v) => v.split(',')).filter((v) => v !== '');
  }

  /** A non-negative int32, or `fallback` when absent or empty. */
  count(key: string, fallback: number): number {
    const v = this.one(key);
    if (v === undefined || v === '') return fallback;
    if (!/^\d{1,10}$/.test(v) || Number(v) > 2 ** 31 - 1) throw badArg(`${key} must be a non-negative integer`);
    return Number(v);
  }
}

function decodeComponent(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw badArg(`${what} is not valid percent-encoding`);
  }
}

/** `gateway_list_options.gateway_type` -> `gatewayListOptions.gatewayType`: proto3 accepts both spellings. */
function toCamelPath(path: string): string {
  return path.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

// --- JSON bodies ------------------------------------------------------------------------------------------------

/** The fields of a message, for checking names the way Google's JSON parser does. */
type Shape = 'value' | 'map' | readonly [Shape] | { readonly [field: string]: Shape };

const DEVICE_CONFIG_SHAPE: Shape = { version: 'value', cloudUpdateTime: 'value', deviceAckTime: 'value', binaryData: 'value' };
const DEVICE_SHAPE: Shape = {
  id: 'value',
  name: 'value',
  numId: 'value',
  credentials: [{ publicKey: { format: 'value', key: 'value' }, expirationTime: 'value' }],
  lastHeartbeatTime: 'value',
  lastEventTime: 'value',
  lastStateTime: 'value',
  lastConfigAckTime: 'value',
  lastConfigSendTime: 'value',
  blocked: 'value',
  lastErrorTime: 'value',
  lastErrorStatus: { code: 'value', message: 'value', details: 'value' },
  config: DEVICE_CONFIG_SHAPE,
  state: { updateTime: 'value', binaryData: 'value' },
  logLevel: 'value',
  metadata: 'map',
  gatewayConfig: { gatewayType: 'value', gatewayAuthMethod: 'value', lastAccessedGatewayId: 'value', lastAccessedGatewayTime: 'value' },
};
const MODIFY_CONFIG_SHAPE: Shape = { versionToUpdate: 'value', binaryData: 'value' };
const SEND_COMMAND_SHAPE: Shape = { binaryData: 'value', subfolder: 'value' };
const BINDING_SHAPE: Shape = { gatewayId: 'value', deviceId: 'value' };

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Renames snake_case fields to camelCase and refuses unknown ones, as Google's JSON parser does: a misspelt field
 * is an INVALID_ARGUMENT there, never silently dropped. JSON `null` means "not set" (proto3 JSON).
 */
function normalize(value: unknown, shape: Shape, where: string): unknown {
  if (shape === 'value' || shape === 'map') return value;
  if (Array.isArray(shape)) {
    if (!Array.isArray(value)) throw badArg(`${where} must be a list`);
    const [item] = shape as readonly [Shape];
    return value.map((v, i) => normalize(v, item, `${where}[${i}]`));
  }
  if (!isObject(value)) throw badArg(`${where} must be an object`);
  const fields = shape as { readonly [field: string]: Shape };
  const out: Json = {};
  for (const [key, v] of Object.entries(value)) {
    const name = toCamelPath(key);
    const sub = Object.hasOwn(fields, name) ? fields[name] : undefined;
    if (sub === undefined) throw badArg(`unknown field "${key}" in ${where}`);
    if (Object.hasOwn(out, name)) throw badArg(`field "${name}" is set twice in ${where}`);
    if (v === null) continue;
    out[name] = normalize(v, sub, `${where}.${name}`);
  }
  return out;
}

function parseBody(raw: Buffer, shape: Shape, where: string): Json {
  if (raw.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw badArg(`request body is not valid JSON: ${(e as Error).message}`);
  }
  return normalize(value, shape, where) as Json;
}

function optString(o: Json, field: string, where: string): string | undefined {
  const v = o[field];
  if (v !== undefined && typeof v !== 'string') throw badArg(`${where}.${field} must be a string`);
  return v;
}

function requiredString(o: Json, field: string, where: string): string {
  const v = optString(o, field, where);
  if (v === undefined || v === '') throw badArg(`${where}.${field} is required`);
  return v;
}

function optObject(o: Json, field: string): Json | undefined {
  const v = o[field];
  return isObject(v) ? v : undefined;
}

/**
 * Decodes a proto3 JSON `bytes` field. Like Google's parser it takes standard or URL-safe base64, with or without
 * padding; anything else (stray characters, bits past the last byte, mixed alphabets) is refused instead of being
 * skipped the way Buffer.from would.
 */
function decodeBytes(value: unknown, field: string): Buffer {
  if (typeof value !== 'string') throw badArg(`${field} must be a base64 string`);
  const bare = value.replace(/=+$/, '');
  const padding = value.length - bare.length;
  const urlSafe = /[-_]/.test(bare);
  const alphabet = urlSafe ? /^[A-Za-z0-9\-_]*$/ : /^[A-Za-z0-9+/]*$/;
  const paddingOk = padding === 0 || (padding <= 2 && value.length % 4 === 0);
  if (!alphabet.test(bare) || bare.length % 4 === 1 || !paddingOk) throw badArg(`${field} is not valid base64`);
  const bytes = Buffer.from(bare, urlSafe ? 'base64url' : 'base64');
  if (bytes.toString(urlSafe ? 'base64url' : 'base64').replace(/=+$/, '') !== bare) throw badArg(`${field} is not valid base64`);
  return bytes;
}

/** A Device from a request body, type-checked; the registry checks the values (ID rule, key formats, limits). */
function deviceInput(body: Json): Partial<DeviceInput> {
  const where = 'device';
  const input: Partial<DeviceInput> = {};
  const id = optString(body, 'id', where);
  if (id !== undefined) input.id = id;
  if (body.credentials !== undefined) {
    const credentials = body.credentials as Json[];
    credentials.forEach((c, i) => {
      const key = optObject(c, 'publicKey') ?? {};
      optString(key, 'format', `${where}.credentials[${i}].publicKey`);
      optString(key, 'key', `${where}.credentials[${i}].publicKey`);
      optString(c, 'expirationTime', `${where}.credentials[${i}]`);
    });
    // Formats, PEMs, expiry times and the count of three are the registry's checks.
    input.credentials = credentials as unknown as DeviceInput['credentials'];
  }
  if (body.blocked !== undefined) {
    if (typeof body.blocked !== 'boolean') throw badArg(`${where}.blocked must be true or false`);
    input.blocked = body.blocked;
  }
  const gatewayConfig = optObject(body, 'gatewayConfig');
  if (gatewayConfig) {
    const gatewayType = optString(gatewayConfig, 'gatewayType', `${where}.gatewayConfig`);
    const gatewayAuthMethod = optString(gatewayConfig, 'gatewayAuthMethod', `${where}.gatewayConfig`);
    // The registry refuses values outside the enums; here only the JSON types are checked.
    input.gatewayConfig = {};
    if (gatewayType !== undefined) input.gatewayConfig.gatewayType = gatewayType as GatewayType;
    if (gatewayAuthMethod !== undefined) input.gatewayConfig.gatewayAuthMethod = gatewayAuthMethod as GatewayAuthMethod;
  }
  const config = optObject(body, 'config');
  if (config?.binaryData !== undefined) {
    input.config = { binaryData: decodeBytes(config.binaryData, `${where}.config.binaryData`).toString('base64') };
  }
  if (body.metadata !== undefined) {
    if (!isObject(body.metadata)) throw badArg(`${where}.metadata must be an object of strings`);
    input.metadata = body.metadata as Record<string, string>;
  }
  const logLevel = optString(body, 'logLevel', where);
  if (logLevel !== undefined) input.logLevel = logLevel;
  return input;
}

// --- field masks and pages --------------------------------------------------------------------------------------

/** Checks a FieldMask (comma-separated paths, either spelling) against the Device message; returns camelCase paths. */
function deviceFieldMask(raw: string | undefined, param: string): string[] {
  if (raw === undefined || raw === '') return [];
  return raw.split(',').map((p) => {
    const path = toCamelPath(p.trim());
    let shape: Shape = DEVICE_SHAPE;
    for (const part of path.split('.')) {
      const fields = typeof shape === 'object' && !Array.isArray(shape) ? (shape as { readonly [f: string]: Shape }) : undefined;
      const next = fields && Object.hasOwn(fields, part) ? fields[part] : undefined;
      if (next === undefined) throw badArg(`${param}: Device has no field "${p.trim()}"`);
      shape = next;
    }
    return path;
  });
}

/** The fields a field mask asks for; `id`, `name` and `numId` always. */
function projectDevice(device: Device, paths: readonly string[]): Json {
  const out: Json = { id: device.id, name: device.name, numId: device.numId };
  for (const path of paths) {
    const parts = path.split('.');
    let from: unknown = device;
    for (const part of parts) from = isObject(from) ? from[part] : undefined;
    if (from === undefined) continue;
    let to = out;
    for (const part of parts.slice(0, -1)) {
      const child = isObject(to[part]) ? (to[part] as Json) : {};
      to[part] = child;
      to = child;
    }
    to[parts[parts.length - 1]!] = structuredClone(from);
  }
  return out;
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
          // add a wildcard, a NUL or an empty level (iotcore-protocol.md §2).
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
          const registryId = query.one('registryId');
          const deviceId = query.one('deviceId');
          const gatewayId = query.one('gatewayId');
          const events = registry.events.filter(
            (m) =>
              (since === undefined || BigInt(m.messageId) > BigInt(since)) &&
              (registryId === undefined || m.attributes.deviceRegistryId === registryId) &&
              (deviceId === undefined || m.attributes.deviceId === deviceId) &&
              (gatewayId === undefined || m.attributes.gatewayId === gatewayId),
          );
          return { events };
        },
      },
    },
    {
      segments: ['emulator', 'errors'],
      queryParams: ['gatewayId'],
      methods: {
        GET: ({ query }) => {
          const gatewayId = query.one('gatewayId');
          return { errors: registry.errors.filter((e) => gatewayId === undefined || e.gatewayId === gatewayId) };
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
  // An unspecified gateway type means "not a gateway" (iotcore-protocol.md §3.1).
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

/** Reads the body up to MAX_BODY_BYTES; a larger one is answered 413 without being buffered. */
function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = (): ApiError =>
      new ApiError('INVALID_ARGUMENT', `request body is larger than the limit of ${MAX_BODY_BYTES} bytes`, 413);
    const declared = Number(req.headers['content-length']);
    if (declared > MAX_BODY_BYTES) {
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        chunks.length = 0;
        reject(tooLarge());
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
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

  function fail(req: IncomingMessage, res: ServerResponse, e: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (e instanceof ApiError) {
      // The rest of an oversized body is not kept: close the connection rather than reuse a half-read one.
      send(res, e.httpCode, e.toEnvelope(), e.httpCode === 413 ? { connection: 'close' } : {});
      return;
    }
    // A bug, not a bad request: the operator gets the cause on stderr, the client only an envelope.
    process.stderr.write(`admin API: ${req.method ?? ''} ${req.url ?? ''} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    send(res, 500, new ApiError('INTERNAL', 'internal error').toEnvelope());
  }

  return (req, res) => {
    handle(req, res)
      .catch((e: unknown) => fail(req, res, e))
      // Last resort, so that nothing a request does can end the process with an unhandled rejection.
      .catch(() => res.destroy());
  };
}
