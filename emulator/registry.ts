/**
 * The emulator's device registry: IoT Core's own resource shapes (docs/protocol.md §6.3), loaded from a
 * registry file and changed through the admin API or by what devices do over MQTT. What the bridge received and
 * sent is kept apart, in its traffic log (traffic-log.ts); `events` and `errors` read it.
 *
 * The MQTT side listens to its events: `config` (a new config version to push), `device-deleted`, `device-blocked`;
 * the dashboard to `event` (telemetry recorded) and `error-sent`.
 *
 * @example
 * const reg = Registry.fromDocument(JSON.parse(fs.readFileSync('registry.json', 'utf8')));
 * reg.modifyConfig('demo-registry', 'pump-0042', Buffer.from('{"rate":5}'));
 */
import { EventEmitter } from 'node:events';
import { deviceIdProblem } from '../lib/iotcore/device-id.js';
import { MAX_CONFIG_BYTES } from '../lib/iotcore/limits.js';
import { HTTP_STATUS_OF, type ApiStatus } from '../lib/iotcore/rpc-status.js';
import { OrderedIndex } from './ordered-index.js';
import { DEFAULT_REGISTRY_POLICY, resolveRegistryPolicy } from './registry-policy.js';
import type { RegistryPolicy } from './registry-policy.js';
import { TrafficLog } from './traffic-log.js';
import type { ErrorRecord, PubsubMessage } from './traffic-log.js';

export type { ErrorRecord, PubsubMessage } from './traffic-log.js';

export type KeyFormat = 'RSA_PEM' | 'RSA_X509_PEM' | 'ES256_PEM' | 'ES256_X509_PEM';
export const KEY_FORMATS: readonly KeyFormat[] = ['RSA_PEM', 'RSA_X509_PEM', 'ES256_PEM', 'ES256_X509_PEM'];
export type GatewayType = 'GATEWAY_TYPE_UNSPECIFIED' | 'GATEWAY' | 'NON_GATEWAY';
export type GatewayAuthMethod =
  | 'GATEWAY_AUTH_METHOD_UNSPECIFIED'
  | 'ASSOCIATION_ONLY'
  | 'DEVICE_AUTH_TOKEN_ONLY'
  | 'ASSOCIATION_AND_DEVICE_AUTH_TOKEN';
export const GATEWAY_TYPES: readonly GatewayType[] = ['GATEWAY_TYPE_UNSPECIFIED', 'GATEWAY', 'NON_GATEWAY'];
export const GATEWAY_AUTH_METHODS: readonly GatewayAuthMethod[] = [
  'GATEWAY_AUTH_METHOD_UNSPECIFIED',
  'ASSOCIATION_ONLY',
  'DEVICE_AUTH_TOKEN_ONLY',
  'ASSOCIATION_AND_DEVICE_AUTH_TOKEN',
];
/** Device.logLevel (docs/protocol.md §6.3); unspecified means the registry's level. */
export const LOG_LEVELS: readonly string[] = ['LOG_LEVEL_UNSPECIFIED', 'NONE', 'ERROR', 'INFO', 'DEBUG'];

export interface DeviceCredential {
  publicKey: { format: KeyFormat; key: string };
  /** RFC 3339; after it the key is ignored for new authentications. */
  expirationTime?: string;
}

export interface DeviceConfig {
  version: string;
  cloudUpdateTime: string;
  deviceAckTime?: string;
  binaryData: string;
}

export interface DeviceState {
  updateTime: string;
  binaryData: string;
}

export interface Status {
  code: number;
  message: string;
}

export interface Device {
  id: string;
  name: string;
  numId: string;
  credentials: DeviceCredential[];
  blocked: boolean;
  gatewayConfig: {
    gatewayType: GatewayType;
    gatewayAuthMethod: GatewayAuthMethod;
    lastAccessedGatewayId?: string;
    lastAccessedGatewayTime?: string;
  };
  config: DeviceConfig;
  state?: DeviceState;
  metadata: Record<string, string>;
  logLevel?: string;
  lastHeartbeatTime?: string;
  lastEventTime?: string;
  lastStateTime?: string;
  lastConfigAckTime?: string;
  lastConfigSendTime?: string;
  lastErrorTime?: string;
  lastErrorStatus?: Status;
}

