/**
 * Simulated devices for `npm start -- --simulate N`: each posts a reading to the ingest every few seconds, with
 * its own device key, as a cellular sensor would. About one post in ten is wrong on purpose, so the dashboard
 * shows what a fleet's mistakes look like:
 *
 * | kind | what is sent | what should happen |
 * |---|---|---|
 * | `wrong-key` | another device's key | 401 at the ingest |
 * | `bad-subfolder` | `events/bad//subfolder` | 400 at the ingest |
 * | `oversize` | a 300 KB event (the bridge takes 256 KB) | refused at the ingest |
 * | `unregistered` | a valid key of a device the bridge does not know | queued, then refused by the bridge on attach: an error on the gateway's errors topic, and the record dead-lettered |
 *
 * @example
 * const sim = new DeviceSimulator({ ingestUrl, devices: ['sim-0001'], deviceKey: (id) => creds.deviceKey(id) });
 * sim.start();
 * await sim.stop();
 */
import { MAX_EVENT_BYTES } from '../lib/iotcore/limits.js';
import type { SimulatorStats } from './dashboard-feed.js';

export type SimulatedKind = 'reading' | 'state' | 'wrong-key' | 'bad-subfolder' | 'oversize' | 'unregistered';

export interface DeviceSimulatorOptions {
  ingestUrl: string;
  devices: readonly string[];
  deviceKey: (deviceId: string) => string;
  /** Mean time between two posts of one device. Default 3000. */
  intervalMs?: number;
  /** Posted for by the `unregistered` kind. Default `ghost-0001`. */
  unregisteredDevice?: string;
  /** For tests: a source of numbers in [0, 1). */
  random?: () => number;
  onPost?: (kind: SimulatedKind, deviceId: string, status: number | 'failed') => void;
}

/** Cumulative probabilities of the kinds; the rest are good readings. */
const MIX: [SimulatedKind, number][] = [
  ['wrong-key', 0.03],
  ['bad-subfolder', 0.05],
  ['oversize', 0.06],
  ['unregistered', 0.09],
  ['state', 0.15],
];

export class DeviceSimulator {
  readonly #o: Required<Omit<DeviceSimulatorOptions, 'onPost'>> & Pick<DeviceSimulatorOptions, 'onPost'>;
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #posts = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  readonly #seq = new Map<string, number>();
  #stats: SimulatorStats;
  #stopped = false;

  constructor(options: DeviceSimulatorOptions) {
    this.#o = {
      ...options,
      intervalMs: options.intervalMs ?? 3000,
      unregisteredDevice: options.unregisteredDevice ?? 'ghost-0001',
      random: options.random ?? Math.random,
    };
    this.#stats = { devices: options.devices.length, sent: 0, accepted: 0, refused: 0, failed: 0 };
  }

  start(): void {
    for (const deviceId of this.#o.devices) this.#scheduleNext(deviceId, this.#o.random() * this.#o.intervalMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#abort.abort();
    await Promise.all([...this.#posts]);
  }

  stats(): SimulatorStats {
    return { ...this.#stats };
  }

  /** Picks a kind from a number in [0, 1). */
  static kindFor(r: number): SimulatedKind {
    return MIX.find(([, upTo]) => r < upTo)?.[0] ?? 'reading';
  }

  #scheduleNext(deviceId: string, delayMs: number): void {
    if (this.#stopped) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      const post = this.post(deviceId, DeviceSimulator.kindFor(this.#o.random())).finally(() => this.#posts.delete(post));
      this.#posts.add(post);
      // Between half and one and a half intervals, so devices drift apart instead of posting in step.
      this.#scheduleNext(deviceId, this.#o.intervalMs * (0.5 + this.#o.random()));
    }, delayMs);
    this.#timers.add(timer);
  }

  /** One post of the given kind; resolves with nothing, whatever the answer (it is counted). */
  async post(deviceId: string, kind: SimulatedKind): Promise<void> {
    const seq = (this.#seq.get(deviceId) ?? 0) + 1;
    this.#seq.set(deviceId, seq);
    let target = deviceId;
    let path = `/devices/${deviceId}/events/readings`;
    let key = this.#o.deviceKey(deviceId);
    let body: string = JSON.stringify({ seq, temperature: round(18 + this.#o.random() * 8), pressure: round(1 + this.#o.random()) });
    switch (kind) {
      case 'state':
        path = `/devices/${deviceId}/state`;
        body = JSON.stringify({ pump: this.#o.random() < 0.5 ? 'on' : 'off', seq });
        break;
      case 'wrong-key':
        key = this.#o.deviceKey(this.#o.unregisteredDevice);
        break;
      case 'bad-subfolder':
        path = `/devices/${deviceId}/events/bad//subfolder`;
        break;
      case 'oversize':
        body = JSON.stringify({ seq, blob: 'x'.repeat(MAX_EVENT_BYTES + 44 * 1024) });
        break;
      case 'unregistered':
        target = this.#o.unregisteredDevice;
        path = `/devices/${target}/events/readings`;
        key = this.#o.deviceKey(target);
        break;
      case 'reading':
        break;
    }
    this.#stats.sent += 1;
    let status: number | 'failed';
    try {
      const res = await fetch(`${this.#o.ingestUrl}${path}`, {
        method: 'POST',
        headers: { authorization: `Device-Key ${key}`, 'content-type': 'application/json' },
        body,
        signal: this.#abort.signal,
      });
      await res.arrayBuffer();
      status = res.status;
      if (res.ok) this.#stats.accepted += 1;
      else this.#stats.refused += 1;
    } catch {
      if (this.#stopped) return;
      status = 'failed';
      this.#stats.failed += 1;
    }
    this.#o.onPost?.(kind, target, status);
  }
}

const round = (n: number): number => Math.round(n * 100) / 100;
