/**
 * What `iotcore-relay fleet` must change so that the registry matches the pool: every device bound to its own
 * gateway (`gatewayFor`), and, once the pool switch is deployed, to no other gateway the tool owns. Pure functions
 * over a snapshot of the registry; nothing here calls anything.
 *
 * Which bindings the tool owns: those to a gateway of the pool, to a gateway `fleet gateways` created (it marks
 * them with the metadata entry POOL_GATEWAY_METADATA, so a gateway dropped from the pool is still recognised), and
 * to a gateway named with `--retired`. Bindings to any other gateway (a physical gateway, another deployment's
 * pool) are never added or removed; they only count against the limit of 10 gateways per device.
 *
 * The change is make-before-break: `apply` only adds (gateways, devices, bindings), `apply --finish` only removes,
 * and only a binding of a device that is already bound to its own gateway. The limits are checked on the state
 * between the two, where each device may hold its old and its new binding at once.
 *
 * @example
 * const plan = planFleet({ pool, devices: [...state.devices], devicesFrom: 'registry', state, retired: [] });
 * if (plan.violations.length > 0) return 4;
 * for (const b of plan.bindingsToAdd) await client.bindDeviceToGateway(b.gatewayId, b.deviceId);
 */
import { gatewayFor } from '../gateway-pool.js';

/** ClearBlade's quotas page: devices bound to one gateway, and gateways one device may be bound to. Neither can be raised. */
export const MAX_DEVICES_PER_GATEWAY = 10_000;
export const MAX_GATEWAYS_PER_DEVICE = 10;
/** The metadata entry `fleet gateways` writes on the gateways it creates: `{"iotcore-relay-pool": "true"}`. */
export const POOL_GATEWAY_METADATA = 'iotcore-relay-pool';

export interface Binding {
  deviceId: string;
  gatewayId: string;
}

export interface GatewayState {
  /** Carries POOL_GATEWAY_METADATA: created by `fleet gateways`. */
  marked: boolean;
}

/** The registry as the tool reads it: every device and gateway, and every gateway's bound devices. */
export interface RegistryState {
  /** Devices that are not gateways. */
  devices: ReadonlySet<string>;
  gateways: ReadonlyMap<string, GatewayState>;
  /** Gateway ID -> the devices bound to it; a gateway with none may be absent. */
  bindings: ReadonlyMap<string, readonly string[]>;
}

export type ViolationKind = 'gateways-per-device' | 'devices-per-gateway' | 'not-a-gateway' | 'not-a-device';

export interface Violation {
  kind: ViolationKind;
  /** The device or gateway concerned. */
  id: string;
  /** The count that would exceed the limit, where one applies. */
  count?: number;
  message: string;
}

export interface PlanInput {
  pool: readonly string[];
  /** The devices to place: the registry's (registry mode) or a device file's. */
  devices: readonly string[];
  devicesFrom: 'registry' | 'file';
  state: RegistryState;
  /** Gateways no longer in the pool whose bindings the tool removes, besides the marked ones. */
  retired?: readonly string[];
  /** The assignment; `gatewayFor` of lib/gateway-pool.ts unless a test swaps it. */
  assign?: (deviceId: string, pool: readonly string[]) => string;
}

export interface FleetPlan {
  pool: string[];
  devicesFrom: 'registry' | 'file';
  deviceCount: number;
  /** Gateways whose bindings the tool manages: the pool, marked gateways, retired ones. */
  ownedGateways: string[];
  gatewaysToCreate: string[];
  devicesToCreate: string[];
  /** In device order; each device at most once. */
  bindingsToAdd: Binding[];
  /** Owned bindings other than each device's own gateway: what `apply --finish` removes. */
  bindingsToRemove: Binding[];
  /** Bindings to gateways the tool does not own, left as they are. */
  foreignBindings: { count: number; gateways: string[] };
  /** Devices bound to an owned gateway that are not in the device set (file mode): left as they are. */
  devicesOutsideSet: number;
  /** Devices per pool gateway once the plan is done (after `--finish`). */
  finalDevicesPerGateway: Record<string, number>;
  /** The largest counts between `apply` and `--finish`, checked against the limits. */
  peak: { gatewaysPerDevice: { id: string; count: number } | undefined; devicesPerGateway: { id: string; count: number } | undefined };
  violations: Violation[];
}