export interface DeviceRegistry {
  id: string;
  name: string;
  eventNotificationConfigs: { subfolderMatches?: string; pubsubTopicName: string }[];
  stateNotificationConfig?: { pubsubTopicName: string };
  mqttConfig: { mqttEnabledState: 'MQTT_ENABLED' | 'MQTT_DISABLED' };
  httpConfig: { httpEnabledState: 'HTTP_ENABLED' | 'HTTP_DISABLED' };
}


export class ApiError extends Error {
  override readonly name = 'ApiError';
  /** `httpCode` overrides the status's usual HTTP code, for transport-level answers such as 405 and 413. */
  constructor(
    readonly status: ApiStatus,
    message: string,
    private readonly httpCodeOverride?: number,
  ) {
    super(message);
  }
  get httpCode(): number {
    return this.httpCodeOverride ?? HTTP_STATUS_OF[this.status];
  }
  toEnvelope(): { error: { code: number; message: string; status: ApiStatus } } {
    return { error: { code: this.httpCode, message: this.message, status: this.status } };
  }
}

/** The registry file (docs/design.md "Emulator"). */
export interface RegistryDocument {
  project: string;
  location: string;
  registries: {
    id: string;
    eventNotificationConfigs?: DeviceRegistry['eventNotificationConfigs'];
    stateNotificationConfig?: DeviceRegistry['stateNotificationConfig'];
    mqttConfig?: DeviceRegistry['mqttConfig'];
    httpConfig?: DeviceRegistry['httpConfig'];
    devices?: DeviceInput[];
    bindings?: { gatewayId: string; deviceId: string }[];
  }[];
}

/** A device as a client sends it to devices.create or writes it in the registry file. */
export interface DeviceInput {
  id: string;
  credentials?: DeviceCredential[];
  blocked?: boolean;
  gatewayConfig?: { gatewayType?: GatewayType; gatewayAuthMethod?: GatewayAuthMethod };
  config?: { binaryData?: string };
  metadata?: Record<string, string>;
  logLevel?: string;
}

const MAX_CONFIG_VERSIONS = 10;
const MAX_STATES = 10;
const MAX_CREDENTIALS = 3;
/** Device metadata limits (docs/protocol.md §4). */
const MAX_METADATA_PAIRS = 500;
const MAX_METADATA_VALUE_BYTES = 32 * 1024;
const MAX_METADATA_TOTAL_BYTES = 256 * 1024;
const METADATA_KEY = /^[a-zA-Z][-a-zA-Z0-9._+~%]{0,127}$/;

interface RegistryEntry {
  registry: DeviceRegistry;
  devices: Map<string, Device>;
  configVersions: Map<string, DeviceConfig[]>;
  states: Map<string, DeviceState[]>;
  /** numId -> device ID */
  byNumId: Map<string, string>;
  /** Device IDs in creation order (which is numId order): all of them, the gateways, the others. */
  order: { all: OrderedIndex<string>; gateways: OrderedIndex<string>; others: OrderedIndex<string> };
  /** The order key of the next device created. */
  nextOrder: number;
  /** gatewayId -> the devices bound to it, in binding order. */
  bound: Map<string, OrderedIndex<string>>;
  /** deviceId -> the gateways it is bound to, in binding order (the reverse of `bound`, same keys). */
  boundTo: Map<string, OrderedIndex<string>>;
  /** The key of the next binding, shared by its entries in `bound` and `boundTo`. */
  nextBinding: number;
}

/** Which devices a page lists: all, gateways or the others, those bound to a gateway, or a device's gateways. */
export type DeviceSelection =
  | { kind: 'all' | 'gateways' | 'nonGateways' }
  | { kind: 'boundTo'; gatewayId: string }
  | { kind: 'gatewaysOf'; deviceId: string };

const now = (): string => new Date().toISOString();

function badArg(message: string): ApiError {
  return new ApiError('INVALID_ARGUMENT', message);
}

function isBase64(s: string): boolean {
  return /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s);
}

export class Registry extends EventEmitter {
  readonly project: string;
  readonly location: string;
  /** What the bridge received and sent. */
  readonly traffic = new TrafficLog();
  private readonly entries = new Map<string, RegistryEntry>();
  private nextNumId = 2_000_000_000_000_000n;
  #policy: RegistryPolicy = { ...DEFAULT_REGISTRY_POLICY };

  constructor(project: string, location: string) {
    super();
    this.project = project;
    this.location = location;
  }

