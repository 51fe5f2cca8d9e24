/**
 * What reached the emulated bridge since a point in time: the telemetry events it recorded and the states it
 * stored, read from the emulator's registry (the same places Pub/Sub and the devices' state history would be).
 * Tests take a ledger before relaying and read it afterwards, so earlier tests sharing the emulator do not count.
 *
 * States are kept newest first and only the last few per device; the ledger finds the new ones by identity above
 * the entry that was newest when it was taken, which holds as long as a device gets fewer new states than the
 * registry keeps (10).
 *
 * @example
 * const ledger = new DeliveryLedger(emulator, fleet.registryId, devices);
 * await relayBatch(records, deps);
 * ledger.deliveries(); // [{ kind: 'event', deviceId: 'pump-01', subfolder: 'alarms', data: 'eyJ...' }, ...]
 */
import type { Emulator } from '../../emulator/index.js';
import type { DeviceState } from '../../emulator/registry.js';

export interface Delivery {
  kind: 'event' | 'state';
  deviceId: string;
  /** Events only; '' when none. */
  subfolder: string;
  /** The payload, base64. */
  data: string;
}

/** How many states the registry keeps per device (emulator/registry.ts). */
const STATES_KEPT = 10;

export class DeliveryLedger {
  private readonly eventsAt: number;
  private readonly stateHeads = new Map<string, DeviceState | undefined>();

  constructor(
    private readonly emulator: Emulator,
    private readonly registryId: string,
    devices: readonly string[],
  ) {
    this.eventsAt = emulator.registry.events.length;
    for (const d of devices) this.stateHeads.set(d, emulator.registry.states(registryId, d)[0]);
  }

  /** Everything recorded since the ledger was taken, events first, in the order the bridge recorded them. */
  deliveries(): Delivery[] {
    const events: Delivery[] = this.emulator.registry.events.slice(this.eventsAt).map((e) => ({
      kind: 'event',
      deviceId: e.attributes.deviceId,
      subfolder: e.attributes.subFolder,
      data: e.data,
    }));
    const states: Delivery[] = [];
    for (const [deviceId, head] of this.stateHeads) {
      const list = this.emulator.registry.states(this.registryId, deviceId);
      const i = head === undefined ? list.length : list.indexOf(head);
      if (i < 0) throw new Error(`ledger: ${deviceId} got more new states than the registry keeps (${STATES_KEPT}); some were dropped unseen`);
      for (const s of list.slice(0, i).reverse()) states.push({ kind: 'state', deviceId, subfolder: '', data: s.binaryData });
    }
    return [...events, ...states];
  }
}

/** A key for one payload of one device: what the ledger can match a record with. */
export const deliveryKey = (d: Delivery): string => `${d.kind}|${d.deviceId}|${d.subfolder}|${d.data}`;

/** How many times each delivery key occurs. */
export function countDeliveries(deliveries: readonly Delivery[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const d of deliveries) counts.set(deliveryKey(d), (counts.get(deliveryKey(d)) ?? 0) + 1);
  return counts;
}
