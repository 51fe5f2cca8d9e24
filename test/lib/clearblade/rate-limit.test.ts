import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConcurrencyLimit, sleep, TokenBucket } from '../../../lib/clearblade/rate-limit.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** The clock the buckets read: the fake timers' Date. */
const clock = (): number => Date.now();
const perSecond = (n: number): number => n / 1000;

/** Whether a promise has settled, read after letting timers and microtasks run. */
function watch<T>(promise: Promise<T>): { readonly done: boolean; readonly failed: unknown } {
  const state = { done: false, failed: undefined as unknown };
  promise.then(
    () => {
      state.done = true;
    },
    (e: unknown) => {
      state.done = true;
      state.failed = e;
    },
  );
  return state;
}

/** Checks that `promise` is still pending `ms - 1` ms from now, and has settled at `ms`. */
async function expectSettledAfter(promise: Promise<unknown>, ms: number): Promise<void> {
  const state = watch(promise);
  await vi.advanceTimersByTimeAsync(ms - 1);
  expect(state.done).toBe(false);
  await vi.advanceTimersByTimeAsync(1);
  expect(state.done).toBe(true);
}

describe('sleep', () => {
  it('resolves after the time given, and at once for a negative time', async () => {
    await expectSettledAfter(sleep(100), 100);
    const negative = watch(sleep(-5));
    await vi.advanceTimersByTimeAsync(0);
    expect(negative.done).toBe(true);
  });

  it("rejects with the signal's reason, whether it aborted before or during the sleep", async () => {
    await expect(sleep(10, AbortSignal.abort(new Error('gone')))).rejects.toThrow('gone');
    const controller = new AbortController();
    const s = watch(sleep(1000, controller.signal));
    await vi.advanceTimersByTimeAsync(10);
    controller.abort(new Error('stopped'));
    await vi.advanceTimersByTimeAsync(0);
    expect(s.failed).toEqual(new Error('stopped'));
  });
});