  /** The telemetry received, oldest first (the traffic log's). */
  get events(): PubsubMessage[] {
    return this.traffic.events;
  }

  /** The errors-topic messages sent or logged, oldest first (the traffic log's). */
  get errors(): ErrorRecord[] {
    return this.traffic.errors;
  }

  /** A registry loaded from a registry file; `policy` is in force while its bindings are made, and after. */
  static fromDocument(doc: RegistryDocument, policy: Partial<RegistryPolicy> = {}): Registry {
    if (typeof doc?.project !== 'string' || typeof doc.location !== 'string' || !Array.isArray(doc.registries)) {
      throw badArg('registry file needs "project", "location" and "registries"');
    }
    const reg = new Registry(doc.project, doc.location);
    reg.configure(policy);
    for (const r of doc.registries) {
      reg.createRegistry(r);
      for (const d of r.devices ?? []) reg.createDevice(r.id, d);
      for (const b of r.bindings ?? []) reg.bind(r.id, b.gatewayId, b.deviceId);
    }
    return reg;
  }

  /** The limits and variants in force (registry-policy.ts). */
  get policy(): Readonly<RegistryPolicy> {
    return this.#policy;
  }

  /** Changes some of the policy; checks every value and throws TypeError on a bad one, changing nothing. */
  configure(policy: Partial<RegistryPolicy>): void {
    this.#policy = resolveRegistryPolicy(policy, this.#policy);
  }

  registryName(registryId: string): string {
    return `projects/${this.project}/locations/${this.location}/registries/${registryId}`;
  }

  createRegistry(input: RegistryDocument['registries'][number]): DeviceRegistry {
    const problem = deviceIdProblem(input.id);
    if (problem !== undefined) throw badArg(`registry id ${problem}`);
    if (this.entries.has(input.id)) throw new ApiError('ALREADY_EXISTS', `registry ${input.id} already exists`);
    const registry: DeviceRegistry = {
      id: input.id,
      name: this.registryName(input.id),
      eventNotificationConfigs: input.eventNotificationConfigs ?? [
        { pubsubTopicName: `projects/${this.project}/topics/${input.id}-events` },
      ],
      mqttConfig: input.mqttConfig ?? { mqttEnabledState: 'MQTT_ENABLED' },
      httpConfig: input.httpConfig ?? { httpEnabledState: 'HTTP_ENABLED' },
    };
    if (input.stateNotificationConfig) registry.stateNotificationConfig = input.stateNotificationConfig;
    this.entries.set(input.id, {
      registry,
      devices: new Map(),
      configVersions: new Map(),
      states: new Map(),
      byNumId: new Map(),
      order: { all: new OrderedIndex(), gateways: new OrderedIndex(), others: new OrderedIndex() },
      nextOrder: 1,
      bound: new Map(),
      boundTo: new Map(),
      nextBinding: 1,
    });
    return registry;
  }

  registries(): DeviceRegistry[] {
    return [...this.entries.values()].map((e) => e.registry);
  }

  getRegistry(registryId: string): DeviceRegistry {
    return this.entry(registryId).registry;
  }

  private entry(registryId: string): RegistryEntry {
    const e = this.entries.get(registryId);
    if (!e) throw new ApiError('NOT_FOUND', `registry ${this.registryName(registryId)} not found`);
    return e;
  }

  /** Looks a device up by ID or numeric ID; throws NOT_FOUND. */
  getDevice(registryId: string, idOrNumId: string): Device {
    const d = this.findDevice(registryId, idOrNumId);
    if (!d) throw new ApiError('NOT_FOUND', `device ${this.registryName(registryId)}/devices/${idOrNumId} not found`);
    return d;
  }

  findDevice(registryId: string, idOrNumId: string): Device | undefined {
    const e = this.entries.get(registryId);
    if (!e) return undefined;
    const byId = e.devices.get(idOrNumId);
    if (byId) return byId;
    // IDs start with a letter, so all digits can only be a numId.
    const id = /^\d+$/.test(idOrNumId) ? e.byNumId.get(idOrNumId) : undefined;
    return id === undefined ? undefined : e.devices.get(id);
  }

  listDevices(registryId: string): Device[] {
    return [...this.entry(registryId).devices.values()];
  }

