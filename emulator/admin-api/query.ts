/**
 * What the admin API's query parameters ask for: a page of a list (pageSize, pageToken), which devices devices.list
 * selects (deviceIds, deviceNumIds, gatewayListOptions.*), how many config versions or states to list, and which
 * telemetry /emulator/events lists. Bad values are INVALID_ARGUMENT.
 *
 * @example
 * const { page, nextPageToken } = paginate(registry.registries(), BY_ID, new Query('pageSize=2'));
 */
import type { Device, DeviceRegistry, Registry } from '../registry.js';
import { Query, badArg, isObject } from '../rest-json.js';
import type { EventFilter } from '../traffic-log.js';

/** devices.list and registries.list pages: the quota page's maximum (docs/protocol.md §4), also the default. */
export const MAX_PAGE_SIZE = 500;
/** deviceIds and deviceNumIds each take at most this many IDs (ListDevicesRequest). */
export const MAX_LIST_IDS = 10_000;

/** How a list is sorted for paging: the sort key of an item, its order, and which keys a page token may hold. */
export interface PageOrder<T> {
  key(item: T): string;
  compare(a: string, b: string): number;
  validKey(key: string): boolean;
}

/** Devices page in numId order, which is creation order: numIds are handed out increasing. */
export const BY_NUM_ID: PageOrder<Device> = {
  key: (d) => d.numId,
  compare: (a, b) => {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  },
  validKey: (k) => /^\d{1,20}$/.test(k),
};

export const BY_ID: PageOrder<DeviceRegistry> = {
  key: (r) => r.id,
  compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0),
  validKey: () => true,
};

/**
 * One page of a list sorted by `order`. The token names the last item served rather than an offset, so creating
 * or deleting devices between two calls neither repeats nor skips the others.
 */
export function paginate<T>(items: readonly T[], order: PageOrder<T>, query: Query): { page: T[]; nextPageToken?: string } {
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

/** devices.list's `deviceIds` and `deviceNumIds`: the devices they name, or all when neither is given. */
export function deviceIdFilter(query: Query): (d: Device) => boolean {
  const ids = query.list('deviceIds');
  const numIds = query.list('deviceNumIds');
  if (ids.length > MAX_LIST_IDS || numIds.length > MAX_LIST_IDS) throw badArg(`deviceIds and deviceNumIds take at most ${MAX_LIST_IDS} IDs each`);
  if (numIds.some((n) => !/^\d{1,20}$/.test(n))) throw badArg('deviceNumIds must be unsigned integers');
  const wanted = new Set(ids);
  const wantedNum = new Set(numIds.map((n) => BigInt(n).toString()));
  return (d) => (wanted.size === 0 && wantedNum.size === 0) || wanted.has(d.id) || wantedNum.has(d.numId);
}

/** devices.list's `gatewayListOptions`: gateways only, non-gateways only, a gateway's devices or a device's gateways. */
export function gatewayListFilter(registry: Registry, registryId: string, query: Query): (d: Device) => boolean {
  const gatewayType = query.one('gatewayListOptions.gatewayType');
  const associationsGatewayId = query.one('gatewayListOptions.associationsGatewayId');
  const associationsDeviceId = query.one('gatewayListOptions.associationsDeviceId');
  // GatewayListOptions is a oneof: at most one of its filters per call.
  if ([gatewayType, associationsGatewayId, associationsDeviceId].filter((v) => v !== undefined && v !== '').length > 1) {
    throw badArg('gatewayListOptions takes only one of gatewayType, associationsGatewayId, associationsDeviceId');
  }
  if (gatewayType === 'GATEWAY') return (d) => d.gatewayConfig.gatewayType === 'GATEWAY';
  // An unspecified gateway type means "not a gateway" (docs/protocol.md §3.1).
  if (gatewayType === 'NON_GATEWAY') return (d) => d.gatewayConfig.gatewayType !== 'GATEWAY';
  if (gatewayType !== undefined && gatewayType !== '' && gatewayType !== 'GATEWAY_TYPE_UNSPECIFIED') {
    throw badArg('gatewayListOptions.gatewayType must be GATEWAY or NON_GATEWAY');
  }
  if (associationsGatewayId) {
    const bound = new Set(registry.boundDevices(registryId, registry.getDevice(registryId, associationsGatewayId).id));
    return (d) => bound.has(d.id);
  }
  if (associationsDeviceId) {
    const gateways = new Set(registry.gatewaysOf(registryId, registry.getDevice(registryId, associationsDeviceId).id));
    return (d) => gateways.has(d.id);
  }
  return () => true;
}

/** The first `param` items of a newest-first list (configVersions, states); 0 or absent means all. */
export function newest<T>(items: readonly T[], query: Query, param: string): T[] {
  const n = query.count(param, 0);
  return n === 0 ? [...items] : items.slice(0, n);
}

/** /emulator/events: `since` (a messageId) and the registry, device and gateway to match. */
export function eventFilter(query: Query): EventFilter {
  const since = query.one('since');
  if (since !== undefined && !/^\d+$/.test(since)) throw badArg('since must be a messageId');
  return { since, registryId: query.one('registryId'), deviceId: query.one('deviceId'), gatewayId: query.one('gatewayId') };
}
