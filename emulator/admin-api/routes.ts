/**
 * The admin API's routes (docs/emulator-admin-api.md, "Routes"): one entry per method and path, each naming the
 * query parameters it reads and the message its body holds. A new route is one more entry in ADMIN_ROUTES.
 *
 * @example
 * { method: 'GET', path: '/emulator/health', handle: (r) => health(r.registry) }
 */
import type { Faults } from '../faults.js';
import type { ConfigUpdateRate } from '../rate-limit.js';
import { ApiError } from '../registry.js';
import type { Device, DeviceRegistry, Registry } from '../registry.js';
import { deviceFieldMask, deviceInput, projectDevice, badArg } from '../rest-json.js';
import type { Json, Query } from '../rest-json.js';
import { BINDING_BODY, DEVICE_BODY, FAULTS_BODY, MODIFY_CONFIG_BODY, SEND_COMMAND_BODY, bindingRequest, commandRequest, configRequest, faultsRequest, health, listPage, newDevice } from './json-shapes.js';
import type { BodyMessage } from './json-shapes.js';
import { BY_ID, BY_NUM_ID, deviceIdFilter, eventFilter, gatewayListFilter, newest, paginate } from './query.js';
import type { RouteEntry } from './router.js';

/** The part of the MQTT side the admin API needs: deliver a command to a connected, subscribed device. */
export interface CommandBridge {
  /** Returns false when the device is not connected or not subscribed to its commands topic. */
  sendCommand(registryId: string, deviceId: string, subfolder: string | undefined, payload: Buffer): boolean;
}

/** The part of the MQTT side the /emulator/faults and kick routes drive: the live faults, and its connections. */
export interface FaultControl {
  /** The faults in force: a live object the bridge reads at every packet. */
  readonly faults: Faults;
  setFaults(faults: Partial<Faults>): void;
  clearFaults(): void;
  /** Closes a client's connection as a takeover would, by client ID or device ID; false if none is live. */
  kick(clientIdOrDeviceId: string): boolean;
}

/** What a route's handler is given. */
export interface AdminRequest {
  readonly registry: Registry;
  readonly bridge: CommandBridge;
  /** The MQTT side's faults; UNIMPLEMENTED when the admin API serves no bridge. */
  faultControl(): FaultControl;
  /** The path's `{name}` segments. */
  readonly params: Record<string, string>;
  readonly query: Query;
  /** The JSON body, `{}` when the route takes none; read at most once. */
  body(): Promise<Json>;
  /** The registry the path names; NOT_FOUND when it, or the path's project or location, is not the emulator's. */
  registryId(): string;
  /** The device the path names (by ID or numId), in the path's registry. */
  device(): Device;
  /** The per-device config update limit, when it is enforced (`configRateLimit`). */
  readonly configRate: ConfigUpdateRate | undefined;
}

export interface AdminRoute extends RouteEntry {
  /** The message the JSON body holds, for routes that take one. */
  body?: BodyMessage;
  handle(request: AdminRequest): unknown;
}

const LOCATION = '/v1/projects/{project}/locations/{location}';
const REGISTRY = `${LOCATION}/registries/{registry}`;
const DEVICE = `${REGISTRY}/devices/{device}`;

