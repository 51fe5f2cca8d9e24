/**
 * Captures everything the process writes to stdout and stderr: Powertools' Logger and Metrics (which write through
 * consoles bound to those streams; the Logger's INFO goes to stdout, its WARN and ERROR to stderr), `console.*`,
 * and anything else. Nothing reaches the terminal while captured.
 *
 * @example
 * const output = captureOutput();
 * await handler(event, context);
 * output.restore();
 * output.jsonLines().filter((l) => l.level === 'WARN');
 * output.metricDocuments(); // the EMF documents Metrics printed
 *
 * const { result, output } = await withCapturedOutput(() => sendCommand(argv)); // restored when it settles
 */
import { vi } from 'vitest';

export type OutputStream = 'stdout' | 'stderr';

export interface CapturedOutput {
  /** All text written so far, in order: to both streams, or to the one named. */
  text(stream?: OutputStream): string;
  /** The text's lines, empty ones left out. */
  lines(stream?: OutputStream): string[];
  /** The lines that are JSON objects (structured log lines, metric documents). */
  jsonLines(stream?: OutputStream): Record<string, unknown>[];
  /** The JSON lines that are CloudWatch embedded metric format documents (they carry `_aws`). */
  metricDocuments(): Record<string, unknown>[];
  clear(): void;
  restore(): void;
}

export function captureOutput(): CapturedOutput {
  const chunks: { stream: OutputStream; text: string }[] = [];
  const spies = (['stdout', 'stderr'] as const).map((stream) =>
    vi.spyOn(process[stream], 'write').mockImplementation((chunk: string | Uint8Array) => {
      chunks.push({ stream, text: typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8') });
      return true;
    }),
  );
  const text = (stream?: OutputStream): string =>
    chunks
      .filter((c) => stream === undefined || c.stream === stream)
      .map((c) => c.text)
      .join('');
  const lines = (stream?: OutputStream): string[] => text(stream).split('\n').filter((l) => l !== '');
  const jsonLines = (stream?: OutputStream): Record<string, unknown>[] =>
    lines(stream)
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  return {
    text,
    lines,
    jsonLines,
    metricDocuments: () => jsonLines().filter((l) => '_aws' in l),
    clear: () => {
      chunks.length = 0;
    },
    restore: () => {
      for (const s of spies) s.mockRestore();
    },
  };
}

/** Runs `action` with the output captured, and stops capturing once it settles, whether it returned or threw. */
export async function withCapturedOutput<T>(action: () => Promise<T>): Promise<{ result: T; output: CapturedOutput }> {
  const output = captureOutput();
  try {
    return { result: await action(), output };
  } finally {
    output.restore();
  }
}