describe('TokenBucket', () => {
  it('refuses a rate that is not positive', () => {
    for (const rate of [0, -1, Number.NaN]) expect(() => new TokenBucket(rate)).toThrow(new RangeError(`rate must be positive (got ${rate})`));
  });

  it('starts with one second of calls, then lets them go at its rate', async () => {
    const bucket = new TokenBucket(perSecond(10), undefined, clock);
    const first = Array.from({ length: 10 }, () => watch(bucket.take()));
    const eleventh = watch(bucket.take());
    await vi.advanceTimersByTimeAsync(0);
    expect(first.every((t) => t.done)).toBe(true);
    expect(eleventh.done).toBe(false);
    await vi.advanceTimersByTimeAsync(99);
    expect(eleventh.done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(eleventh.done).toBe(true);
  });

  it('holds at least one call, however slow its rate', async () => {
    const bucket = new TokenBucket(1 / 60_000, undefined, clock);
    const first = watch(bucket.take());
    const second = watch(bucket.take());
    await vi.advanceTimersByTimeAsync(59_999);
    expect([first.done, second.done]).toEqual([true, false]);
    await vi.advanceTimersByTimeAsync(1);
    expect(second.done).toBe(true);
  });

  it('does not save up more than one second of calls while idle', async () => {
    const bucket = new TokenBucket(perSecond(2), undefined, clock);
    await vi.advanceTimersByTimeAsync(60_000);
    const takes = Array.from({ length: 3 }, () => watch(bucket.take()));
    await vi.advanceTimersByTimeAsync(0);
    expect(takes.map((t) => t.done)).toEqual([true, true, false]);
  });

  it('lets every call go at once at an infinite rate', async () => {
    const bucket = new TokenBucket(Infinity, undefined, clock);
    const takes = Array.from({ length: 1000 }, () => watch(bucket.take()));
    await vi.advanceTimersByTimeAsync(0);
    expect(takes.every((t) => t.done)).toBe(true);
    await expect(bucket.take(AbortSignal.abort(new Error('no')))).rejects.toThrow('no');
  });

  it('gives tokens in arrival order, and a caller that gives up does not hold up the next', async () => {
    const bucket = new TokenBucket(perSecond(1), undefined, clock);
    await bucket.take();
    const order: string[] = [];
    const controller = new AbortController();
    const a = bucket.take(controller.signal).then(() => order.push('a'), () => order.push('a gave up'));
    const b = bucket.take().then(() => order.push('b'));
    const c = bucket.take().then(() => order.push('c'));
    await vi.advanceTimersByTimeAsync(500);
    controller.abort(new Error('stop'));
    await vi.advanceTimersByTimeAsync(500);
    expect(order).toEqual(['a gave up', 'b']);
    await vi.advanceTimersByTimeAsync(1000);
    await Promise.all([a, b, c]);
    expect(order).toEqual(['a gave up', 'b', 'c']);
  });

  it('after slowDown, lets nothing go before the pause is over, and runs at three quarters of the rate', async () => {
    const bucket = new TokenBucket(perSecond(4), undefined, clock);
    bucket.slowDown(2000);
    expect(bucket.rate).toBeCloseTo(perSecond(3), 12);
    await expectSettledAfter(bucket.take(), 2000);
  });

  it('drops the tokens saved up when slowed down: after a short pause, a call waits for a whole token', async () => {
    const bucket = new TokenBucket(perSecond(4), undefined, clock);
    bucket.slowDown(100);
    // 100 ms at 3 a second refilled 0.3 of a token; the other 0.7 take another 233 ms.
    const first = watch(bucket.take());
    await vi.advanceTimersByTimeAsync(332);
    expect(first.done).toBe(false);
    await vi.advanceTimersByTimeAsync(2);
    expect(first.done).toBe(true);
  });

  it('lowers the rate once for a refused burst, and never below its floor', () => {
    const bucket = new TokenBucket(perSecond(100), perSecond(50), clock);
    bucket.slowDown(1000);
    bucket.slowDown(1000);
    bucket.slowDown(1000);
    expect(bucket.rate).toBeCloseTo(perSecond(75), 12);
    vi.advanceTimersByTime(1000);
    bucket.slowDown(10);
    expect(bucket.rate).toBeCloseTo(perSecond(56.25), 12);
    vi.advanceTimersByTime(10);
    bucket.slowDown(10);
    expect(bucket.rate).toBeCloseTo(perSecond(50), 12);
  });

  it('pauses an infinite rate without giving it a rate', async () => {
    const bucket = new TokenBucket(Infinity, undefined, clock);
    bucket.slowDown(500);
    expect(bucket.rate).toBe(Infinity);
    await expectSettledAfter(bucket.take(), 500);
  });
});

describe('ConcurrencyLimit', () => {
  it('refuses a limit that is not a positive whole number', () => {
    for (const max of [0, 1.5, -1]) expect(() => new ConcurrencyLimit(max)).toThrow(new RangeError(`concurrency must be a positive integer (got ${max})`));
  });

  it('lets up to max in at once, and hands a released slot to the next in line', async () => {
    const limit = new ConcurrencyLimit(2);
    const first = await limit.acquire();
    await limit.acquire();
    const third = watch(limit.acquire());
    await vi.advanceTimersByTimeAsync(0);
    expect([limit.inFlight, third.done]).toEqual([2, false]);
    first();
    await vi.advanceTimersByTimeAsync(0);
    expect([limit.inFlight, third.done]).toEqual([2, true]);
  });

  it('counts a release once, however often it is called', async () => {
    const limit = new ConcurrencyLimit(1);
    const release = await limit.acquire();
    release();
    release();
    expect(limit.inFlight).toBe(0);
    await limit.acquire();
    const waiting = watch(limit.acquire());
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect([limit.inFlight, waiting.done]).toEqual([1, false]);
  });

  it('drops a waiter whose signal aborts, and refuses an aborted signal at once', async () => {
    const limit = new ConcurrencyLimit(1);
    const release = await limit.acquire();
    const controller = new AbortController();
    const gaveUp = watch(limit.acquire(controller.signal));
    const next = watch(limit.acquire());
    controller.abort(new Error('late'));
    await vi.advanceTimersByTimeAsync(0);
    expect(gaveUp.failed).toEqual(new Error('late'));
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(next.done).toBe(true);
    await expect(limit.acquire(AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
  });
});
