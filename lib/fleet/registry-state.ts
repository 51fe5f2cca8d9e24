/**
 * Reads what the planner needs from the live registry, through list calls only: every gateway (with its type,
 * metadata and credentials), every device that is not a gateway, and each gateway's bound devices
 * (`gatewayListOptions.associationsGatewayId`). That is one call per 500 devices plus one per 500 bindings of each
 * gateway: about 400 calls for 100,000 devices on 100 gateways, well inside the read quota.
 *
 * @example
 * const { state, gateways } = await readRegistryState(client, { onPage: (n) => bar.tick(n) });
 * const plan = planFleet({ pool, devices: [...state.devices], devicesFrom: 'registry', state });
 */
import type { ClearBladeClient, DeviceResource } from '../clearblade/rest-client.js';
import { POOL_GATEWAY_METADATA, type GatewayState, type RegistryState } from './plan.js';

export interface ReadOptions {
  /** Called after every page with the number of items it held. */
  onPage?: (items: number) => void;
  /** Gateways whose bindings are listed at once. Default 8. */
  parallel?: number;
}

export interface RegistrySnapshot {
  state: RegistryState;
  /** The gateway devices as listed, with gatewayConfig, metadata and credentials. */
  gateways: Map<string, DeviceResource>;
}

export function isMarkedPoolGateway(device: DeviceResource): boolean {
  return device.metadata?.[POOL_GATEWAY_METADATA] !== undefined;
}

export async function readRegistryState(client: ClearBladeClient, options: ReadOptions = {}): Promise<RegistrySnapshot> {
  const gateways = new Map<string, DeviceResource>();
  const devices = new Set<string>();
  const listGateways = (async () => {
    for await (const page of client.listDevices({ gatewayType: 'GATEWAY', fieldMask: ['gatewayConfig', 'metadata', 'credentials'] })) {
      for (const d of page) gateways.set(d.id, d);
      options.onPage?.(page.length);
    }
  })();
  const listDevices = (async () => {
    for await (const page of client.listDevices({ gatewayType: 'NON_GATEWAY' })) {
      for (const d of page) devices.add(d.id);
      options.onPage?.(page.length);
    }
  })();
  // Both lists run together; the bindings need the gateway list first.
  const [gatewayList, deviceList] = await Promise.allSettled([listGateways, listDevices]);
  if (gatewayList.status === 'rejected') throw gatewayList.reason;

  const bindings = new Map<string, string[]>();
  const queue = [...gateways.keys()];
  const worker = async (): Promise<void> => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      const bound: string[] = [];
      for await (const page of client.listDevices({ associationsGatewayId: id })) {
        for (const d of page) bound.push(d.id);
        options.onPage?.(page.length);
      }
      if (bound.length > 0) bindings.set(id, bound);
    }
  };
  const workers = Array.from({ length: Math.max(1, Math.min(options.parallel ?? 8, queue.length)) }, worker);
  const results = await Promise.allSettled(workers);
  if (deviceList.status === 'rejected') throw deviceList.reason;
  for (const r of results) if (r.status === 'rejected') throw r.reason;

  const gatewayStates = new Map<string, GatewayState>();
  for (const [id, d] of gateways) gatewayStates.set(id, { marked: isMarkedPoolGateway(d) });
  return { state: { devices, gateways: gatewayStates, bindings }, gateways };
}
