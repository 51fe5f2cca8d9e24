import { describe, expect, it } from 'vitest';
import { DEVICE_ROWS, shownDevices } from '../../local/dashboard-feed.js';

const fleet = (n: number): { id: string; lastEventTime?: string }[] =>
  Array.from({ length: n }, (_, i) => ({ id: `meter-${String(i).padStart(6, '0')}` }));

describe('shownDevices: the dashboard lists a fleet by what matters now', () => {
  it('lists every device of a small registry, in registry order', () => {
    const all = fleet(5);
    expect(shownDevices(all, new Set()).map((d) => d.id)).toEqual(all.map((d) => d.id));
  });

  it('lists at most DEVICE_ROWS of 100,000: attached first, then the most recently heard, then registry order', () => {
    const all = fleet(100_000);
    all[70_000]!.lastEventTime = '2026-12-04T03:00:00.000Z';
    all[90_000]!.lastEventTime = '2026-12-04T03:05:00.000Z';
    const shown = shownDevices(all, new Set(['meter-050000']));
    expect(shown).toHaveLength(DEVICE_ROWS);
    expect(shown.slice(0, 3).map((d) => d.id)).toEqual(['meter-050000', 'meter-090000', 'meter-070000']);
    expect(shown[3]!.id).toBe('meter-000000');
    expect(new Set(shown.map((d) => d.id)).size).toBe(DEVICE_ROWS);
  });
});
