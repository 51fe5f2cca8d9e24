/**
 * The round-trip results as an SVG chart, written by hand: median wall time per batch against records per batch,
 * both axes logarithmic (batches go from 1 to 1,000 records, times from a few round trips to a thousand), one line
 * per client and network path. Relay in blue, baseline in red; solid for the emulator's latency, dashed behind the
 * delay proxy.
 *
 * @example
 * await writeFile('bench/round-trips.svg', roundTripsSvg(results.roundTrips));
 */
import type { RoundTripResults } from './round-trips.js';
import { median } from './statistics.js';

const WIDTH = 820;
const HEIGHT = 460;
const MARGIN = { left: 72, right: 250, top: 48, bottom: 56 };
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;

const COLORS = { relay: '#1f6fb4', baseline: '#c8352b' } as const;
const DASH = { 'emulator latency': '', 'delay proxy': '7 5' } as const;

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A logarithmic scale over [lo, hi] (both > 0) onto [0, size]. */
function logScale(lo: number, hi: number, size: number): (v: number) => number {
  const a = Math.log10(lo);
  const b = Math.log10(hi);
  return (v) => ((Math.log10(v) - a) / (b - a || 1)) * size;
}

/** 1, 2, 5 times powers of ten within [lo, hi]. */
function niceTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let p = Math.floor(Math.log10(lo)); p <= Math.ceil(Math.log10(hi)); p++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** p;
      if (v >= lo && v <= hi) ticks.push(v);
    }
  }
  return ticks;
}

const label = (v: number): string => (v >= 1000 ? `${v / 1000}k` : String(v));

export function roundTripsSvg(rt: RoundTripResults): string {
  const chartKeys = new Set(rt.chartShapes.map((s) => `${s.records}/${s.devices}`));
  const rows = rt.rows.filter((r) => chartKeys.has(`${r.shape.records}/${r.shape.devices}`));
  type Series = { client: 'relay' | 'baseline'; path: keyof typeof DASH; points: { records: number; devices: number; ms: number }[] };
  const series: Series[] = [];
  for (const path of Object.keys(DASH) as (keyof typeof DASH)[]) {
    for (const client of ['relay', 'baseline'] as const) {
      const points = rows
        .filter((r) => r.path === path)
        .map((r) => ({ records: r.shape.records, devices: r.shape.devices, ms: median(client === 'relay' ? r.relayMs : r.baselineMs) }))
        .filter((p) => Number.isFinite(p.ms) && p.ms > 0)
        .sort((a, b) => a.records - b.records);
      if (points.length > 0) series.push({ client, path, points });
    }
  }
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p.records);
  const ys = all.map((p) => p.ms);
  const xLo = Math.max(1, Math.min(...xs, 1)) / 1.6;
  const xHi = Math.max(...xs, 10) * 1.6;
  const yLo = 10 ** Math.floor(Math.log10(Math.min(...ys, rt.roundTripMs)));
  const yHi = 10 ** Math.ceil(Math.log10(Math.max(...ys, rt.roundTripMs * 10)));
  const sx = logScale(xLo, xHi, PLOT_W);
  const sy = logScale(yLo, yHi, PLOT_H);
  const px = (v: number): number => MARGIN.left + sx(v);
  const py = (v: number): number => MARGIN.top + PLOT_H - sy(v);
  const f = (v: number): string => v.toFixed(1);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<title>Wall time per batch against batch size, relay and baseline, round trip ${rt.roundTripMs} ms</title>`);
  out.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`);
  out.push(
    `<text x="${MARGIN.left}" y="24" font-size="15" font-weight="bold">Wall time per batch (median of ${rt.runs}), injected round trip ${rt.roundTripMs} ms</text>`,
  );

  // Grid and ticks.
  for (const v of niceTicks(yLo, yHi)) {
    const y = f(py(v));
    out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + PLOT_W}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
    out.push(`<text x="${MARGIN.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#444">${label(v)}</text>`);
  }
  const xTicks = [...new Set([...niceTicks(Math.ceil(xLo), Math.floor(xHi)).filter((v) => Math.log10(v) % 1 === 0), ...xs])].sort((a, b) => a - b);
  for (const v of xTicks) {
    const x = f(px(v));
    out.push(`<line x1="${x}" x2="${x}" y1="${MARGIN.top}" y2="${MARGIN.top + PLOT_H}" stroke="#efefef"/>`);
    out.push(`<text x="${x}" y="${MARGIN.top + PLOT_H + 18}" text-anchor="middle" fill="#444">${label(v)}</text>`);
  }
  out.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${PLOT_W}" height="${PLOT_H}" fill="none" stroke="#999"/>`);
  out.push(`<text x="${MARGIN.left + PLOT_W / 2}" y="${HEIGHT - 14}" text-anchor="middle">records per batch (1 per device up to 10, then 10 per device; log scale)</text>`);
  out.push(
    `<text transform="translate(18 ${MARGIN.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle">wall time, ms (log scale)</text>`,
  );

  // Lines and points.
  for (const s of series) {
    const color = COLORS[s.client];
    const dash = DASH[s.path] === '' ? '' : ` stroke-dasharray="${DASH[s.path]}"`;
    const points = s.points.map((p) => `${f(px(p.records))},${f(py(p.ms))}`).join(' ');
    out.push(`<polyline data-client="${s.client}" data-path="${escapeXml(s.path)}" points="${points}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
    for (const p of s.points) {
      const tip = `${s.client}, ${s.path}: ${p.records} records / ${p.devices} devices, ${p.ms.toFixed(0)} ms = ${(p.ms / rt.roundTripMs).toFixed(1)} round trips`;
      out.push(`<circle cx="${f(px(p.records))}" cy="${f(py(p.ms))}" r="3.5" fill="${color}"><title>${escapeXml(tip)}</title></circle>`);
    }
  }

  // The round trips of each line's last point, at its right; pushed apart where lines end close together.
  const labels = series
    .map((s) => {
      const last = s.points[s.points.length - 1]!;
      return { x: px(last.records) + 8, y: py(last.ms), color: COLORS[s.client], text: `${(last.ms / rt.roundTripMs).toFixed(0)} RT` };
    })
    .sort((a, b) => a.y - b.y);
  for (let i = 1; i < labels.length; i++) labels[i]!.y = Math.max(labels[i]!.y, labels[i - 1]!.y + 13);
  for (const l of labels) out.push(`<text x="${f(l.x)}" y="${f(l.y)}" dominant-baseline="middle" fill="${l.color}" font-size="11">${l.text}</text>`);

  // Legend.
  const lx = MARGIN.left + PLOT_W + 56;
  let ly = MARGIN.top + 10;
  for (const s of series) {
    const dash = DASH[s.path] === '' ? '' : ` stroke-dasharray="${DASH[s.path]}"`;
    out.push(`<line x1="${lx}" x2="${lx + 28}" y1="${ly}" y2="${ly}" stroke="${COLORS[s.client]}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${lx + 36}" y="${ly}" dominant-baseline="middle">${s.client}, ${escapeXml(s.path)}</text>`);
    ly += 22;
  }
  out.push(`<text x="${lx}" y="${ly + 12}" fill="#555" font-size="11">RT: wall time / ${rt.roundTripMs} ms</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
