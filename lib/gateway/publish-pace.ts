/**
 * How a gateway session's QoS 1 PUBLISHes leave, and its optional pace: at most `rate` PUBLISH packets leave in any one second (RELAY_PUBLISH_RATE; 0, the
 * default, sends each at once). Cloud IoT Core documented a limit of 100 incoming messages a second per connection
 * (docs/protocol.md §4), and ClearBlade does not say what its bridge does over such a limit: slow the connection
 * down, drop what is over, or close the connection (docs/emulator.md has each variant).
 *
 * Every PUBLISH of the session is paced: attaches, records and detaches. The bridge counts each of them, and the
 * attaches of one config-poll chunk (100 devices) are alone as many as that whole second allows; a detach left
 * unpaced would burst on top of the last second's records just when the session needs its answer as the final
 * barrier. SUBSCRIBEs carry no message and are not paced.
 *
 * A paced packet waits for its slot and is written then, in the order the session sent it; its timeout counts from
 * its slot (bounded by the session's deadline), since the bridge cannot answer what has not left. A packet whose
 * flight ended while it waited (the session stopped) is not sent.
 *
 * Whatever the pace, it remembers when the last PUBLISHes left, so that a connection the bridge closes right after
 * more than 100 of them in a second is reported as the likely overrun it is (`explain`).
 *
 * @example
 * const pace = new PublishPace(50, deadline, clock, ledger);
 * const flight = pace.publish(link, '/devices/pump-1/attach', Buffer.from('{}'), 5000, { kind: 'attach', deviceId: 'pump-1', topic });
 */
import { isRelayError } from '../errors.js';
import type { SentPacket } from './error-correlation.js';
import { Flight, type FlightClock, type FlightEnd } from './flights.js';
import type { MqttLink } from './mqtt-link.js';
import type { Failure, SessionLedger } from './session-ledger.js';

/** Cloud IoT Core's documented limit of incoming messages a second per connection; ClearBlade documents none. */
export const BRIDGE_MESSAGES_PER_SECOND = 100;

const SECOND_MS = 1000;
/**
 * How much later than the second strictly allows a slot comes: packets can reach the bridge closer together than
 * they left (the first of a burst held up on its way, or read late by a busy bridge), and a bridge that counts at
 * arrival would then see one too many. 5 % of the pace's throughput buys that much slack.
 */
export const SLOT_MARGIN_MS = 50;

interface Waiting {
  at: number;
  flight: Flight;
  send: (flight: Flight) => void;
}

export class PublishPace {
  readonly rate: number;
  private readonly deadline: number;
  private readonly clock: FlightClock;
  private readonly ledger: Pick<SessionLedger, 'sent' | 'applyPubackRefusal'>;
  private readonly now: () => number;
  /** The slots of the last `rate` PUBLISHes, in order. */
  private readonly slots: number[] = [];
  private readonly waiting: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** When the last PUBLISHes left, one more than the bridge's known limit at most. */
  private readonly recent: number[] = [];

  constructor(rate: number, deadline: number, clock: FlightClock, ledger: Pick<SessionLedger, 'sent' | 'applyPubackRefusal'>, now: () => number = Date.now) {
    if (!Number.isSafeInteger(rate) || rate < 0) throw new RangeError(`a publish rate is a whole number, 0 for none (got ${rate})`);
    this.rate = rate;
    this.deadline = deadline;
    this.clock = clock;
    this.ledger = ledger;
    this.now = now;
  }