export function planFleet(input: PlanInput): FleetPlan {
  const assign = input.assign ?? gatewayFor;
  const { state } = input;
  const pool = [...input.pool];
  const poolSet = new Set(pool);
  const violations: Violation[] = [];

  const owned = new Set<string>(pool);
  for (const [id, g] of state.gateways) if (g.marked) owned.add(id);
  for (const id of input.retired ?? []) if (state.gateways.has(id)) owned.add(id);

  for (const id of pool) {
    if (state.devices.has(id)) {
      violations.push({ kind: 'not-a-gateway', id, message: `${id} is in the pool but exists in the registry as a device that is not a gateway` });
    }
  }

  // device -> gateways it is bound to (every gateway, owned or not)
  const gatewaysOf = new Map<string, string[]>();
  for (const [gatewayId, bound] of state.bindings) {
    for (const deviceId of bound) {
      let list = gatewaysOf.get(deviceId);
      if (list === undefined) gatewaysOf.set(deviceId, (list = []));
      list.push(gatewayId);
    }
  }

  const deviceSet = new Set<string>();
  const devicesToCreate: string[] = [];
  const bindingsToAdd: Binding[] = [];
  const bindingsToRemove: Binding[] = [];
  const adds = new Map<string, number>();
  const final = new Map<string, number>(pool.map((g) => [g, 0]));
  let peakDevice: { id: string; count: number } | undefined;
  for (const deviceId of input.devices) {
    if (deviceSet.has(deviceId)) continue;
    // A pool ID taken by a device is reported once, above, as not a gateway.
    if (poolSet.has(deviceId) && state.devices.has(deviceId)) continue;
    deviceSet.add(deviceId);
    if (state.gateways.has(deviceId) || poolSet.has(deviceId)) {
      violations.push({ kind: 'not-a-device', id: deviceId, message: `${deviceId} is listed as a device but is a gateway` });
      continue;
    }
    if (!state.devices.has(deviceId)) devicesToCreate.push(deviceId);
    const target = assign(deviceId, pool);
    final.set(target, (final.get(target) ?? 0) + 1);
    const current = gatewaysOf.get(deviceId) ?? [];
    const bound = current.includes(target);
    if (!bound) {
      bindingsToAdd.push({ deviceId, gatewayId: target });
      adds.set(target, (adds.get(target) ?? 0) + 1);
    }
    for (const gatewayId of current) {
      if (gatewayId !== target && owned.has(gatewayId)) bindingsToRemove.push({ deviceId, gatewayId });
    }
    const during = current.length + (bound ? 0 : 1);
    if (peakDevice === undefined || during > peakDevice.count) peakDevice = { id: deviceId, count: during };
    if (during > MAX_GATEWAYS_PER_DEVICE) {
      violations.push({
        kind: 'gateways-per-device',
        id: deviceId,
        count: during,
        message:
          `${deviceId} would be bound to ${during} gateways between apply and --finish (${current.join(', ')} and ${target}); ` +
          `the limit is ${MAX_GATEWAYS_PER_DEVICE}`,
      });
    }
  }

  // What stays bound and is not ours to move: other deployments' gateways, and devices outside the set.
  const foreignGateways = new Set<string>();
  let foreignCount = 0;
  const outside = new Set<string>();
  for (const [gatewayId, bound] of state.bindings) {
    const isOwned = owned.has(gatewayId);
    for (const deviceId of bound) {
      if (!isOwned) {
        foreignCount += 1;
        foreignGateways.add(gatewayId);
      } else if (!deviceSet.has(deviceId)) {
        outside.add(deviceId);
        if (poolSet.has(gatewayId)) final.set(gatewayId, (final.get(gatewayId) ?? 0) + 1);
      }
    }
  }

  let peakGateway: { id: string; count: number } | undefined;
  for (const gatewayId of pool) {
    const during = (state.bindings.get(gatewayId)?.length ?? 0) + (adds.get(gatewayId) ?? 0);
    if (peakGateway === undefined || during > peakGateway.count) peakGateway = { id: gatewayId, count: during };
    if (during > MAX_DEVICES_PER_GATEWAY) {
      violations.push({
        kind: 'devices-per-gateway',
        id: gatewayId,
        count: during,
        message:
          `${gatewayId} would have ${during} devices bound${(final.get(gatewayId) ?? 0) > MAX_DEVICES_PER_GATEWAY ? '' : ' between apply and --finish'}; ` +
          `the limit is ${MAX_DEVICES_PER_GATEWAY} (a pool of at least ${Math.ceil(deviceSet.size / (MAX_DEVICES_PER_GATEWAY * 0.9))} gateways leaves room)`,
      });
    }
  }

  return {
    pool,
    devicesFrom: input.devicesFrom,
    deviceCount: deviceSet.size,
    ownedGateways: [...owned].sort(),
    gatewaysToCreate: pool.filter((id) => !state.gateways.has(id) && !state.devices.has(id)),
    devicesToCreate,
    bindingsToAdd,
    bindingsToRemove,
    foreignBindings: { count: foreignCount, gateways: [...foreignGateways].sort() },
    devicesOutsideSet: outside.size,
    finalDevicesPerGateway: Object.fromEntries(final),
    peak: { gatewaysPerDevice: peakDevice, devicesPerGateway: peakGateway },
    violations,
  };
}

/**
 * The removals `apply --finish` may make now: those of devices already bound to their own gateway. The others
 * wait: removing them first would leave the device with no gateway the relay can use.
 */
export function finishRemovals(plan: FleetPlan): { now: Binding[]; waiting: Binding[] } {
  const pending = new Set<string>([...plan.bindingsToAdd.map((b) => b.deviceId), ...plan.devicesToCreate]);
  const now: Binding[] = [];
  const waiting: Binding[] = [];
  for (const b of plan.bindingsToRemove) (pending.has(b.deviceId) ? waiting : now).push(b);
  return { now, waiting };
}