export const ADMIN_ROUTES: readonly AdminRoute[] = [
  {
    method: 'GET',
    path: `${LOCATION}/registries`,
    query: ['pageSize', 'pageToken'],
    handle: (r) => {
      checkLocation(r.registry, r.params);
      return listPage('deviceRegistries', paginate(r.registry.registries(), BY_ID, r.query));
    },
  },
  { method: 'GET', path: REGISTRY, handle: (r): DeviceRegistry => r.registry.getRegistry(r.registryId()) },
  {
    method: 'GET',
    path: `${REGISTRY}/devices`,
    query: ['deviceIds', 'deviceNumIds', 'gatewayListOptions.gatewayType', 'gatewayListOptions.associationsGatewayId', 'gatewayListOptions.associationsDeviceId', 'fieldMask', 'pageSize', 'pageToken'],
    handle: (r) => {
      // Filters, then a page, then the field mask (`id`, `name`, `numId` unless it asks for more).
      const registryId = r.registryId();
      const named = deviceIdFilter(r.query);
      const mask = deviceFieldMask(r.query.one('fieldMask'), 'fieldMask');
      const gateways = gatewayListFilter(r.registry, registryId, r.query);
      const selected = r.registry.listDevices(registryId).filter((d) => named(d) && gateways(d));
      const result = paginate(selected, BY_NUM_ID, r.query);
      return listPage('devices', { ...result, page: result.page.map((d) => projectDevice(d, mask)) });
    },
  },
  {
    method: 'POST',
    path: `${REGISTRY}/devices`,
    body: DEVICE_BODY,
    handle: async (r) => {
      const registryId = r.registryId();
      return r.registry.createDevice(registryId, newDevice(await r.body()));
    },
  },
  {
    method: 'GET',
    path: DEVICE,
    query: ['fieldMask'],
    handle: (r) => {
      const device = r.device();
      const mask = deviceFieldMask(r.query.one('fieldMask'), 'fieldMask');
      return mask.length === 0 ? device : projectDevice(device, mask);
    },
  },
  {
    method: 'PATCH',
    path: DEVICE,
    query: ['updateMask'],
    body: DEVICE_BODY,
    handle: async (r) => {
      const registryId = r.registryId();
      const input = deviceInput(await r.body());
      const mask = deviceFieldMask(r.query.one('updateMask'), 'updateMask');
      if (mask.length === 0) throw badArg('updateMask is required and names the fields to change, e.g. updateMask=blocked,metadata');
      return r.registry.patchDevice(registryId, r.params.device!, input, mask);
    },
  },
  {
    method: 'DELETE',
    path: DEVICE,
    handle: (r) => {
      r.registry.deleteDevice(r.registryId(), r.params.device!);
      return {};
    },
  },
  {
    method: 'POST',
    path: `${DEVICE}:modifyCloudToDeviceConfig`,
    body: MODIFY_CONFIG_BODY,
    handle: async (r) => {
      const registryId = r.registryId();
      const { binaryData, versionToUpdate } = configRequest(await r.body());
      const deviceId = r.device().id;
      const modify = () => r.registry.modifyConfig(registryId, deviceId, binaryData, versionToUpdate);
      return r.configRate === undefined ? modify() : r.configRate.update(registryId, deviceId, modify);
    },
  },
  {
    method: 'POST',
    path: `${DEVICE}:sendCommandToDevice`,
    body: SEND_COMMAND_BODY,
    handle: async (r) => {
      const registryId = r.registryId();
      const device = r.registry.getDevice(registryId, r.params.device!);
      const { payload, subfolder } = commandRequest(await r.body());
      // Commands are never queued: only a device connected and subscribed right now gets one (§2).
      if (!r.bridge.sendCommand(registryId, device.id, subfolder, payload)) throw new ApiError('FAILED_PRECONDITION', `device is not connected/subscribed: ${device.name}`);
      return {};
    },
  },
  {
    method: 'GET',
    path: `${DEVICE}/configVersions`,
    query: ['numVersions'],
    handle: (r) => ({ deviceConfigs: newest(r.registry.configVersions(r.registryId(), r.params.device!), r.query, 'numVersions') }),
  },
  {
    method: 'GET',
    path: `${DEVICE}/states`,
    query: ['numStates'],
    handle: (r) => ({ deviceStates: newest(r.registry.states(r.registryId(), r.params.device!), r.query, 'numStates') }),
  },
  bindingRoute('bindDeviceToGateway', (registry, registryId, { gatewayId, deviceId }) => registry.bind(registryId, gatewayId, deviceId)),
  bindingRoute('unbindDeviceFromGateway', (registry, registryId, { gatewayId, deviceId }) => registry.unbind(registryId, gatewayId, deviceId)),
  {
    method: 'GET',
    path: '/emulator/events',
    query: ['registryId', 'deviceId', 'gatewayId', 'since'],
    handle: (r) => ({ events: r.registry.traffic.eventsMatching(eventFilter(r.query)) }),
  },
  { method: 'GET', path: '/emulator/errors', query: ['gatewayId'], handle: (r) => ({ errors: r.registry.traffic.errorsOf(r.query.one('gatewayId')) }) },
  { method: 'GET', path: '/emulator/health', handle: (r) => health(r.registry) },
  { method: 'GET', path: '/emulator/faults', handle: (r) => r.faultControl().faults },
  {
    method: 'PATCH',
    path: '/emulator/faults',
    body: FAULTS_BODY,
    handle: async (r) => {
      const control = r.faultControl();
      control.setFaults(faultsRequest(await r.body()));
      return control.faults;
    },
  },
  {
    method: 'DELETE',
    path: '/emulator/faults',
    handle: (r) => {
      const control = r.faultControl();
      control.clearFaults();
      return control.faults;
    },
  },
  {
    method: 'POST',
    path: '/emulator/connections/{client}:kick',
    handle: (r) => {
      if (!r.faultControl().kick(r.params.client!)) throw new ApiError('NOT_FOUND', `no live connection with client ID or device ID ${r.params.client!}`);
      return {};
    },
  },
];

/** registries.bindDeviceToGateway and unbindDeviceFromGateway: the same request, and `apply` to the registry. */
function bindingRoute(verb: string, apply: (registry: Registry, registryId: string, binding: { gatewayId: string; deviceId: string }) => void): AdminRoute {
  return {
    method: 'POST',
    path: `${REGISTRY}:${verb}`,
    body: BINDING_BODY,
    handle: async (r) => {
      const registryId = r.registryId();
      apply(r.registry, registryId, bindingRequest(await r.body()));
      return {};
    },
  };
}

/** NOT_FOUND unless the path's project and location are the emulator's. */
export function checkLocation(registry: Registry, params: Record<string, string>): void {
  if (params.project === registry.project && params.location === registry.location) return;
  const what = params.registry === undefined ? 'location' : 'registry';
  const name = `projects/${params.project}/locations/${params.location}${params.registry === undefined ? '' : `/registries/${params.registry}`}`;
  throw new ApiError('NOT_FOUND', `${what} ${name} not found`);
}
