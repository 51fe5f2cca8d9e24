/**
 * A session's SUBSCRIBEs: each one a flight that ends with its SUBACK (granted, or refused with 0x80, MQTT 3.1.1
 * §3.9.3), an errors-topic message naming it, its timeout, or the end of the session.
 *
 * @example
 * const subscribed = subscribeFlight({ link, ledger, clock }, { kind: 'subscribe', deviceId: 'gw-1', topic }, 0, 5000);
 * await subscribed; // throws ERR_SUBSCRIBE_REJECTED on SUBACK 0x80
 */
import { RelayError } from '../errors.js';
import type { SentPacket } from './error-correlation.js';
import { Flight, type FlightClock } from './flights.js';
import type { MqttLink } from './mqtt-link.js';
import type { SessionLedger } from './session-ledger.js';

export interface SubscribeContext {
  link: MqttLink;
  ledger: SessionLedger;
  clock: FlightClock;
}

/** A SUBSCRIBE in flight: resolves on its SUBACK, and throws the refusal, the timeout or the session's stop. */
export type Subscription = Promise<void> & { flight: Flight };

export function subscribeFlight(context: SubscribeContext, packet: SentPacket, qos: 0 | 1, timeoutMs: number): Subscription {
  const flight = new Flight(context.clock, timeoutMs);
  resubscribe(context, packet, qos, flight);
  const settled = flight.done.then((end) => {
    if (end.kind === 'acked') return;
    if (end.kind === 'timeout') throw new RelayError('ERR_SUBACK_TIMEOUT', `no SUBACK for ${packet.topic} within ${timeoutMs} ms`);
    throw new RelayError(end.code, end.reason);
  });
  return Object.assign(settled, { flight });
}

/** Sends the SUBSCRIBE of `flight` (again, when the bridge dropped the first); the first SUBACK of any ends it. */
export function resubscribe(context: SubscribeContext, packet: SentPacket, qos: 0 | 1, flight: Flight): void {
  const id = context.link.subscribe(packet.topic, qos, (granted) => {
    // 0x80 on 3.1.1; on 5.0 every reason code from 0x80 up refuses (MQTT 5.0 §3.9.3).
    if (granted >= 0x80) {
      const code = `0x${granted.toString(16)}`;
      flight.settle({ kind: 'refused', code: 'ERR_SUBSCRIBE_REJECTED', reason: `the bridge refused the subscription to ${packet.topic} (SUBACK ${code})` });
      return;
    }
    // The first SUBACK of a SUBSCRIBE sent twice is the one that counts.
    flight.ackedAt ??= Date.now();
    flight.settle({ kind: 'acked' });
  });
  context.ledger.sent(packet, id, flight);
}
