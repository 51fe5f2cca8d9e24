/**
 * The bridge's rate limits on what clients publish, each off unless set (docs/emulator.md has the sources):
 * - PUBLISH packets a second per connection (`connectionMessageRate`): Google's Cloud IoT Core documented 100
 *   "MQTT incoming messages per sec, per connection"; ClearBlade's quota page lists no such limit. Every client
 *   PUBLISH counts (telemetry, state, attach, detach): MQTT 3.1.1 §1.2 calls what a PUBLISH carries an Application
 *   Message, and no other packet carries one.
 * - payload bytes a second per device (`deviceByteRate`): "Device-to-cloud throughput per device", 512 KB/s on both
 *   providers' pages. A gateway's publish for an attached device counts for that device, across connections.
 *
 * A second is any window of 1,000 ms, measured when the packets arrive. What the bridge does over a limit is not
 * documented; `rateOverrun` picks it:
 * - `slow`: the packet waits until it fits, and everything behind it on the connection waits too (a bridge that
 *   reads a throttled connection more slowly), so PUBACKs keep their order and come at the allowed rate;
 * - `drop`: the packet is neither handled nor acknowledged (and does not count against the rate);
 * - `close`: the connection is closed, `lastErrorStatus` RESOURCE_EXHAUSTED.
 *
 * @example
 * const rates = new PublishRates(port, deviceWindows);
 * if (await rates.admit(packet, arrivedAt)) handle(packet); // false: dropped, or the connection was closed
 */
import type { IPublishPacket } from 'mqtt-packet';
import { parseTopic } from '../lib/iotcore/topics.js';
import { RPC } from '../lib/iotcore/rpc-status.js';
import type { CloseReason } from './connection-port.js';
import type { BridgeOptions } from './options.js';

const WINDOW_MS = 1000;

/** Amounts (packets or bytes) taken over the last second, by the time each was taken. */
export class RateWindow {
  readonly limit: number;
  private readonly taken: { at: number; amount: number }[] = [];
  private total = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** The earliest time from `from` on at which `amount` more keeps the second before it within the limit. */
  fitsAt(from: number, amount: number): number {
    this.forget(from);
    let total = this.total;
    let at = from;
    // An amount over the limit on its own fits once the window is empty.
    for (let i = 0; total + amount > this.limit && i < this.taken.length; i++) {
      at = Math.max(at, this.taken[i]!.at + WINDOW_MS);
      total -= this.taken[i]!.amount;
    }
    return at;
  }

  take(at: number, amount: number): void {
    // Kept in time order: a device's window is shared by connections whose packets are taken a little out of order.
    let i = this.taken.length;
    while (i > 0 && this.taken[i - 1]!.at > at) i--;
    this.taken.splice(i, 0, { at, amount });
    this.total += amount;
  }

  /** Drops what left the window before `now`. */
  private forget(now: number): void {
    while (this.taken.length > 0 && this.taken[0]!.at <= now - WINDOW_MS) this.total -= this.taken.shift()!.amount;
  }
}

/** The part of a connection the limits use. */
export interface RatePort {
  readonly options: Pick<BridgeOptions, 'connectionMessageRate' | 'deviceByteRate' | 'rateOverrun'>;
  readonly registryId: string;
  readonly closed: boolean;
  log(line: string): void;
  close(reason?: CloseReason): void;
}

/** One connection's limits; the device windows are the bridge's, shared by every connection. */
export class PublishRates {
  private readonly conn: RatePort;
  private readonly deviceWindows: Map<string, RateWindow>;
  private messages: RateWindow | undefined;
  /** When the last packet was taken: with `slow`, no packet is taken before the one ahead of it. */
  private lastTakenAt = Number.NEGATIVE_INFINITY;

  constructor(conn: RatePort, deviceWindows: Map<string, RateWindow>) {
    this.conn = conn;
    this.deviceWindows = deviceWindows;
  }

  /**
   * Applies the limits to a client PUBLISH that arrived at `arrivedAt`. Resolves true when it is to be handled
   * (with `slow`, once it fits); false when it was dropped or the connection closed.
   */
  async admit(packet: IPublishPacket, arrivedAt: number): Promise<boolean> {
    const { connectionMessageRate, deviceByteRate, rateOverrun } = this.conn.options;
    if (connectionMessageRate === 0 && deviceByteRate === 0) return true;
    const messages = connectionMessageRate === 0 ? undefined : (this.messages ??= new RateWindow(connectionMessageRate));
    const bytes = packet.payload.length;
    const device = deviceByteRate === 0 ? undefined : this.deviceWindow(packet.topic, deviceByteRate);
    const from = rateOverrun === 'slow' ? Math.max(arrivedAt, this.lastTakenAt) : arrivedAt;
    const messagesAt = messages?.fitsAt(from, 1) ?? from;
    const bytesAt = device?.window.fitsAt(from, bytes) ?? from;
    const at = Math.max(messagesAt, bytesAt);
    if (at > from && rateOverrun !== 'slow') {
      const why =
        messagesAt > from
          ? `more than ${connectionMessageRate} PUBLISH messages a second on this connection`
          : `more than ${deviceByteRate} bytes a second for ${device!.deviceId}`;
      if (rateOverrun === 'drop') {
        this.conn.log(`PUBLISH to ${packet.topic} dropped unacknowledged: ${why}`);
        return false;
      }
      this.conn.close({ message: why, status: { code: RPC.RESOURCE_EXHAUSTED, message: why } });
      return false;
    }
    const wait = at - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait).unref());
    if (this.conn.closed) return false;
    messages?.take(at, 1);
    device?.window.take(at, bytes);
    this.lastTakenAt = at;
    return true;
  }

  /** The byte window of the device a PUBLISH is for; none for a topic that names no device. */
  private deviceWindow(topic: string, limit: number): { deviceId: string; window: RateWindow } | undefined {
    const parsed = parseTopic(topic);
    if (parsed === undefined || 'malformed' in parsed) return undefined;
    const key = `${this.conn.registryId}/${parsed.deviceId}`;
    let window = this.deviceWindows.get(key);
    if (window === undefined || window.limit !== limit) this.deviceWindows.set(key, (window = new RateWindow(limit)));
    return { deviceId: parsed.deviceId, window };
  }
}
