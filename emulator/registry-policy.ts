/**
 * How the registry answers where limits apply or where ClearBlade's behaviour is unconfirmed: the binding limits
 * (configurable so tests can reach them with a few devices) and the variants of binding and deletion. Both REST
 * forms and the registry file go through the same registry, so they all follow one policy. docs/emulator.md lists
 * each choice with its public sources.
 *
 * @example
 * registry.configure(resolveRegistryPolicy({ maxDevicesPerGateway: 3, bindExisting: 'conflict' }));
 */

export interface RegistryPolicy {
  /** Devices bound to one gateway: 10,000 on ClearBlade's "Quotas and limits" page. */
  maxDevicesPerGateway: number;
  /** Gateways one device is bound to: 10 on the same page. */
  maxGatewaysPerDevice: number;
  /** The status a bind over either limit answers; neither ClearBlade nor Cloud IoT documents which. */
  bindingLimitStatus: 'RESOURCE_EXHAUSTED' | 'FAILED_PRECONDITION';
  /** Binding a device already bound to that gateway: `succeed` again, or `conflict` (409 ALREADY_EXISTS). */
  bindExisting: 'succeed' | 'conflict';
  /** Deleting a device still bound to gateways: `unbind` it and delete, or `refuse` (FAILED_PRECONDITION). */
  deleteBoundDevice: 'unbind' | 'refuse';
  /** Deleting a gateway that still has bound devices: `refuse` (FAILED_PRECONDITION), or `unbind` them and delete. */
  deleteGatewayWithDevices: 'refuse' | 'unbind';
}

export const DEFAULT_REGISTRY_POLICY: Readonly<RegistryPolicy> = {
  maxDevicesPerGateway: 10_000,
  maxGatewaysPerDevice: 10,
  bindingLimitStatus: 'RESOURCE_EXHAUSTED',
  bindExisting: 'succeed',
  deleteBoundDevice: 'unbind',
  deleteGatewayWithDevices: 'refuse',
};

export const REGISTRY_POLICY_KEYS = Object.keys(DEFAULT_REGISTRY_POLICY) as (keyof RegistryPolicy)[];

function oneOf<T>(name: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) throw new TypeError(`${name} must be one of ${allowed.join(', ')} (got ${String(value)})`);
  return value as T;
}

function atLeastOne(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new TypeError(`${name} must be an integer >= 1 (got ${String(value)})`);
  }
  return value;
}

/** Fills defaults in and checks every value; throws TypeError on a bad one. Undefined values take the default. */
export function resolveRegistryPolicy(input: Partial<RegistryPolicy> = {}, base: Readonly<RegistryPolicy> = DEFAULT_REGISTRY_POLICY): RegistryPolicy {
  const o = { ...base, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) };
  return {
    maxDevicesPerGateway: atLeastOne('maxDevicesPerGateway', o.maxDevicesPerGateway),
    maxGatewaysPerDevice: atLeastOne('maxGatewaysPerDevice', o.maxGatewaysPerDevice),
    bindingLimitStatus: oneOf('bindingLimitStatus', o.bindingLimitStatus, ['RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION'] as const),
    bindExisting: oneOf('bindExisting', o.bindExisting, ['succeed', 'conflict'] as const),
    deleteBoundDevice: oneOf('deleteBoundDevice', o.deleteBoundDevice, ['unbind', 'refuse'] as const),
    deleteGatewayWithDevices: oneOf('deleteGatewayWithDevices', o.deleteGatewayWithDevices, ['refuse', 'unbind'] as const),
  };
}
