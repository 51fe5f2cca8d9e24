/**
 * Captures everything the process writes to stdout and stderr: Powertools' Logger and Metrics (which write through
 * consoles bound to those streams), `console.*`, and anything else. Nothing reaches the terminal while captured.
 *
 * @example
 * const output = captureOutput();
 * await handler(event, context);
 * output.jsonLines().filter((l) => l.level === 'WARN');
 * output.restore();
 */
import { vi } from 'vitest';

export interface CapturedOutput {
  /** All text written so far, in order. */
  text(): string;
  /** The lines that are JSON objects (structured log lines, metric documents). */
  jsonLines(): Record<string, unknown>[];
  clear(): void;
  restore(): void;
}

export function captureOutput(): CapturedOutput {
  const chunks: string[] = [];
  const spies = [process.stdout, process.stderr].map((stream) =>
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return true;
    }),
  );
  const text = (): string => chunks.join('');
  return {
    text,
    jsonLines: () =>
      text()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        }),
    clear: () => {
      chunks.length = 0;
    },
    restore: () => {
      for (const s of spies) s.mockRestore();
    },
  };
}
