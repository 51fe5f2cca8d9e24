import { describe, expect, it } from 'vitest';
import { Progress, formatDuration } from '../../cli/progress.js';

function recorder(): { text: () => string; write: (s: string) => void } {
  let out = '';
  return { text: () => out, write: (s: string) => void (out += s) };
}

describe('Progress', () => {
  it('writes a plain line at most every interval, with count, rate and ETA, and a last line', () => {
    let t = 0;
    const out = recorder();
    const p = new Progress(out, { label: 'bind', total: 1000, tty: false, intervalMs: 5000, unit: 'calls', now: () => t });
    for (let i = 0; i < 500; i++) {
      t += 10; // 100 a second
      p.tick();
    }
    p.tick(2, true);
    p.finish();
    const lines = out.text().trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe('bind: 500/1,000 calls · 100/s · ETA 5s');
    expect(lines[1]).toBe('bind: 502/1,000 calls · 2 failed · 100/s · ETA 5s');
    expect(out.text()).not.toContain('\r');
  });

  it('redraws one line in place on a terminal, with a bar, and ends it', () => {
    let t = 0;
    const out = recorder();
    const p = new Progress(out, { label: 'create', total: 10, tty: true, columns: 60, now: () => t });
    for (let i = 0; i < 10; i++) {
      t += 200;
      p.tick();
    }
    p.finish();
    const frames = out.text().split('\r').filter(Boolean);
    expect(frames.length).toBeGreaterThanOrEqual(10);
    expect(frames.every((f) => f.replace(/\n$/, '').length === 59)).toBe(true);
    expect(frames.at(-1)).toMatch(/^\[#{20}\] create: 10\/10 · 5\.0\/s · took 2s\s+\n$/);
    expect(frames[4]).toMatch(/^\[#{10}-{10}\] create: 5\/10/);
  });

  it('follows a run that slows down', () => {
    let t = 0;
    const out = recorder();
    const p = new Progress(out, { label: 'x', total: 10_000, tty: false, intervalMs: 1, now: () => t });
    for (let i = 0; i < 1000; i++) {
      t += 10; // 100/s for 10 s
      p.tick();
    }
    for (let i = 0; i < 200; i++) {
      t += 100; // then 10/s for 20 s
      p.tick();
    }
    expect(out.text().trim().split('\n').at(-1)).toMatch(/· 10\/s · ETA 14m40s$/);
  });

  it('shows a note for 10 seconds', () => {
    let t = 0;
    const p = new Progress({ write: () => {} }, { label: 'bind', total: 10, tty: false, now: () => t });
    p.setNote('rate limited on bind: waiting 2s, then slower');
    t = 5000;
    expect(p.line()).toMatch(/· rate limited on bind: waiting 2s, then slower$/);
    t = 10_001;
    expect(p.line()).not.toContain('rate limited');
  });

  it('formats durations', () => {
    expect([formatDuration(400), formatDuration(61_000), formatDuration(3_720_000), formatDuration(Infinity)]).toEqual(['0s', '1m01s', '1h02m', '?']);
  });
});
