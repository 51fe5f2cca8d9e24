/**
 * The LoRaWAN part of the dashboard: the downlinks the network-server stand-in accepted (network-server-stand-in.ts),
 * and per demo device what the config store says of its config downlinks: the version a network server accepted
 * last, and a version that was not sent because it is larger than the integration's frames.
 *
 * The stand-in reports each downlink as it arrives; the store is sampled on a timer (`everyMs`).
 *
 * @example
 * const source = new LorawanDashboardSource({ standIn, store, devices: ['soil-probe-01'] });
 * source.start(() => feed.emit('change'));
 * source.snapshot(); // { downlinks: [...], devices: [{ deviceId, delivered, refused }] }
 */
import type { DownlinkState } from '../lib/config-store/config-store.js';
import type { NetworkServerStandIn, RecordedDownlink } from './network-server-stand-in.js';

export interface LorawanDashboardState {
  /** Newest first. */
  downlinks: RecordedDownlink[];
  devices: {
    deviceId: string;
    storeConfigVersion?: number;
    delivered?: NonNullable<DownlinkState['delivered']>;
    /** Only when it is about a version not delivered since. */
    refused?: NonNullable<DownlinkState['refused']>;
  }[];
  error?: string;
}

export interface LorawanDashboardSourceOptions {
  standIn: Pick<NetworkServerStandIn, 'downlinks' | 'events'>;
  store: { getDownlinkStates(deviceIds: readonly string[]): Promise<Map<string, DownlinkState>> };
  devices: readonly string[];
  everyMs?: number;
}

const KEPT = 30;

export class LorawanDashboardSource {
  readonly #o: LorawanDashboardSourceOptions;
  #states = new Map<string, DownlinkState>();
  #error: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #onChange: () => void = () => {};
  readonly #onDownlink = (): void => this.#onChange();

  constructor(options: LorawanDashboardSourceOptions) {
    this.#o = options;
  }

  start(onChange: () => void): void {
    this.#onChange = onChange;
    this.#o.standIn.events.on('downlink', this.#onDownlink);
    const tick = (): void => {
      this.#running = this.#sample().finally(() => {
        this.#running = undefined;
        if (this.#timer !== undefined) this.#timer = setTimeout(tick, this.#o.everyMs ?? 3000);
      });
    };
    this.#timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    this.#o.standIn.events.off('downlink', this.#onDownlink);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  snapshot(): LorawanDashboardState {
    const devices = this.#o.devices.map((deviceId) => {
      const state = this.#states.get(deviceId);
      const row: LorawanDashboardState['devices'][number] = { deviceId };
      if (state?.config !== undefined) row.storeConfigVersion = state.config.version;
      if (state?.delivered !== undefined) row.delivered = state.delivered;
      if (state?.refused !== undefined && state.refused.version > (state.delivered?.version ?? 0)) row.refused = state.refused;
      return row;
    });
    return {
      downlinks: this.#o.standIn.downlinks().slice(-KEPT).reverse(),
      devices,
      ...(this.#error !== undefined ? { error: this.#error } : {}),
    };
  }

  async #sample(): Promise<void> {
    try {
      const states = await this.#o.store.getDownlinkStates(this.#o.devices);
      const changed = JSON.stringify([...states]) !== JSON.stringify([...this.#states]);
      this.#states = states;
      this.#error = undefined;
      if (changed) this.#onChange();
    } catch (e) {
      this.#error = (e as Error).message;
    }
  }
}
