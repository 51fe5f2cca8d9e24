/**
 * Progress of a pass over a queue on stderr: a bar redrawn in place on a terminal, or otherwise a plain line once a
 * second from the first second on (a log file or CI gets a readable trail, not a storm of carriage returns, and a
 * quick pass prints nothing).
 *
 * @example
 * const progress = progressReporter(process.stderr, 'dlq replay', { counts: true });
 * progress.update({ examined: 10, total: 37, replayed: 8, skipped: 2, failed: 0 });
 * progress.done();
 */
import type { PassProgress } from '../lib/dead-letters/dead-letter-queue.js';

export interface ProgressReporter {
  update(progress: PassProgress): void;
  /** Clears the bar, or writes the last plain line if earlier ones were written. */
  done(): void;
}

interface Stream {
  write(text: string): unknown;
  isTTY?: boolean;
}

const BAR_WIDTH = 24;
const PLAIN_EVERY_MS = 1000;

export interface ProgressOptions {
  /** Show the replayed, skipped and failed counts (a replay); a list only examines. */
  counts?: boolean;
  now?: () => number;
}

export function progressReporter(stream: Stream, label: string, options: ProgressOptions = {}): ProgressReporter {
  const now = options.now ?? Date.now;
  let last: PassProgress | undefined;
  // Plain lines start after a second: a quick pass prints none.
  let lastPlainAt = now();
  let plainWritten = false;
  const words = (p: PassProgress): string => {
    const counts = options.counts === true ? [`${p.replayed} replayed`, `${p.skipped} skipped`, `${p.failed} failed`] : [];
    return [`${p.examined} of about ${Math.max(p.total, p.examined)} examined`, ...counts].join(', ');
  };
  if (stream.isTTY === true) {
    return {
      update(p) {
        last = p;
        const total = Math.max(p.total, p.examined, 1);
        const filled = Math.round((p.examined / total) * BAR_WIDTH);
        stream.write(`\r\x1b[K${label} [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${words(p)}`);
      },
      done() {
        if (last !== undefined) stream.write('\r\x1b[K');
      },
    };
  }
  return {
    update(p) {
      last = p;
      const t = now();
      if (t - lastPlainAt < PLAIN_EVERY_MS) return;
      lastPlainAt = t;
      plainWritten = true;
      stream.write(`${label}: ${words(p)}\n`);
    },
    done() {
      if (plainWritten && last !== undefined) stream.write(`${label}: ${words(last)}, done\n`);
    },
  };
}
