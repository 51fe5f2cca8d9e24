/**
 * The session's waits on the bridge: one `Flight` per QoS 1 packet (PUBLISH or SUBSCRIBE) until its
 * acknowledgement, an error naming it, its timeout, or the end of the session; and one `FlightClock` that times them
 * all with a single timer.
 *
 * @example
 * const clock = new FlightClock();
 * const flight = new Flight(clock, 5000);
 * flight.settle({ kind: 'acked' });
 * await flight.done; // { kind: 'acked' }
 */
import type { RelayErrorCode } from '../errors.js';

export type FlightEnd =
  | { kind: 'acked' }
  /** An errors-topic message named the packet (or a SUBACK refused it). */
  | { kind: 'refused'; code: RelayErrorCode; reason: string }
  | { kind: 'timeout' }
  | { kind: 'stopped'; code: RelayErrorCode; reason: string };

/**
 * The flights a session is waiting on, and the one timer that ends those whose time is up. A session has thousands
 * of PUBLISHes in flight over its life but only a window of them at once, all with the same timeout: one timer armed
 * for the earliest expiry costs nothing per packet, where a timer per packet was armed and cleared for each one.
 */
export class FlightClock {
  readonly pending = new Set<Flight>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  track(flight: Flight): void {
    this.pending.add(flight);
    if (flight.expiresAt < this.timerAt) this.arm(flight.expiresAt);
  }

  untrack(flight: Flight): void {
    this.pending.delete(flight);
    // Nothing left to time: a timer left armed would keep the process alive after the session.
    if (this.pending.size === 0) this.disarm();
  }

  disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, at - Date.now()));
  }

  private sweep(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = Date.now();
    // A copy: ending a flight may start others (the publish window refills).
    for (const f of [...this.pending]) if (f.expiresAt <= now) f.settle({ kind: 'timeout' });
    let next = Infinity;
    for (const f of this.pending) next = Math.min(next, f.expiresAt);
    if (next !== Infinity && next < this.timerAt) this.arm(next);
  }
}

/** One QoS 1 packet (PUBLISH or SUBSCRIBE) waiting for its acknowledgement. */
export class Flight {
  packetId: number | undefined;
  readonly sentAt = Date.now();
  readonly expiresAt: number;
  /** Set by the acknowledgement, even when it comes after the flight stopped waiting (a late PUBACK still counts). */
  ackedAt: number | undefined;
  end: FlightEnd | undefined;
  private readonly clock: FlightClock;
  /** Called once, synchronously, when the flight ends; record PUBLISHes use it instead of a Promise each. */
  private readonly onEnd: ((end: FlightEnd) => void) | undefined;
  private promise: Promise<FlightEnd> | undefined;
  private resolveDone: ((end: FlightEnd) => void) | undefined;

  constructor(clock: FlightClock, timeoutMs: number, onEnd?: (end: FlightEnd) => void) {
    this.clock = clock;
    this.onEnd = onEnd;
    this.expiresAt = this.sentAt + Math.max(0, timeoutMs);
    clock.track(this);
  }

  /** Resolves with the flight's end; made only for the callers that wait on one flight (attach, detach, SUBSCRIBE). */
  get done(): Promise<FlightEnd> {
    if (this.promise === undefined) {
      const end = this.end;
      this.promise = end !== undefined ? Promise.resolve(end) : new Promise((resolve) => (this.resolveDone = resolve));
    }
    return this.promise;
  }

  /** Its PUBACK or SUBACK came; one that comes after the flight stopped waiting still counts. */
  acknowledged(): void {
    this.ackedAt ??= Date.now();
    this.settle({ kind: 'acked' });
  }

  settle(end: FlightEnd): void {
    if (this.end !== undefined) return;
    this.end = end;
    this.clock.untrack(this);
    this.onEnd?.(end);
    this.resolveDone?.(end);
  }
}
