/**
 * Progress of a long command on stderr: on a terminal, one line redrawn in place with a bar, the count, the rate
 * and the time left; otherwise (a CI log, a pipe) a plain line every few seconds and one at the end, so a log is
 * readable and never fills with carriage returns.
 *
 * The rate is measured over the last 10 seconds, so the time left follows a run that slows down (a rate limit
 * kicking in) instead of trusting its fast start.
 *
 * @example
 * const bar = new Progress(process.stderr, { label: 'bind', total: 100_000, tty: process.stderr.isTTY === true });
 * bar.tick();          // one done
 * bar.tick(1, true);   // one failed
 * bar.finish();
 */

export interface ProgressOptions {
  label: string;
  /** Undefined when the total is not known (reading a registry): no bar, no time left. */
  total: number | undefined;
  tty: boolean;
  /** Terminal width. Default 80. */
  columns?: number;
  /** Plain mode: a line at most this often. Default 5 s. */
  intervalMs?: number;
  /** Unit after the count: `calls`, `devices`. Default none. */
  unit?: string;
  now?: () => number;
}

const WINDOW_MS = 10_000;
const TTY_REDRAW_MS = 100;

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export const count = (n: number): string => n.toLocaleString('en-US');

export class Progress {
  private done = 0;
  private failed = 0;
  private readonly started: number;
  private lastDraw = -Infinity;
  private readonly samples: { t: number; done: number }[] = [];
  private drawn = false;
  private readonly now: () => number;
  private note = '';
  private noteAt = -Infinity;

  constructor(
    private readonly out: { write(text: string): unknown },
    private readonly options: ProgressOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.started = this.now();
    this.samples.push({ t: this.started, done: 0 });
    // A plain log gets its first line after one interval: a phase shorter than that prints only its last line.
    if (!options.tty) this.lastDraw = this.started;
  }

  get completed(): number {
    return this.done + this.failed;
  }

  /** A short note shown after the figures (e.g. "rate limited, slowing down") for the next 10 seconds. */
  setNote(note: string): void {
    this.note = note;
    this.noteAt = this.now();
  }

  tick(n = 1, failed = false): void {
    if (failed) this.failed += n;
    else this.done += n;
    const t = this.now();
    const interval = this.options.tty ? TTY_REDRAW_MS : (this.options.intervalMs ?? 5000);
    if (t - this.lastDraw >= interval) this.draw(t);
  }

  /** Rate per second over the last 10 s. */
  private rate(t: number): number {
    this.samples.push({ t, done: this.completed });
    while (this.samples.length > 2 && t - this.samples[1]!.t > WINDOW_MS) this.samples.shift();
    const first = this.samples[0]!;
    const dt = t - first.t;
    return dt <= 0 ? 0 : ((this.completed - first.done) / dt) * 1000;
  }

  line(t = this.now()): string {
    const { total, label, unit } = this.options;
    const rate = this.rate(t);
    const n = this.completed;
    const parts = [`${label}: ${count(n)}${total === undefined ? '' : `/${count(total)}`}${unit === undefined ? '' : ` ${unit}`}`];
    if (this.failed > 0) parts.push(`${count(this.failed)} failed`);
    parts.push(`${rate >= 10 ? Math.round(rate) : rate.toFixed(1)}/s`);
    if (total !== undefined) parts.push(n >= total ? `took ${formatDuration(t - this.started)}` : `ETA ${rate > 0 ? formatDuration(((total - n) / rate) * 1000) : '?'}`);
    else parts.push(formatDuration(t - this.started));
    if (this.note !== '' && t - this.noteAt <= WINDOW_MS) parts.push(this.note);
    return parts.join(' · ');
  }

  private draw(t: number): void {
    this.lastDraw = t;
    const text = this.line(t);
    if (!this.options.tty) {
      this.out.write(`${text}\n`);
      return;
    }
    const width = Math.max(40, this.options.columns ?? 80);
    const total = this.options.total;
    let bar = '';
    if (total !== undefined && total > 0) {
      const cells = 20;
      const filled = Math.min(cells, Math.floor((this.completed / total) * cells));
      bar = `[${'#'.repeat(filled)}${'-'.repeat(cells - filled)}] `;
    }
    const full = `${bar}${text}`;
    this.out.write(`\r${full.length > width - 1 ? full.slice(0, width - 1) : full.padEnd(width - 1)}`);
    this.drawn = true;
  }

  /** The last line, and the end of the redrawn one. */
  finish(): void {
    const t = this.now();
    if (this.options.tty) {
      this.draw(t);
      if (this.drawn) this.out.write('\n');
    } else {
      this.out.write(`${this.line(t)}\n`);
    }
  }
}