  createDevice(registryId: string, input: DeviceInput): Device {
    const e = this.entry(registryId);
    const problem = deviceIdProblem(input?.id);
    if (problem !== undefined) throw badArg(`device id ${problem}`);
    if (e.devices.has(input.id)) throw new ApiError('ALREADY_EXISTS', `device ${input.id} already exists`);
    const credentials = this.checkCredentials(input.credentials ?? []);
    const gatewayType = input.gatewayConfig?.gatewayType ?? 'NON_GATEWAY';
    if (!GATEWAY_TYPES.includes(gatewayType)) badArgThrow(`unknown gatewayType ${gatewayType}`);
    const authMethod = input.gatewayConfig?.gatewayAuthMethod ?? 'GATEWAY_AUTH_METHOD_UNSPECIFIED';
    if (!GATEWAY_AUTH_METHODS.includes(authMethod)) badArgThrow(`unknown gatewayAuthMethod ${authMethod}`);
    const metadata = checkMetadata(input.metadata ?? {});
    if (input.logLevel !== undefined && !LOG_LEVELS.includes(input.logLevel)) badArgThrow(`unknown logLevel ${input.logLevel}`);
    const data = input.config?.binaryData ?? '';
    this.checkConfigData(data);
    const t = now();
    const config: DeviceConfig = { version: '1', cloudUpdateTime: t, binaryData: data };
    const device: Device = {
      id: input.id,
      name: `${this.registryName(registryId)}/devices/${input.id}`,
      numId: String(this.nextNumId++),
      credentials,
      blocked: input.blocked === true,
      gatewayConfig: { gatewayType, gatewayAuthMethod: authMethod },
      config,
      metadata,
    };
    if (input.logLevel !== undefined) device.logLevel = input.logLevel;
    e.devices.set(device.id, device);
    e.byNumId.set(device.numId, device.id);
    const key = e.nextOrder++;
    e.order.all.add(key, device.id);
    (gatewayType === 'GATEWAY' ? e.order.gateways : e.order.others).add(key, device.id);
    e.configVersions.set(device.id, [{ ...config }]);
    e.states.set(device.id, []);
    return device;
  }

  /** Applies a devices.patch with an update mask of top-level fields. */
  patchDevice(registryId: string, idOrNumId: string, patch: Partial<DeviceInput>, updateMask: string[]): Device {
    const d = this.getDevice(registryId, idOrNumId);
    for (const field of updateMask) {
      switch (field) {
        case 'credentials':
          d.credentials = this.checkCredentials(patch.credentials ?? []);
          break;
        case 'blocked':
          d.blocked = patch.blocked === true;
          if (d.blocked) this.emit('device-blocked', registryId, d.id);
          break;
        case 'metadata':
          d.metadata = checkMetadata(patch.metadata ?? {});
          break;
        case 'logLevel':
          if (patch.logLevel !== undefined && !LOG_LEVELS.includes(patch.logLevel)) badArgThrow(`unknown logLevel ${patch.logLevel}`);
          if (patch.logLevel === undefined) delete d.logLevel;
          else d.logLevel = patch.logLevel;
          break;
        case 'gatewayConfig.gatewayAuthMethod': {
          const method = patch.gatewayConfig?.gatewayAuthMethod ?? 'GATEWAY_AUTH_METHOD_UNSPECIFIED';
          if (!GATEWAY_AUTH_METHODS.includes(method)) badArgThrow(`unknown gatewayAuthMethod ${method}`);
          d.gatewayConfig.gatewayAuthMethod = method;
          break;
        }
        default:
          throw badArg(`field ${field} cannot be updated`);
      }
    }
    return d;
  }

  /**
   * Deletes a device. A gateway that still has bound devices, or a device still bound to gateways, is refused or
   * unbound first, as the policy says.
   */
  deleteDevice(registryId: string, idOrNumId: string): void {
    const e = this.entry(registryId);
    const d = this.getDevice(registryId, idOrNumId);
    const devices = e.bound.get(d.id);
    if (devices !== undefined && devices.size > 0 && this.#policy.deleteGatewayWithDevices === 'refuse') {
      throw new ApiError('FAILED_PRECONDITION', `gateway ${d.id} still has ${devices.size} bound device(s): unbind them first`);
    }
    const gateways = e.boundTo.get(d.id);
    if (gateways !== undefined && gateways.size > 0 && this.#policy.deleteBoundDevice === 'refuse') {
      throw new ApiError('FAILED_PRECONDITION', `device ${d.id} is still bound to ${gateways.size} gateway(s): unbind it first`);
    }
    for (const deviceId of [...(devices?.values() ?? [])]) this.#unlink(e, d.id, deviceId);
    for (const gatewayId of [...(gateways?.values() ?? [])]) this.#unlink(e, gatewayId, d.id);
    e.devices.delete(d.id);
    e.byNumId.delete(d.numId);
    e.order.all.delete(d.id);
    e.order.gateways.delete(d.id);
    e.order.others.delete(d.id);
    e.configVersions.delete(d.id);
    e.states.delete(d.id);
    this.emit('device-deleted', registryId, d.id);
  }

