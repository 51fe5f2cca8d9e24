/**
 * ClearBlade's own REST form of the device manager, beside the Google v1 paths of `admin-api.ts`, over the same
 * registry (docs/emulator-admin-api.md, "ClearBlade form"):
 *
 * - `POST /api/v/1/code/{projectSystemKey}/getRegistryCredentials`, with the project service account's token in
 *   `ClearBlade-UserToken` and `{"project","region","registry"}`, answers the registry's `systemKey`,
 *   `serviceAccountToken` and `url` (https://docs.clearblade.com/iotcore/getregistrycredentials);
 * - under `/api/v/4/webhook/execute/{registrySystemKey}/`, with the registry's token: `cloudiot_devices` (POST
 *   create, GET `?name=` get, GET list, DELETE `?name=` delete, POST `?name=&method=modifyCloudToDeviceConfig`) and
 *   `cloudiot?method=bindDeviceToGateway` / `unbindDeviceFromGateway`.
 *
 * The registry is the one the system key belongs to; a `parent` or full device `name`, when given, must name it.
 * Errors use Google's envelope `{"error":{"code","message","status"}}`, which ClearBlade's client libraries parse
 * (github.com/ClearBlade/nodejs-iot, src/v1/iotCoreError.ts). Optional per-minute quotas answer 429, and so does the
 * optional per-device config rate, shared with the v1 paths.
 *
 * Every call costs O(log n + page size) whatever the registry's size: lists page through the registry's ordered
 * indexes (`Registry.pageDevices`), never sorting or scanning the whole registry.
 *
 * @example
 * const credentials = new ClearBladeCredentials(registry.project);
 * const handler = createClearBladeHandler(registry, credentials, { quota: new CallQuota({ create: 100 }) });
 * http.createServer((req, res) => (isClearBladePath(req.url) ? handler(req, res) : admin(req, res)));
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { deviceIdProblem } from '../lib/iotcore/device-id.js';
import { tokenMatches } from './clearblade-credentials.js';
import type { ClearBladeCredentials } from './clearblade-credentials.js';
import { configRequest } from './admin-api/json-shapes.js';
import type { CallKind, CallQuota, ConfigUpdateRate } from './rate-limit.js';
import { ApiError } from './registry.js';
import type { Device, DeviceInput, DeviceSelection, Registry } from './registry.js';
import {
  BINDING_SHAPE,
  DEVICE_SHAPE,
  MODIFY_CONFIG_SHAPE,
  Query,
  badArg,
  decodeComponent,
  deviceFieldMask,
  deviceInput,
  isObject,
  parseBody,
  projectDevice,
  readBody,
  requiredString,
  send,
  sendError,
} from './rest-json.js';
import type { Json, Shape } from './rest-json.js';

/** ClearBlade's "Maximum page size for list request"; a larger pageSize is refused (ClearBlade documents no clamping). */
export const MAX_PAGE_SIZE = 500;
/** deviceIds and deviceNumIds each take at most this many IDs (ListDevicesRequest). */
const MAX_LIST_IDS = 10_000;
const TOKEN_HEADER = 'clearblade-usertoken';
const CREDENTIALS_SHAPE: Shape = { project: 'value', region: 'value', registry: 'value' };
/** ClearBlade services the emulator knows of but does not serve in this form. */
const UNSERVED_SERVICES = new Set(['cloudiot_devices_states', 'cloudiot_devices_configVersions', 'cloudiotdevice_devices']);

export interface ClearBladeApiOptions {
  /** Per-minute quotas of the device-manager calls; none enforced when absent. */
  quota?: CallQuota;
  /** The per-device config update limit, shared with the v1 paths; none enforced when absent. */
  configRate?: ConfigUpdateRate;
}

