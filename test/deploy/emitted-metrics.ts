/**
 * The metrics the code emits, read from the code itself: every `.addMetric('<name>', ...)` and
 * `.addDimension('<name>', ...)` call in lib/ and handlers/, the only places that write Powertools Metrics. The
 * CloudWatch dashboard is checked against this list (test/deploy/template.test.ts), so it is never written twice:
 * a metric renamed in the code and not on the dashboard fails that test.
 *
 * A call whose name is not a string literal would escape the list; such calls are reported, and the test requires
 * there to be none.
 *
 * @example
 * const { metrics, dimensions, unreadable } = emittedMetrics();
 * metrics.has('RecordsConfirmed'); // true
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PROJECT_ROOT } from './serverless-cli.js';

export interface EmittedMetrics {
  /** Metric names, each with the files that emit it. */
  metrics: Map<string, string[]>;
  /** Dimension names added to single metrics; Powertools adds `service` to every metric itself. */
  dimensions: Set<string>;
  /** `file: call` of each addMetric or addDimension call whose name is not a string literal. */
  unreadable: string[];
}

const SOURCE_DIRS = ['lib', 'handlers'];
const CALL = /\.(addMetric|addDimension)\(\s*/g;
const LITERAL = /^(['"`])([A-Za-z][\w-]*)\1\s*,/;

export function emittedMetrics(root = PROJECT_ROOT): EmittedMetrics {
  const result: EmittedMetrics = { metrics: new Map(), dimensions: new Set(['service']), unreadable: [] };
  for (const file of SOURCE_DIRS.flatMap((dir) => typeScriptFiles(join(root, dir)))) {
    const code = readFileSync(file, 'utf8');
    const where = relative(root, file);
    for (const call of code.matchAll(CALL)) {
      const rest = code.slice(call.index + call[0].length);
      const literal = LITERAL.exec(rest);
      if (literal === null) {
        result.unreadable.push(`${where}: ${call[0]}${rest.slice(0, 40).split('\n')[0]}`);
        continue;
      }
      const name = literal[2]!;
      if (call[1] === 'addDimension') result.dimensions.add(name);
      else result.metrics.set(name, [...(result.metrics.get(name) ?? []), where]);
    }
  }
  return result;
}

function typeScriptFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return typeScriptFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}