  /** bindDeviceToGateway: both by ID or numId. Limits and a repeated binding follow the policy. */
  bind(registryId: string, gatewayIdOrNum: string, deviceIdOrNum: string): void {
    const e = this.entry(registryId);
    const gw = this.getDevice(registryId, gatewayIdOrNum);
    const dev = this.getDevice(registryId, deviceIdOrNum);
    if (gw.gatewayConfig.gatewayType !== 'GATEWAY') throw badArg(`${gw.id} is not a gateway`);
    if (dev.gatewayConfig.gatewayType === 'GATEWAY') throw badArg(`${dev.id} is a gateway and cannot be bound to a gateway`);
    const devices = e.bound.get(gw.id);
    if (devices?.has(dev.id)) {
      if (this.#policy.bindExisting === 'conflict') throw new ApiError('ALREADY_EXISTS', `${dev.id} is already bound to ${gw.id}`);
      return;
    }
    const { maxGatewaysPerDevice, maxDevicesPerGateway, bindingLimitStatus } = this.#policy;
    if ((e.boundTo.get(dev.id)?.size ?? 0) >= maxGatewaysPerDevice) {
      throw new ApiError(bindingLimitStatus, `${dev.id} is already bound to ${maxGatewaysPerDevice} gateways, the most a device may be bound to`);
    }
    if ((devices?.size ?? 0) >= maxDevicesPerGateway) {
      throw new ApiError(bindingLimitStatus, `${gw.id} already has ${maxDevicesPerGateway} bound devices, the most a gateway may have`);
    }
    const key = e.nextBinding++;
    let list = devices;
    if (list === undefined) e.bound.set(gw.id, (list = new OrderedIndex()));
    list.add(key, dev.id);
    let reverse = e.boundTo.get(dev.id);
    if (reverse === undefined) e.boundTo.set(dev.id, (reverse = new OrderedIndex()));
    reverse.add(key, gw.id);
  }

  unbind(registryId: string, gatewayIdOrNum: string, deviceIdOrNum: string): void {
    const e = this.entry(registryId);
    const gw = this.getDevice(registryId, gatewayIdOrNum);
    const dev = this.getDevice(registryId, deviceIdOrNum);
    if (!e.bound.get(gw.id)?.has(dev.id)) throw new ApiError('NOT_FOUND', `${dev.id} is not bound to ${gw.id}`);
    this.#unlink(e, gw.id, dev.id);
  }

  #unlink(e: RegistryEntry, gatewayId: string, deviceId: string): void {
    const devices = e.bound.get(gatewayId);
    devices?.delete(deviceId);
    if (devices?.size === 0) e.bound.delete(gatewayId);
    const gateways = e.boundTo.get(deviceId);
    gateways?.delete(gatewayId);
    if (gateways?.size === 0) e.boundTo.delete(deviceId);
  }

  isBound(registryId: string, gatewayId: string, deviceId: string): boolean {
    return this.entries.get(registryId)?.bound.get(gatewayId)?.has(deviceId) ?? false;
  }

  /** Devices bound to a gateway, in binding order. */
  boundDevices(registryId: string, gatewayId: string): string[] {
    return [...(this.entry(registryId).bound.get(gatewayId)?.values() ?? [])];
  }

  /** Gateways a device is bound to, in binding order. */
  gatewaysOf(registryId: string, deviceId: string): string[] {
    return [...(this.entry(registryId).boundTo.get(deviceId)?.values() ?? [])];
  }

