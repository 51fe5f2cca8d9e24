/**
 * The session's pace (lib/gateway/publish-pace.ts): slots of at most `rate` PUBLISHes in any second, in order,
 * timeouts counted from the slot, nothing sent for a flight that ended while it waited, and the overrun hint.
 * Timers and the clock are vitest's fake ones; the flights are the session's own.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RelayError } from '../../../lib/errors.js';
import { Flight, FlightClock } from '../../../lib/gateway/flights.js';
import { BRIDGE_MESSAGES_PER_SECOND, PublishPace, SLOT_MARGIN_MS } from '../../../lib/gateway/publish-pace.js';

const T0 = 1_000_000;
let clock: FlightClock;
const noLedger = { sent: () => {}, applyPubackRefusal: () => {} };

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
  clock = new FlightClock();
});
afterEach(() => {
  clock.disarm();
  vi.useRealTimers();
});

/** Sends `n` packets through the pace; when each left (ms after T0), by its index, and each flight. */
function sendMany(pace: PublishPace, n: number, timeoutMs = 5000): { sentAt: Map<number, number>; flights: Flight[] } {
  const sentAt = new Map<number, number>();
  const flights: Flight[] = [];
  for (let i = 0; i < n; i++) flights.push(pace.paced(timeoutMs, (ms) => new Flight(clock, ms), () => sentAt.set(i, Date.now() - T0)));
  return { sentAt, flights };
}

describe('PublishPace', () => {
  it('sends everything at once with no pace, timeouts as given', () => {
    const { sentAt, flights } = sendMany(new PublishPace(0, T0 + 60_000, clock, noLedger), 250);
    expect([...sentAt.values()]).toEqual(Array(250).fill(0));
    expect(flights.every((f) => f.expiresAt === T0 + 5000)).toBe(true);
  });

  it('sends at most `rate` in any second, in order, each timeout counted from its slot', async () => {
    const pace = new PublishPace(3, T0 + 60_000, clock, noLedger);
    const { sentAt, flights } = sendMany(pace, 7);
    expect([...sentAt.keys()]).toEqual([0, 1, 2]);
    const second = 1000 + SLOT_MARGIN_MS;
    await vi.advanceTimersByTimeAsync(second - 1);
    expect(sentAt.size).toBe(3);
    await vi.advanceTimersByTimeAsync(1);
    expect([...sentAt.entries()]).toEqual([[0, 0], [1, 0], [2, 0], [3, second], [4, second], [5, second]]);
    await vi.advanceTimersByTimeAsync(second);
    expect(sentAt.get(6)).toBe(2 * second);
    expect(flights.map((f) => f.expiresAt - T0)).toEqual([5000, 5000, 5000, 5000 + second, 5000 + second, 5000 + second, 5000 + 2 * second]);
  });

  it('counts the second from the slot `rate` back, so a slow trickle is never held', async () => {
    const pace = new PublishPace(2, T0 + 60_000, clock, noLedger);
    const left: number[] = [];
    for (let i = 0; i < 4; i++) {
      pace.paced(5000, (ms) => new Flight(clock, ms), () => left.push(Date.now() - T0));
      await vi.advanceTimersByTimeAsync(600);
    }
    expect(left).toEqual([0, 600, 1200, 1800]);
  });

  it('never stretches a timeout past the deadline', () => {
    const pace = new PublishPace(1, T0 + 1500, clock, noLedger);
    const { flights } = sendMany(pace, 2);
    expect(flights[1]!.expiresAt).toBe(T0 + 1500);
  });

  it('sends nothing for a flight that ended while it waited, and keeps the others at their slots', async () => {
    const pace = new PublishPace(1, T0 + 60_000, clock, noLedger);
    const { sentAt, flights } = sendMany(pace, 3);
    flights[1]!.settle({ kind: 'stopped', code: 'ERR_DEADLINE', reason: 'stopped' });
    await vi.advanceTimersByTimeAsync(3 * (1000 + SLOT_MARGIN_MS));
    expect([...sentAt.keys()]).toEqual([0, 2]);
    expect(sentAt.get(2)).toBe(2 * (1000 + SLOT_MARGIN_MS));
  });

  it('ends the flight of a packet the closed link refused, with the link\'s code', async () => {
    const pace = new PublishPace(1, T0 + 60_000, clock, noLedger);
    pace.paced(5000, (ms) => new Flight(clock, ms), () => {});
    const waiting = pace.paced(5000, (ms) => new Flight(clock, ms), () => {
      throw new RelayError('ERR_CONNECTION_LOST', 'cannot send: the connection to the bridge is closed');
    });
    await vi.advanceTimersByTimeAsync(1000 + SLOT_MARGIN_MS);
    expect(waiting.end).toEqual({ kind: 'stopped', code: 'ERR_CONNECTION_LOST', reason: 'cannot send: the connection to the bridge is closed' });
  });

  it(`explains a loss right after more than ${BRIDGE_MESSAGES_PER_SECOND} PUBLISHes in a second as a likely overrun`, async () => {
    const pace = new PublishPace(0, T0 + 60_000, clock, noLedger);
    sendMany(pace, BRIDGE_MESSAGES_PER_SECOND);
    expect(pace.explain('the bridge closed the connection while attaching')).toBe('the bridge closed the connection while attaching');
    sendMany(pace, 1);
    expect(pace.sentInLastSecond()).toBe(BRIDGE_MESSAGES_PER_SECOND + 1);
    expect(pace.explain('the bridge closed the connection while attaching')).toMatch(
      /^the bridge closed the connection while attaching, right after more than 100 PUBLISH packets in one second: .*RELAY_PUBLISH_RATE/,
    );
    await vi.advanceTimersByTimeAsync(1000);
    expect(pace.explain('lost')).toBe('lost');
  });

  it.each([-1, 1.5, Number.NaN])('refuses a rate of %s', (rate) => {
    expect(() => new PublishPace(rate, T0, clock, noLedger)).toThrow(RangeError);
  });
});
