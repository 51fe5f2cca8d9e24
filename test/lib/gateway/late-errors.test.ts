/**
 * The grace window for errors after a device's final barrier: which errors still apply, which are only counted, and
 * how long the window holds a session.
 */
import { describe, expect, it } from 'vitest';
import { LateErrorWindow } from '../../../lib/gateway/late-errors.js';

const before = { barrier: false };
const after = { barrier: true };
const counts = (w: LateErrorWindow) => ({ lateErrors: w.lateErrors, lateErrorsAfterGrace: w.lateErrorsAfterGrace });

describe('LateErrorWindow', () => {
  it('admits, without counting, an error about a device before its barrier or about no device', () => {
    const w = new LateErrorWindow(0);
    expect(w.admits(before)).toBe(true);
    expect(w.admits(undefined)).toBe(true);
    expect(counts(w)).toEqual({ lateErrors: 0, lateErrorsAfterGrace: 0 });
  });

  it('with a window of 0, only counts an error after the barrier, even before the window is closed', () => {
    const w = new LateErrorWindow(0);
    expect(w.admits(after)).toBe(false);
    expect(counts(w)).toEqual({ lateErrors: 1, lateErrorsAfterGrace: 1 });
  });

  it('admits a late error while the window is open, and only counts one after it closed', async () => {
    const w = new LateErrorWindow(30);
    expect(w.admits(after)).toBe(true);
    const closing = w.close(Date.now() + 10_000, Date.now());
    expect(w.admits(after)).toBe(true);
    await closing;
    expect(w.admits(after)).toBe(false);
    expect(w.admits(before)).toBe(true);
    expect(counts(w)).toEqual({ lateErrors: 3, lateErrorsAfterGrace: 1 });
  });

  it('holds the session until the grace after the last PUBACK, bounded by the deadline', async () => {
    let t = Date.now();
    await new LateErrorWindow(60).close(Date.now() + 10_000, Date.now());
    expect(Date.now() - t).toBeGreaterThanOrEqual(55);
    // A PUBACK 40 ms ago leaves 20 ms of a 60 ms window; one older than the window leaves nothing to wait.
    t = Date.now();
    await new LateErrorWindow(60).close(Date.now() + 10_000, Date.now() - 40);
    expect(Date.now() - t).toBeGreaterThanOrEqual(15);
    expect(Date.now() - t).toBeLessThan(50);
    t = Date.now();
    await new LateErrorWindow(60).close(Date.now() + 10_000, Date.now() - 100);
    expect(Date.now() - t).toBeLessThan(10);
    t = Date.now();
    await new LateErrorWindow(5_000).close(Date.now() + 40, Date.now());
    const waited = Date.now() - t;
    expect(waited).toBeGreaterThanOrEqual(35);
    expect(waited).toBeLessThan(1_000);
  });

  it('closes at once when no record would be confirmed, or the deadline has passed', async () => {
    const idle = new LateErrorWindow(5_000);
    const t = Date.now();
    await idle.close(Date.now() + 10_000, undefined);
    await new LateErrorWindow(5_000).close(Date.now() - 1, Date.now());
    expect(Date.now() - t).toBeLessThan(50);
    expect(idle.admits(after)).toBe(false);
  });
});