  /**
   * One page of a selection of devices: up to `limit` devices after the position `after` (a key an earlier page
   * returned), and whether more follow. Devices page in creation order, which is numId order; bound devices and a
   * device's gateways in binding order. Costs O(log n + limit) whatever the registry's size; devices created, bound or deleted between
   * two pages neither repeat nor hide the others.
   */
  pageDevices(
    registryId: string,
    selection: DeviceSelection,
    after: number | undefined,
    limit: number,
  ): { devices: Device[]; lastKey: number | undefined; more: boolean } {
    const e = this.entry(registryId);
    let index: OrderedIndex<string> | undefined;
    switch (selection.kind) {
      case 'all':
        index = e.order.all;
        break;
      case 'gateways':
        index = e.order.gateways;
        break;
      case 'nonGateways':
        index = e.order.others;
        break;
      case 'boundTo':
        index = e.bound.get(this.getDevice(registryId, selection.gatewayId).id);
        break;
      case 'gatewaysOf':
        index = e.boundTo.get(this.getDevice(registryId, selection.deviceId).id);
        break;
    }
    if (index === undefined) return { devices: [], lastKey: undefined, more: false };
    const { entries, more } = index.page(after, limit);
    return { devices: entries.map((x) => e.devices.get(x.value)!), lastKey: entries[entries.length - 1]?.key, more };
  }

  /** devices.modifyCloudToDeviceConfig: a new version, pushed to subscribers through the `config` event. */
  modifyConfig(registryId: string, idOrNumId: string, binaryData: string, versionToUpdate = '0'): DeviceConfig {
    const e = this.entry(registryId);
    const d = this.getDevice(registryId, idOrNumId);
    this.checkConfigData(binaryData);
    if (!/^\d+$/.test(versionToUpdate)) throw badArg('versionToUpdate must be an integer');
    if (versionToUpdate !== '0' && versionToUpdate !== d.config.version) {
      throw new ApiError('FAILED_PRECONDITION', `versionToUpdate ${versionToUpdate} is not the current version ${d.config.version}`);
    }
    const config: DeviceConfig = { version: String(Number(d.config.version) + 1), cloudUpdateTime: now(), binaryData };
    d.config = config;
    const versions = e.configVersions.get(d.id)!;
    versions.unshift({ ...config });
    versions.length = Math.min(versions.length, MAX_CONFIG_VERSIONS);
    this.emit('config', registryId, d.id, config);
    return config;
  }

  configVersions(registryId: string, idOrNumId: string): DeviceConfig[] {
    const d = this.getDevice(registryId, idOrNumId);
    return this.entry(registryId).configVersions.get(d.id)!.map((c) => ({ ...c }));
  }

  /** Records a device's acknowledgement of a config version (QoS 1 PUBACK). */
  ackConfig(registryId: string, deviceId: string, version: string): void {
    const d = this.findDevice(registryId, deviceId);
    if (!d) return;
    const t = now();
    d.lastConfigAckTime = t;
    if (d.config.version === version) d.config.deviceAckTime = t;
    const v = this.entry(registryId).configVersions.get(d.id)?.find((c) => c.version === version);
    if (v) v.deviceAckTime = t;
  }

  noteConfigSent(registryId: string, deviceId: string): void {
    const d = this.findDevice(registryId, deviceId);
    if (d) d.lastConfigSendTime = now();
  }

  recordState(registryId: string, deviceId: string, data: Buffer): DeviceState {
    const d = this.getDevice(registryId, deviceId);
    const state: DeviceState = { updateTime: now(), binaryData: data.toString('base64') };
    d.state = state;
    d.lastStateTime = state.updateTime;
    const list = this.entry(registryId).states.get(d.id)!;
    list.unshift(state);
    list.length = Math.min(list.length, MAX_STATES);
    return state;
  }

  states(registryId: string, idOrNumId: string): DeviceState[] {
    const d = this.getDevice(registryId, idOrNumId);
    return [...this.entry(registryId).states.get(d.id)!];
  }

  /**
   * Routes telemetry as the registry's eventNotificationConfigs say: the first entry whose subfolderMatches equals
   * the subfolder, else the entry without subfolderMatches. Returns undefined when nothing matches (the bridge
   * then closes the connection and sets lastErrorStatus, docs/protocol.md §1.6).
   */
  recordEvent(registryId: string, deviceId: string, subfolder: string | undefined, data: Buffer, gatewayId?: string): PubsubMessage | undefined {
    const { registry } = this.entry(registryId);
    const d = this.getDevice(registryId, deviceId);
    const route =
      registry.eventNotificationConfigs.find((c) => c.subfolderMatches !== undefined && c.subfolderMatches !== '' && c.subfolderMatches === subfolder) ??
      registry.eventNotificationConfigs.find((c) => c.subfolderMatches === undefined || c.subfolderMatches === '');
    if (!route) return undefined;
    const t = now();
    d.lastEventTime = t;
    const attributes: PubsubMessage['attributes'] = {
      deviceId: d.id,
      deviceNumId: d.numId,
      deviceRegistryId: registryId,
      deviceRegistryLocation: this.location,
      projectId: this.project,
      subFolder: subfolder ?? '',
    };
    if (gatewayId !== undefined) attributes.gatewayId = gatewayId;
    const msg = this.traffic.addEvent({ publishTime: t, topic: route.pubsubTopicName, data: data.toString('base64'), attributes });
    this.emit('event', msg);
    return msg;
  }

