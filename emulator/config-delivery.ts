/**
 * Config delivery on `/devices/{id}/config` (docs/protocol.md §2, "Config"): on every (re)subscribe the latest
 * version goes out at once, then each new version as it is written. The payload is the raw config bytes; the
 * version number never appears on MQTT.
 *
 * At QoS 1 the latest version is resent (DUP set, same packet ID) until the client PUBACKs it, and a newer version
 * replaces an unacknowledged older one: only the newest is ever in flight. The PUBACK is recorded as the device's
 * config acknowledgement. At QoS 0 each version is sent once.
 *
 * One `ConfigFeeds` per connection; a gateway has a feed for itself and one per attached device it subscribed for.
 *
 * @example
 * feeds.start('pump-1', 1);              // after the SUBACK
 * registry.on('config', (r, d, c) => feeds.deliver(d, c));
 * feeds.acknowledge(packet.messageId);   // on PUBACK
 */
import type { Packet } from 'mqtt-packet';
import { configTopic } from '../lib/iotcore/topics.js';
import type { DeviceConfig } from './registry.js';

/** What config delivery needs from its connection. */
export interface ConfigSink {
  send(packet: Packet): void;
  nextMessageId(): number;
  /** The device's current config. */
  currentConfig(deviceId: string): DeviceConfig | undefined;
  acknowledged(deviceId: string, version: string): void;
  sent(deviceId: string): void;
  /** Resend interval of an unacknowledged QoS 1 config, read at each send so it can change at run time. */
  resendMs(): number;
}

interface InFlight {
  messageId: number;
  version: string;
  packet: Packet;
  timer: NodeJS.Timeout;
}

interface Feed {
  qos: 0 | 1;
  inFlight?: InFlight;
}

export class ConfigFeeds {
  private readonly feeds = new Map<string, Feed>();
  private readonly sink: ConfigSink;

  constructor(sink: ConfigSink) {
    this.sink = sink;
  }

  /** A (re)subscription: the latest version goes out now, whatever was sent before. */
  start(deviceId: string, qos: 0 | 1): void {
    this.stop(deviceId);
    this.feeds.set(deviceId, { qos });
    const config = this.sink.currentConfig(deviceId);
    if (config !== undefined) this.deliver(deviceId, config);
  }

  stop(deviceId: string): void {
    const feed = this.feeds.get(deviceId);
    if (feed?.inFlight) clearInterval(feed.inFlight.timer);
    this.feeds.delete(deviceId);
  }

  stopAll(): void {
    for (const deviceId of [...this.feeds.keys()]) this.stop(deviceId);
  }

  /** A new version for a device this connection may be subscribed for; ignored if it is not. */
  deliver(deviceId: string, config: DeviceConfig): void {
    const feed = this.feeds.get(deviceId);
    if (feed === undefined) return;
    const payload = Buffer.from(config.binaryData, 'base64');
    const topic = configTopic(deviceId);
    if (feed.qos === 0) {
      this.sink.send({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false });
      this.sink.sent(deviceId);
      return;
    }
    // A newer version replaces the one in flight; a late PUBACK for the old packet ID then matches nothing.
    if (feed.inFlight) clearInterval(feed.inFlight.timer);
    const messageId = this.sink.nextMessageId();
    const packet: Packet = { cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false, messageId };
    this.sink.send(packet);
    this.sink.sent(deviceId);
    const timer = resendEvery(Math.max(1, this.sink.resendMs()), packet, (again) => {
      this.sink.send(again);
      this.sink.sent(deviceId);
    });
    feed.inFlight = { messageId, version: config.version, packet, timer };
  }

  /** A client PUBACK; true if it acknowledged a config in flight. */
  acknowledge(messageId: number): boolean {
    for (const [deviceId, feed] of this.feeds) {
      if (feed.inFlight?.messageId !== messageId) continue;
      clearInterval(feed.inFlight.timer);
      const { version } = feed.inFlight;
      delete feed.inFlight;
      this.sink.acknowledged(deviceId, version);
      return true;
    }
    return false;
  }

  /** Packet IDs in flight, so the connection does not reuse one. */
  usesMessageId(messageId: number): boolean {
    for (const feed of this.feeds.values()) if (feed.inFlight?.messageId === messageId) return true;
    return false;
  }

  subscribedDevices(): string[] {
    return [...this.feeds.keys()];
  }
}

/**
 * Sends a QoS 1 PUBLISH again every `everyMs` until the timer is cleared (by its PUBACK): a redelivery carries DUP
 * and the same packet ID [MQTT-3.3.1-1]. The timer does not keep the process alive.
 */
export function resendEvery(everyMs: number, packet: Packet, send: (again: Packet) => void): NodeJS.Timeout {
  const timer = setInterval(() => send({ ...packet, dup: true } as Packet), everyMs);
  timer.unref();
  return timer;
}