/** Whether a request target belongs to this form (everything under `/api/`). */
export function isClearBladePath(url: string | undefined): boolean {
  return /^(?:https?:\/\/[^/?#]*)?\/api(?:[/?]|$)/i.test(url ?? '');
}

interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  query: Query;
}

function splitTarget(rawUrl: string): { segments: string[]; query: string } {
  const url = rawUrl.replace(/^https?:\/\/[^/?#]*/i, '');
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  return { segments: path.split('/').slice(1).map((s) => decodeComponent(s, 'URL path')), query: q < 0 ? '' : url.slice(q + 1) };
}

function notAllowed(method: string, allow: string[]): ApiError {
  return new ApiError('UNIMPLEMENTED', `${method} is not supported on this resource; use ${allow.join(', ')}`, 405);
}

/** Checks `ClearBlade-UserToken` against the token of the system the path names; 401 when missing or wrong. */
function authenticate(req: IncomingMessage, expected: string, whose: string): void {
  const given = req.headers[TOKEN_HEADER];
  if (typeof given !== 'string' || given === '') {
    throw new ApiError('UNAUTHENTICATED', `missing ClearBlade-UserToken header: send ${whose}`);
  }
  if (!tokenMatches(given, expected)) {
    throw new ApiError('UNAUTHENTICATED', `the ClearBlade-UserToken header does not hold ${whose}`);
  }
}

/**
 * The request handler of ClearBlade's form. It never throws: every failure, a bug included, is answered with an
 * error envelope.
 */
export function createClearBladeHandler(
  registry: Registry,
  credentials: ClearBladeCredentials,
  options: ClearBladeApiOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const take = (kind: CallKind): void => options.quota?.take(kind);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { segments, query: rawQuery } = splitTarget(req.url ?? '/');
    const method = req.method ?? '';
    const [api, v, version, ...rest] = segments;
    if (api !== 'api' || v !== 'v') throw notFound(segments);
    if (version === '1' && rest.length === 3 && rest[0] === 'code' && rest[2] === 'getRegistryCredentials') {
      if (method !== 'POST') throw notAllowed(method, ['POST']);
      await getRegistryCredentials({ req, res, method, query: new Query(rawQuery) }, rest[1]!);
      return;
    }
    if (version === '4' && rest.length === 4 && rest[0] === 'webhook' && rest[1] === 'execute') {
      const registryId = regionalRegistry(rest[2]!);
      authenticate(req, credentials.forRegistry(registryId).serviceAccountToken, "the registry's serviceAccountToken (from getRegistryCredentials)");
      const call: Call = { req, res, method, query: new Query(rawQuery) };
      const service = rest[3]!;
      if (service === 'cloudiot_devices') await devices(call, registryId);
      else if (service === 'cloudiot') await cloudiot(call, registryId);
      else if (UNSERVED_SERVICES.has(service)) {
        throw new ApiError('UNIMPLEMENTED', `${service} is not served in the emulator's ClearBlade form; use the v1 paths (docs/emulator-admin-api.md)`);
      } else throw notFound(segments);
      return;
    }
    throw notFound(segments);
  }

  function notFound(segments: string[]): ApiError {
    return new ApiError('NOT_FOUND', `no such resource: /${segments.join('/')}`);
  }

  /** The registry a regional system key belongs to; 404 for the project's key or an unknown one. */
  function regionalRegistry(systemKey: string): string {
    if (systemKey === credentials.systemKey) {
      throw new ApiError(
        'NOT_FOUND',
        "this is the project service account's systemKey; the device manager is under the registry's systemKey, which getRegistryCredentials answers",
      );
    }
    const registryId = credentials.registryOfKey(systemKey);
    if (registryId === undefined) throw new ApiError('NOT_FOUND', `no registry has the systemKey ${systemKey}: ask getRegistryCredentials for it`);
    return registryId;
  }

  async function getRegistryCredentials(call: Call, systemKey: string): Promise<void> {
    if (systemKey !== credentials.systemKey) {
      throw new ApiError('NOT_FOUND', `no code service under the systemKey ${systemKey}: use the systemKey of the project's service account`);
    }
    authenticate(call.req, credentials.token, "the project service account's token");
    call.query.checkKnown([]);
    const body = parseBody(await readBody(call.req), CREDENTIALS_SHAPE, 'request');
    const project = requiredString(body, 'project', 'request');
    const region = requiredString(body, 'region', 'request');
    const registryId = requiredString(body, 'registry', 'request');
    if (project !== credentials.project) {
      throw new ApiError('PERMISSION_DENIED', `the service account belongs to project ${credentials.project}, not ${project}`);
    }
    if (region !== registry.location) throw new ApiError('NOT_FOUND', `project ${project} has no registries in region ${region}`);
    registry.getRegistry(registryId); // NOT_FOUND for an unknown registry
    send(call.res, 200, credentials.forRegistry(registryId));
  }

  // --- cloudiot_devices -----------------------------------------------------------------------------------------

  async function devices(call: Call, registryId: string): Promise<void> {
    const { method, query } = call;
    const verb = query.one('method');
    if (verb !== undefined) {
      if (method !== 'POST') throw badArg(`method=${verb} takes POST`);
      if (verb === 'modifyCloudToDeviceConfig') return modifyConfig(call, registryId);
      if (verb === 'sendCommandToDevice') {
        throw new ApiError('UNIMPLEMENTED', `${verb} is not served in the emulator's ClearBlade form; use the v1 path (docs/emulator-admin-api.md)`);
      }
      throw badArg(`unknown method ${JSON.stringify(verb)} on cloudiot_devices`);
    }
    switch (method) {
      case 'POST': {
        query.checkKnown(['parent']);
        checkParent(query, registryId);
        take('create');
        const body = parseBody(await readBody(call.req), DEVICE_SHAPE, 'device');
        const input = deviceInput(body);
        if (input.id === undefined || input.id === '') throw badArg('device.id is required');
        // `name` is the server's to set; ClearBlade's own client libraries send one, so it is ignored rather than refused.
        const device = registry.createDevice(registryId, input as DeviceInput);
        send(call.res, 200, clearBladeDevice(registry, registryId, device, [], false, true));
        return;
      }
      case 'GET':
        if (query.one('name') !== undefined) {
          query.checkKnown(['name', 'fieldMask', 'base64Encode']);
          take('read');
          const device = registry.getDevice(registryId, deviceRef(query.one('name')!, registryId));
          const mask = deviceFieldMask(query.one('fieldMask'), 'fieldMask');
          // An unset or empty field mask returns every field (ClearBlade's devices.get).
          send(call.res, 200, clearBladeDevice(registry, registryId, device, mask, base64Flag(query), true));
        } else {
          query.checkKnown([
            'parent',
            'pageSize',
            'pageToken',
            'fieldMask',
            'deviceIds',
            'deviceNumIds',
            'gatewayListOptions.gatewayType',
            'gatewayListOptions.associationsGatewayId',
            'gatewayListOptions.associationsDeviceId',
            'base64Encode',
          ]);
          checkParent(query, registryId);
          take('read');
          send(call.res, 200, listDevices(registry, registryId, query));
        }
        return;
      case 'DELETE': {
        query.checkKnown(['name']);
        const name = query.one('name');
        if (name === undefined || name === '') throw badArg('name is required: the device ID, numId or full name to delete');
        take('delete');
        registry.deleteDevice(registryId, deviceRef(name, registryId));
        // ClearBlade documents its deletes as 204 with an empty body.
        call.res.writeHead(204);
        call.res.end();
        return;
      }
      case 'PATCH':
        throw new ApiError('UNIMPLEMENTED', "devices.patch is not served in the emulator's ClearBlade form; use the v1 path (docs/emulator-admin-api.md)");
      default:
        throw notAllowed(method, ['GET', 'POST', 'DELETE']);
    }
  }

  /**
   * `cloudiot_devices?name=...&method=modifyCloudToDeviceConfig`, body `{"versionToUpdate","binaryData"}`
   * (https://docs.clearblade.com/iotcore/modifycloudtodeviceconfig): answers the new DeviceConfig.
   */
  async function modifyConfig(call: Call, registryId: string): Promise<void> {
    call.query.checkKnown(['name', 'method']);
    const name = call.query.one('name');
    if (name === undefined || name === '') throw badArg('name is required: the device ID, numId or full name');
    const { binaryData, versionToUpdate } = configRequest(parseBody(await readBody(call.req), MODIFY_CONFIG_SHAPE, 'request'));
    const deviceId = registry.getDevice(registryId, deviceRef(name, registryId)).id;
    const modify = () => registry.modifyConfig(registryId, deviceId, binaryData, versionToUpdate);
    send(call.res, 200, options.configRate === undefined ? modify() : options.configRate.update(registryId, deviceId, modify));
  }

  // --- cloudiot (bindings) ----------------------------------------------------------------------------------------

  async function cloudiot(call: Call, registryId: string): Promise<void> {
    const { method, query } = call;
    const verb = query.one('method');
    if (verb !== 'bindDeviceToGateway' && verb !== 'unbindDeviceFromGateway') {
      throw badArg(
        verb === undefined
          ? "method is required: bindDeviceToGateway or unbindDeviceFromGateway (registry administration is not served; registries come from the emulator's registry file)"
          : `unknown method ${JSON.stringify(verb)}: use bindDeviceToGateway or unbindDeviceFromGateway`,
      );
    }
    if (method !== 'POST') throw notAllowed(method, ['POST']);
    query.checkKnown(['method', 'parent']);
    checkParent(query, registryId);
    take('bind');
    const body = parseBody(await readBody(call.req), BINDING_SHAPE, 'request');
    const gatewayId = deviceRef(requiredString(body, 'gatewayId', 'request'), registryId, 'request.gatewayId');
    const deviceId = deviceRef(requiredString(body, 'deviceId', 'request'), registryId, 'request.deviceId');
    if (verb === 'bindDeviceToGateway') registry.bind(registryId, gatewayId, deviceId);
    else registry.unbind(registryId, gatewayId, deviceId);
    send(call.res, 200, {});
  }

  // --- names ------------------------------------------------------------------------------------------------------

  /** `parent`, when given, must name the system key's registry: its full name or its bare ID. */
  function checkParent(query: Query, registryId: string): void {
    const parent = query.one('parent');
    if (parent === undefined || parent === '') return;
    const own = registry.registryName(registryId);
    if (parent === own || parent === registryId) return;
    if (!/^projects\/[^/]+\/locations\/[^/]+\/registries\/[^/]+$/.test(parent) && deviceIdProblem(parent) !== undefined) {
      throw badArg(`parent must be a registry name (projects/{p}/locations/{l}/registries/{r}) or a registry ID, not ${JSON.stringify(parent)}`);
    }
    throw new ApiError('NOT_FOUND', `registry ${parent} not found under this system key, which is ${own}'s`);
  }

  /**
   * A device named by ID, numId or full name (`projects/../devices/{id or numId}`), as the registry looks it up;
   * 400 when it cannot be a device at all, 404 when a full name points at another registry.
   */
  function deviceRef(name: string, registryId: string, what = 'name'): string {
    let ref = name;
    if (name.includes('/')) {
      const m = /^(projects\/[^/]+\/locations\/[^/]+\/registries\/[^/]+)\/devices\/([^/]+)$/.exec(name);
      if (!m) throw badArg(`${what} must be a device ID, a numId or projects/{p}/locations/{l}/registries/{r}/devices/{id}, not ${JSON.stringify(name)}`);
      if (m[1] !== registry.registryName(registryId)) throw new ApiError('NOT_FOUND', `device ${name} not found: this system key is ${registry.registryName(registryId)}'s`);
      ref = m[2]!;
    }
    if (!/^\d{1,20}$/.test(ref)) {
      const problem = deviceIdProblem(ref);
      if (problem !== undefined) throw badArg(`${what}: device id ${problem}`);
    }
    return ref;
  }

  return (req, res) => {
    handle(req, res)
      .catch((e: unknown) => sendError(req, res, e, 'ClearBlade API'))
      // Last resort, so that nothing a request does can end the process with an unhandled rejection.
      .catch(() => res.destroy());
  };
}

function base64Flag(query: Query): boolean {
  const raw = query.one('base64Encode');
  if (raw === undefined || raw === '') return false;
  if (!/^(true|false)$/i.test(raw)) throw badArg('base64Encode must be true or false');
  return raw.toLowerCase() === 'true';
}

/**
 * A device as ClearBlade answers it: `name` ends in the numId ("When name is populated as a response from the
 * service, it always ends in the device's numeric ID", docs.clearblade.com/iotcore/projects-locations-registries-devices),
 * and the state's binaryData is plain text unless `base64Encode=true` (ClearBlade's devices.get). Every field when
 * `whole` and no field mask; else only `id`, `name`, `numId` and the fields the mask names.
 */
function clearBladeDevice(registry: Registry, registryId: string, device: Device, mask: readonly string[], base64Encode: boolean, whole: boolean): Json {
  const out = whole && mask.length === 0 ? (structuredClone(device) as unknown as Json) : projectDevice(device, mask);
  out.name = `${registry.registryName(registryId)}/devices/${device.numId}`;
  const state = out.state;
  if (!base64Encode && isObject(state) && typeof state.binaryData === 'string') {
    out.state = { ...state, binaryData: Buffer.from(state.binaryData, 'base64').toString('utf8') };
  }
  return out;
}

// --- list -------------------------------------------------------------------------------------------------------

/** What a page token holds: the selection it pages through, and the key of the last device served. */
interface PageToken {
  s: string;
  a: string;
}

function encodePageToken(selection: string, last: number | bigint): string {
  return Buffer.from(JSON.stringify({ s: selection, a: last.toString() } satisfies PageToken)).toString('base64url');
}

/** The position a page token resumes after, as decimal digits (a registry order key, or a numId for named devices). */
function decodePageToken(token: string, selection: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (!isObject(parsed) || typeof parsed.s !== 'string' || typeof parsed.a !== 'string' || !/^\d{1,20}$/.test(parsed.a)) {
    throw badArg('pageToken is not one this API returned');
  }
  if (parsed.s !== selection) throw badArg('pageToken belongs to a list with other filters: send the same filters as the first page');
  return parsed.a;
}

/** devices.list: one gateway filter at most, then a page, then the field mask (`id`, `name`, `numId` unless it asks for more). */
function listDevices(registry: Registry, registryId: string, query: Query): Json {
  const requested = query.count('pageSize', 0);
  if (requested > MAX_PAGE_SIZE) throw badArg(`pageSize must be at most ${MAX_PAGE_SIZE} (got ${requested})`);
  const size = requested === 0 ? MAX_PAGE_SIZE : requested;
  const mask = deviceFieldMask(query.one('fieldMask'), 'fieldMask');
  const base64Encode = base64Flag(query);

  const gatewayType = query.one('gatewayListOptions.gatewayType') || undefined;
  const associationsGatewayId = query.one('gatewayListOptions.associationsGatewayId') || undefined;
  const associationsDeviceId = query.one('gatewayListOptions.associationsDeviceId') || undefined;
  // GatewayListOptions is a oneof: at most one of its filters per call.
  if ([gatewayType, associationsGatewayId, associationsDeviceId].filter((x) => x !== undefined).length > 1) {
    throw badArg('gatewayListOptions takes only one of gatewayType, associationsGatewayId, associationsDeviceId');
  }
  let selection: DeviceSelection = { kind: 'all' };
  let signature = 'all';
  if (gatewayType === 'GATEWAY') {
    selection = { kind: 'gateways' };
    signature = 'gateways';
  } else if (gatewayType === 'NON_GATEWAY') {
    // A device of unspecified type counts as a non-gateway.
    selection = { kind: 'nonGateways' };
    signature = 'nonGateways';
  } else if (gatewayType !== undefined && gatewayType !== 'GATEWAY_TYPE_UNSPECIFIED') {
    throw badArg('gatewayListOptions.gatewayType must be GATEWAY, NON_GATEWAY or GATEWAY_TYPE_UNSPECIFIED');
  } else if (associationsGatewayId !== undefined) {
    const gateway = registry.getDevice(registryId, associationsGatewayId);
    selection = { kind: 'boundTo', gatewayId: gateway.id };
    signature = `boundTo:${gateway.numId}`;
  } else if (associationsDeviceId !== undefined) {
    const device = registry.getDevice(registryId, associationsDeviceId);
    selection = { kind: 'gatewaysOf', deviceId: device.id };
    signature = `gatewaysOf:${device.numId}`;
  }

  const ids = query.list('deviceIds');
  const numIds = query.list('deviceNumIds');
  const named = ids.length > 0 || numIds.length > 0;
  if (named) signature = `ids:${signature}`;
  const token = query.one('pageToken');
  const after = token === undefined || token === '' ? undefined : decodePageToken(token, signature);
  const page = named
    ? pageOfNamedDevices(registry, registryId, ids, numIds, selection, after === undefined ? undefined : BigInt(after), size)
    : registry.pageDevices(registryId, selection, after === undefined ? undefined : Number(after), size);
  // As Google's devices.list: `id`, `name` and `numId`, and the fields the mask names.
  const out: Json = { devices: page.devices.map((d) => clearBladeDevice(registry, registryId, d, mask, base64Encode, false)) };
  // The token holds the last device's position, not an offset: creating or deleting devices between two pages
  // neither repeats nor skips the others.
  if (page.more && page.lastKey !== undefined) out.nextPageToken = encodePageToken(signature, page.lastKey);
  return out;
}

/**
 * A page of the devices `deviceIds` and `deviceNumIds` name (their union), in numId order, that also match the
 * gateway filter. Costs O(m log m) in the number of IDs named (at most 10,000 each), not in the registry's size.
 */
function pageOfNamedDevices(
  registry: Registry,
  registryId: string,
  ids: string[],
  numIds: string[],
  selection: DeviceSelection,
  after: bigint | undefined,
  size: number,
): { devices: Device[]; lastKey: bigint | undefined; more: boolean } {
  if (ids.length > MAX_LIST_IDS || numIds.length > MAX_LIST_IDS) throw badArg(`deviceIds and deviceNumIds take at most ${MAX_LIST_IDS} IDs each`);
  if (numIds.some((n) => !/^\d{1,20}$/.test(n))) throw badArg('deviceNumIds must be unsigned integers');
  const keep = (d: Device): boolean => {
    switch (selection.kind) {
      case 'all':
        return true;
      case 'gateways':
        return d.gatewayConfig.gatewayType === 'GATEWAY';
      case 'nonGateways':
        return d.gatewayConfig.gatewayType !== 'GATEWAY';
      case 'boundTo':
        return registry.isBound(registryId, selection.gatewayId, d.id);
      case 'gatewaysOf':
        return registry.isBound(registryId, d.id, selection.deviceId);
    }
  };
  const found = new Map<string, Device>();
  for (const ref of [...ids, ...numIds.map((n) => BigInt(n).toString())]) {
    const d = registry.findDevice(registryId, ref);
    if (d !== undefined && keep(d)) found.set(d.id, d);
  }
  const sorted = [...found.values()].map((d) => ({ key: BigInt(d.numId), d })).sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  const rest = after === undefined ? sorted : sorted.filter((x) => x.key > after);
  const taken = rest.slice(0, size);
  return { devices: taken.map((x) => x.d), lastKey: taken[taken.length - 1]?.key, more: rest.length > size };
}
