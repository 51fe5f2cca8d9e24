/**
 * Errors-topic messages held back behind the PUBACKs (BridgeOptions `lateErrorsMs`, `lateErrorsJitterMs`,
 * `lateErrorsPastDetach`). A bridge that acknowledges a publish when it hands it to Pub/Sub, and reports a failure
 * on the errors topic later, puts the error behind the PUBACKs of the same and later packets; nothing in MQTT 3.1.1
 * orders a QoS 0 message on one topic against the acknowledgements of publishes on others (§4.6).
 *
 * Each message waits its delay, then goes out; the messages still held when a detach is acknowledged go first,
 * unless `lateErrorsPastDetach` lets them come after it too. Held messages die with the connection.
 *
 * @example
 * const late = new LateErrors((p) => connection.send(p), () => connection.options);
 * late.send(errorPacket);   // leaves in lateErrorsMs (+ jitter)
 * late.beforeDetachAck();   // or at once, ahead of the detach PUBACK
 */
import type { Packet } from 'mqtt-packet';
import type { BridgeOptions } from './options.js';

export type LateErrorOptions = Pick<BridgeOptions, 'lateErrorsMs' | 'lateErrorsJitterMs' | 'lateErrorsPastDetach'>;

export class LateErrors {
  /** Timers of the held messages, in the order they were raised. */
  private readonly held = new Map<NodeJS.Timeout, Packet>();
  private readonly out: (packet: Packet) => void;
  private readonly options: () => LateErrorOptions;

  constructor(out: (packet: Packet) => void, options: () => LateErrorOptions) {
    this.out = out;
    this.options = options;
  }

  /** Sends an errors-topic message now, or after its delay when late errors are on. */
  send(packet: Packet): void {
    const { lateErrorsMs, lateErrorsJitterMs } = this.options();
    const delay = lateErrorsMs + (lateErrorsJitterMs > 0 ? Math.random() * lateErrorsJitterMs : 0);
    if (delay <= 0) return this.out(packet);
    const timer = setTimeout(() => {
      this.held.delete(timer);
      this.out(packet);
    }, delay);
    timer.unref();
    this.held.set(timer, packet);
  }

  /** Called before a detach's PUBACK goes out: what is held goes first, unless it may follow the detach. */
  beforeDetachAck(): void {
    if (this.options().lateErrorsPastDetach) return;
    const waiting = [...this.held];
    this.held.clear();
    for (const [timer, packet] of waiting) {
      clearTimeout(timer);
      this.out(packet);
    }
  }

  /** The connection ended: what is held is never sent. Returns how many messages that was. */
  drop(): number {
    const n = this.held.size;
    for (const timer of this.held.keys()) clearTimeout(timer);
    this.held.clear();
    return n;
  }
}
