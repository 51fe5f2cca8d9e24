import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Flight, FlightClock, type FlightEnd } from '../../../lib/gateway/flights.js';

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('Flight', () => {
  it('settles once: a later end changes nothing and calls nobody again', async () => {
    const clock = new FlightClock();
    const ends: FlightEnd[] = [];
    const flight = new Flight(clock, 5000, (end) => ends.push(end));
    const done = flight.done;
    flight.settle({ kind: 'acked' });
    flight.settle({ kind: 'refused', code: 'ERR_DEVICE_NOT_FOUND', reason: 'late' });
    flight.settle({ kind: 'timeout' });
    expect(flight.end).toEqual({ kind: 'acked' });
    expect(ends).toEqual([{ kind: 'acked' }]);
    await expect(done).resolves.toEqual({ kind: 'acked' });
    await expect(flight.done).resolves.toEqual({ kind: 'acked' });
    expect(clock.pending.size).toBe(0);
  });

  it('acknowledged() notes the first acknowledgement time, also after the flight ended otherwise', () => {
    const clock = new FlightClock();
    const flight = new Flight(clock, 5000);
    vi.advanceTimersByTime(40);
    flight.acknowledged();
    expect(flight.end).toEqual({ kind: 'acked' });
    expect(flight.ackedAt).toBe(1_000_040);
    const late = new Flight(clock, 10);
    vi.advanceTimersByTime(20);
    expect(late.end).toEqual({ kind: 'timeout' });
    late.acknowledged();
    expect(late.end).toEqual({ kind: 'timeout' });
    expect(late.ackedAt).toBe(1_000_060);
    vi.advanceTimersByTime(5);
    late.acknowledged();
    expect(late.ackedAt).toBe(1_000_060);
  });

  it('resolves `done` asked for after the end with that end', async () => {
    const clock = new FlightClock();
    const flight = new Flight(clock, 5000);
    flight.settle({ kind: 'stopped', code: 'ERR_DEADLINE', reason: 'deadline' });
    await expect(flight.done).resolves.toEqual({ kind: 'stopped', code: 'ERR_DEADLINE', reason: 'deadline' });
  });

  it('resolves `done` asked for before the end only when it ends', async () => {
    const clock = new FlightClock();
    const flight = new Flight(clock, 5000);
    let resolved: FlightEnd | undefined;
    void flight.done.then((e) => (resolved = e));
    await vi.advanceTimersByTimeAsync(100);
    expect(resolved).toBeUndefined();
    flight.settle({ kind: 'refused', code: 'ERR_SUBSCRIBE_REJECTED', reason: 'r' });
    await Promise.resolve();
    expect(resolved).toEqual({ kind: 'refused', code: 'ERR_SUBSCRIBE_REJECTED', reason: 'r' });
  });

  it('expires at send time plus the timeout, never before the send', () => {
    const clock = new FlightClock();
    expect(new Flight(clock, 250).expiresAt).toBe(1_000_250);
    expect(new Flight(clock, -10).expiresAt).toBe(1_000_000);
    clock.disarm();
  });
});

describe('FlightClock', () => {
  it('times out only the flights whose time is up, and rearms for the next', () => {
    const clock = new FlightClock();
    const a = new Flight(clock, 100);
    const b = new Flight(clock, 300);
    vi.advanceTimersByTime(50);
    const c = new Flight(clock, 100); // expires at +150
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(50);
    expect(a.end).toEqual({ kind: 'timeout' });
    expect(b.end).toBeUndefined();
    expect(c.end).toBeUndefined();
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(49);
    expect(c.end).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(c.end).toEqual({ kind: 'timeout' });
    expect(b.end).toBeUndefined();
    vi.advanceTimersByTime(149);
    expect(b.end).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(b.end).toEqual({ kind: 'timeout' });
    expect(clock.pending.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps one timer for many flights, armed for the earliest', () => {
    const clock = new FlightClock();
    const flights = Array.from({ length: 100 }, (_, i) => new Flight(clock, 1000 - i));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(900);
    expect(flights.filter((f) => f.end !== undefined)).toHaveLength(0);
    vi.advanceTimersByTime(50);
    // Expiries 901 to 950 have passed: the flights created with the shortest timeouts, and only they.
    expect(flights.map((f) => f.end !== undefined)).toEqual(flights.map((_, i) => i >= 50));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(50);
    expect(flights.every((f) => f.end?.kind === 'timeout')).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('disarms when the last pending flight ends, so nothing keeps the process alive', () => {
    const clock = new FlightClock();
    const a = new Flight(clock, 1000);
    const b = new Flight(clock, 2000);
    expect(vi.getTimerCount()).toBe(1);
    a.settle({ kind: 'acked' });
    expect(vi.getTimerCount()).toBe(1);
    b.settle({ kind: 'acked' });
    expect(clock.pending.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not time out a flight that was acknowledged before its timer came', () => {
    const clock = new FlightClock();
    const a = new Flight(clock, 100);
    const b = new Flight(clock, 100);
    a.settle({ kind: 'acked' });
    vi.advanceTimersByTime(100);
    expect(a.end).toEqual({ kind: 'acked' });
    expect(b.end).toEqual({ kind: 'timeout' });
  });

  it('times a flight started by another flight ending during the sweep', () => {
    const clock = new FlightClock();
    let refill: Flight | undefined;
    new Flight(clock, 100, () => (refill = new Flight(clock, 100)));
    vi.advanceTimersByTime(100);
    expect(refill).toBeDefined();
    expect(refill!.end).toBeUndefined();
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(100);
    expect(refill!.end).toEqual({ kind: 'timeout' });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('disarm() stops the timer without ending the flights', () => {
    const clock = new FlightClock();
    const a = new Flight(clock, 100);
    clock.disarm();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1000);
    expect(a.end).toBeUndefined();
  });
});
