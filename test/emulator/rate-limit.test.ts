/**
 * The per-minute quotas of device-manager calls, on a clock the test moves: exactly the quota passes in a window,
 * a new window opens after the last one ends, kinds count apart, and the defaults are the documented quotas.
 */
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../emulator/registry.js';
import { CallQuota, ConfigUpdateRate, DEFAULT_CALL_QUOTAS, resolveCallQuotas } from '../../emulator/rate-limit.js';

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function refusal(f: () => void): ApiError {
  try {
    f();
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error('the call was not refused');
}

describe('CallQuota', () => {
  it('lets exactly the quota through in one window, then answers RESOURCE_EXHAUSTED (429) until the window ends', () => {
    const c = clock();
    const quota = new CallQuota({ create: 3 }, 60_000, c.now);
    for (let i = 0; i < 3; i++) quota.take('create');
    const e = refusal(() => quota.take('create'));
    expect(e.status).toBe('RESOURCE_EXHAUSTED');
    expect(e.httpCode).toBe(429);
    expect(e.message).toMatch(/at most 3 device creates per minute; the window resets in 60 s/);
    c.advance(59_999);
    expect(refusal(() => quota.take('create')).message).toMatch(/resets in 1 s/);
    c.advance(1);
    for (let i = 0; i < 3; i++) quota.take('create');
    expect(() => quota.take('create')).toThrow(ApiError);
  });

  it('counts each kind apart', () => {
    const c = clock();
    const quota = new CallQuota({ create: 1, delete: 1, bind: 1, read: 1 }, 60_000, c.now);
    quota.take('create');
    quota.take('delete');
    quota.take('bind');
    quota.take('read');
    for (const kind of ['create', 'delete', 'bind', 'read'] as const) expect(() => quota.take(kind)).toThrow(ApiError);
  });

  it('a quota of 0 refuses every call of that kind', () => {
    const quota = new CallQuota({ bind: 0 });
    expect(() => quota.take('bind')).toThrow(/at most 0 binds and unbinds/);
    quota.take('read');
  });

  it('defaults to the documented quotas and refuses bad ones', () => {
    expect(new CallQuota().quotas).toEqual(DEFAULT_CALL_QUOTAS);
    expect(DEFAULT_CALL_QUOTAS).toEqual({ create: 3_000, delete: 3_000, bind: 3_000, read: 30_000 });
    expect(resolveCallQuotas({ read: 5 })).toEqual({ ...DEFAULT_CALL_QUOTAS, read: 5 });
    expect(() => resolveCallQuotas({ read: 1.5 })).toThrow(TypeError);
    expect(() => resolveCallQuotas({ update: 1 } as never)).toThrow(/unknown call kind update/);
    expect(() => new CallQuota({}, 0)).toThrow(/window/);
  });
});

describe('ConfigUpdateRate', () => {
  it('lets one update a second through per device, counting only the updates that succeeded', () => {
    const c = clock();
    const rate = new ConfigUpdateRate(1000, c.now);
    expect(rate.update('r', 'd-1', () => 'v2')).toBe('v2');
    const e = refusal(() => rate.update('r', 'd-1', () => 'v3'));
    expect(e.status).toBe('RESOURCE_EXHAUSTED');
    expect(e.httpCode).toBe(429);
    expect(rate.update('r', 'd-2', () => 'other device')).toBe('other device');
    expect(rate.update('other-registry', 'd-1', () => 'other registry')).toBe('other registry');
    c.advance(999);
    expect(refusal(() => rate.update('r', 'd-1', () => 'still too soon')).status).toBe('RESOURCE_EXHAUSTED');
    c.advance(1);
    expect(() => rate.update('r', 'd-1', () => { throw new ApiError('FAILED_PRECONDITION', 'stale version'); })).toThrow(/stale version/);
    // The failed update did not count: the next one passes at once.
    expect(rate.update('r', 'd-1', () => 'v3')).toBe('v3');
  });
});