  /**
   * Sends one QoS 1 PUBLISH at its slot; its flight ends with the PUBACK, an error naming it, the timeout, or a stop.
   * With `stopped` set, or the link closed, nothing is sent and the flight ends at once.
   */
  publish(link: MqttLink, topic: string, payload: Buffer, timeoutMs: number, packet: SentPacket, onEnd?: (end: FlightEnd) => void, stopped?: Failure): Flight {
    if (stopped !== undefined || !link.isOpen) {
      const why = stopped ?? { code: 'ERR_CONNECTION_LOST' as const, reason: 'the connection to the bridge is closed' };
      const flight = new Flight(this.clock, timeoutMs, onEnd);
      flight.settle({ kind: 'stopped', code: why.code, reason: why.reason });
      return flight;
    }
    return this.paced(timeoutMs, (ms) => new Flight(this.clock, ms, onEnd), (flight) => {
      // A PUBACK that comes after the flight stopped waiting still counts as the acknowledgement; a 5.0 PUBACK with a
      // failure reason code refuses the packet as an error naming it would.
      flight.packetId = link.publish(topic, payload, 1, (refusal) => (refusal === undefined ? flight.acknowledged() : this.ledger.applyPubackRefusal(packet, refusal)));
      this.ledger.sent(packet, flight.packetId, flight);
    });
  }

  /**
   * Makes the flight of one PUBLISH with `make(timeoutMs)` (the timeout stretched by the wait for its slot) and
   * `send`s it at its slot: at once when the pace allows, else later, after the PUBLISHes reserved before it.
   */
  paced(timeoutMs: number, make: (timeoutMs: number) => Flight, send: (flight: Flight) => void): Flight {
    const now = this.now();
    const at = this.reserve(now);
    const flight = make(at <= now ? timeoutMs : Math.min(timeoutMs + (at - now), this.deadline - now));
    if (at <= now && this.waiting.length === 0) this.run({ at, flight, send });
    else {
      this.waiting.push({ at, flight, send });
      this.arm();
    }
    return flight;
  }

  /** PUBLISHes that left in the second before now (counted up to one more than the bridge's known limit). */
  sentInLastSecond(): number {
    const since = this.now() - SECOND_MS;
    return this.recent.filter((t) => t > since).length;
  }

  /** A loss reason, with the likely cause when the session had just sent more than the bridge's known limit. */
  explain(reason: string): string {
    const sent = this.sentInLastSecond();
    if (sent <= BRIDGE_MESSAGES_PER_SECOND) return reason;
    return `${reason}, right after more than ${BRIDGE_MESSAGES_PER_SECOND} PUBLISH packets in one second: likely over the bridge's rate limit per connection (RELAY_PUBLISH_RATE paces a session)`;
  }

  /** The next slot: no earlier than the last one, and a second (plus the margin) after the slot `rate` back. */
  private reserve(now: number): number {
    if (this.rate === 0) return now;
    let at = Math.max(now, this.slots.at(-1) ?? now);
    if (this.slots.length >= this.rate) at = Math.max(at, this.slots[this.slots.length - this.rate]! + SECOND_MS + SLOT_MARGIN_MS);
    this.slots.push(at);
    if (this.slots.length > this.rate) this.slots.shift();
    return at;
  }

  private run(w: Waiting): void {
    if (w.flight.end !== undefined) return;
    this.recent.push(this.now());
    if (this.recent.length > BRIDGE_MESSAGES_PER_SECOND + 1) this.recent.shift();
    try {
      w.send(w.flight);
    } catch (e) {
      // The connection closed while the packet waited; the session's stop reports it to the others.
      const code = isRelayError(e) ? e.code : 'ERR_INTERNAL';
      w.flight.settle({ kind: 'stopped', code, reason: (e as Error)?.message ?? String(e) });
    }
  }

  /** One timer, for the first waiting packet; each runs in order once its slot has come. */
  private arm(): void {
    if (this.timer !== undefined || this.waiting.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = this.now();
      while (this.waiting.length > 0 && this.waiting[0]!.at <= now) this.run(this.waiting.shift()!);
      // Those whose session stopped are let go now rather than at their slot.
      while (this.waiting.length > 0 && this.waiting[0]!.flight.end !== undefined) this.waiting.shift();
      this.arm();
    }, Math.max(0, this.waiting[0]!.at - this.now()));
    // The session's socket keeps the process alive while packets wait; a stopped session leaves this behind.
    this.timer.unref();
  }
}