  recordError(record: ErrorRecord): void {
    this.traffic.addError(record);
    this.emit('error-sent', record);
  }

  setLastError(registryId: string, deviceId: string, status: Status): void {
    const d = this.findDevice(registryId, deviceId);
    if (!d) return;
    d.lastErrorTime = now();
    d.lastErrorStatus = status;
  }

  noteGatewayAccess(registryId: string, deviceId: string, gatewayId: string): void {
    const d = this.findDevice(registryId, deviceId);
    if (!d) return;
    d.gatewayConfig.lastAccessedGatewayId = gatewayId;
    d.gatewayConfig.lastAccessedGatewayTime = now();
  }

  /** Any MQTT packet from a connected device sets its lastHeartbeatTime (docs/protocol.md §7). */
  noteHeartbeat(registryId: string, deviceId: string): void {
    const d = this.findDevice(registryId, deviceId);
    if (d) d.lastHeartbeatTime = now();
  }

  private checkCredentials(creds: DeviceCredential[]): DeviceCredential[] {
    if (!Array.isArray(creds)) throw badArg('credentials must be an array');
    if (creds.length > MAX_CREDENTIALS) throw badArg(`a device has at most ${MAX_CREDENTIALS} credentials`);
    return creds.map((c, i) => {
      const format = c?.publicKey?.format;
      if (!KEY_FORMATS.includes(format)) throw badArg(`credentials[${i}].publicKey.format must be one of ${KEY_FORMATS.join(', ')}`);
      if (typeof c.publicKey.key !== 'string' || !c.publicKey.key.includes('-----BEGIN')) {
        throw badArg(`credentials[${i}].publicKey.key must be a PEM`);
      }
      if (c.expirationTime !== undefined && Number.isNaN(Date.parse(c.expirationTime))) {
        throw badArg(`credentials[${i}].expirationTime must be an RFC 3339 time`);
      }
      const out: DeviceCredential = { publicKey: { format, key: c.publicKey.key } };
      if (c.expirationTime !== undefined) out.expirationTime = c.expirationTime;
      return out;
    });
  }

  private checkConfigData(binaryData: string): void {
    if (typeof binaryData !== 'string' || !isBase64(binaryData)) throw badArg('binaryData must be base64');
    if (Buffer.from(binaryData, 'base64').byteLength > MAX_CONFIG_BYTES) {
      throw badArg(`config is larger than ${MAX_CONFIG_BYTES} bytes`);
    }
  }
}

function badArgThrow(message: string): never {
  throw badArg(message);
}

/** Checks Device.metadata against IoT Core's limits and returns a copy. */
function checkMetadata(metadata: Record<string, string>): Record<string, string> {
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw badArg('metadata must be an object');
  const entries = Object.entries(metadata);
  if (entries.length > MAX_METADATA_PAIRS) throw badArg(`metadata has at most ${MAX_METADATA_PAIRS} pairs`);
  let total = 0;
  for (const [key, value] of entries) {
    if (!METADATA_KEY.test(key)) throw badArg(`metadata key ${JSON.stringify(key)} must start with a letter, be at most 128 characters and contain only letters, digits and - . _ + ~ %`);
    if (typeof value !== 'string') throw badArg(`metadata.${key} must be a string`);
    const size = Buffer.byteLength(value);
    if (size > MAX_METADATA_VALUE_BYTES) throw badArg(`metadata.${key} is larger than ${MAX_METADATA_VALUE_BYTES} bytes`);
    total += Buffer.byteLength(key) + size;
  }
  if (total > MAX_METADATA_TOTAL_BYTES) throw badArg(`metadata is larger than ${MAX_METADATA_TOTAL_BYTES} bytes in all`);
  return Object.fromEntries(entries);
}
