import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { withDeadline } from '../../lib/deadline.js';
import { isRelayError } from '../../lib/errors.js';

beforeEach(() => {
  // Timers and the clock only: the checks for unhandled rejections wait on a real setImmediate.
  vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z'), toFake: ['setTimeout', 'clearTimeout', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

/** A promise settled from outside. */
function pending<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** The rejections left unhandled by `act`, once the microtasks it set off have run. */
async function unhandledAfter(act: () => void): Promise<unknown[]> {
  const unhandled: unknown[] = [];
  const listener = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', listener);
  act();
  await new Promise((r) => setImmediate(r));
  process.off('unhandledRejection', listener);
  return unhandled;
}

describe('withDeadline', () => {
  it('passes the value through when the promise settles first, and leaves no timer behind', async () => {
    const work = pending<string>();
    const bounded = withDeadline(work.promise, Date.now() + 1_000, 'ERR_DEADLINE');
    expect(vi.getTimerCount()).toBe(1);
    work.resolve('done');

    await expect(bounded).resolves.toBe('done');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('passes the failure through when the promise rejects first, and leaves no timer behind', async () => {
    const failure = new Error('store down');
    const bounded = withDeadline(Promise.reject(failure), Date.now() + 1_000, 'ERR_DEADLINE');

    await expect(bounded).rejects.toBe(failure);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rejects with a RelayError of the given code once the time passes, not a moment before', async () => {
    const work = pending<string>();
    const bounded = withDeadline(work.promise, Date.now() + 1_000, 'ERR_DEVICE_CONFIG_TIMEOUT');
    let settled = false;
    bounded.then(
      () => (settled = true),
      () => (settled = true),
    );

    await vi.advanceTimersByTimeAsync(999);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const error = await bounded.catch((e: unknown) => e);
    expect(isRelayError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'ERR_DEVICE_CONFIG_TIMEOUT' });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('ignores a result that comes after the deadline, and a late failure is not left unhandled', async () => {
    const work = pending<string>();
    const bounded = withDeadline(work.promise, Date.now() + 10, 'ERR_DEADLINE');
    const outcome = bounded.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(10);
    expect(await outcome).toMatchObject({ code: 'ERR_DEADLINE' });

    expect(await unhandledAfter(() => work.reject(new Error('too late')))).toEqual([]);
  });

  it('rejects at once, without a timer, when the time has already passed', async () => {
    const bounded = withDeadline(new Promise<never>(() => {}), Date.now(), 'ERR_DEADLINE');

    expect(vi.getTimerCount()).toBe(0);
    await expect(bounded).rejects.toMatchObject({ name: 'RelayError', code: 'ERR_DEADLINE' });
  });

  it('does not let a late abandoned failure go unhandled when the time had already passed', async () => {
    const work = pending<string>();
    const bounded = withDeadline(work.promise, Date.now() - 5, 'ERR_DEADLINE');
    await expect(bounded).rejects.toMatchObject({ code: 'ERR_DEADLINE' });

    expect(await unhandledAfter(() => work.reject(new Error('too late')))).toEqual([]);
  });

  it('waits for a deadline further away than one timer can reach', async () => {
    const work = pending<string>();
    const days30 = 30 * 24 * 3_600_000;
    const bounded = withDeadline(work.promise, Date.now() + days30, 'ERR_DEADLINE');
    let settled = false;
    bounded.catch(() => (settled = true));

    // setTimeout fires at once for a delay over 2^31 - 1 ms (about 24.8 days).
    await vi.advanceTimersByTimeAsync(days30 - 1);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(settled).toBe(true);
  });

  it('sets no timer for a deadline at infinity', async () => {
    const bounded = withDeadline(Promise.resolve(7), Infinity, 'ERR_DEADLINE');

    expect(vi.getTimerCount()).toBe(0);
    await expect(bounded).resolves.toBe(7);
  });
});

describe('withDeadline with the work as a function', () => {
  it('does not start the work once the deadline has passed', async () => {
    const start = vi.fn(() => Promise.resolve('started'));
    const late = withDeadline(start, Date.now() - 1, 'ERR_DEADLINE');
    await expect(late).rejects.toMatchObject({ code: 'ERR_DEADLINE' });
    expect(start).not.toHaveBeenCalled();
  });

  it('starts it before the deadline, bounds it like a promise, and turns its throw into a rejection', async () => {
    const start = vi.fn(() => Promise.resolve('started'));
    await expect(withDeadline(start, Date.now() + 1_000, 'ERR_DEADLINE')).resolves.toBe('started');
    expect(start).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);

    const never = withDeadline(() => new Promise<never>(() => {}), Date.now() + 50, 'ERR_STORE_UNAVAILABLE');
    vi.advanceTimersByTime(50);
    await expect(never).rejects.toMatchObject({ code: 'ERR_STORE_UNAVAILABLE' });

    const thrown = withDeadline((): Promise<never> => {
      throw new Error('boom');
    }, Date.now() + 1_000, 'ERR_DEADLINE');
    await expect(thrown).rejects.toThrow('boom');
  });
});
