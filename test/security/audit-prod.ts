/**
 * The production dependency audit: `npm audit --omit=dev`, which fails (exit 1) on any high or critical advisory
 * against what a deployment ships, and prints the counts per severity either way. Moderate and low advisories are
 * listed but do not fail it.
 *
 * It needs the npm registry's audit endpoint, so it is a script rather than a test (tests run offline). When the
 * audit cannot be run at all it says why and exits 2: a check that could not run has not passed.
 *
 * @example
 * npx tsx test/security/audit-prod.ts     # or: npm run audit:prod
 */
import { spawnSync } from 'node:child_process';

type Severity = 'info' | 'low' | 'moderate' | 'high' | 'critical';
const SEVERITIES: readonly Severity[] = ['critical', 'high', 'moderate', 'low', 'info'];
const FAILING: readonly Severity[] = ['critical', 'high'];

interface AuditReport {
  vulnerabilities?: Record<string, { severity: Severity; via: unknown[]; fixAvailable: unknown }>;
  metadata?: { vulnerabilities?: Partial<Record<Severity | 'total', number>>; dependencies?: { prod?: number } };
  error?: { code?: string; summary?: string; detail?: string };
  message?: string;
}

const run = spawnSync('npm', ['audit', '--omit=dev', '--json'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
let report: AuditReport;
try {
  report = JSON.parse(run.stdout) as AuditReport;
} catch {
  console.error(`audit:prod: npm audit gave no report (exit ${String(run.status)}): ${run.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  process.exit(2);
}
const counts = report.metadata?.vulnerabilities;
if (counts === undefined) {
  const why = report.error?.summary || report.message || run.stderr.trim().split('\n').slice(-1)[0] || 'unknown reason';
  console.error(`audit:prod: the audit could not be run: ${why}`);
  process.exit(2);
}

const line = SEVERITIES.map((s) => `${counts[s] ?? 0} ${s}`).join(', ');
console.log(`audit:prod: ${report.metadata?.dependencies?.prod ?? '?'} production dependencies; advisories: ${line}`);
for (const [name, v] of Object.entries(report.vulnerabilities ?? {})) {
  const titles = v.via.flatMap((x) => (typeof x === 'object' && x !== null && 'title' in x ? [String((x as { title: unknown }).title)] : []));
  console.log(`  ${v.severity.padEnd(8)} ${name}${titles.length > 0 ? `: ${titles.join('; ')}` : ' (through another package)'}${v.fixAvailable ? '' : ' [no fix available]'}`);
}
const failing = FAILING.reduce((n, s) => n + (counts[s] ?? 0), 0);
if (failing > 0) {
  console.error(`audit:prod: ${failing} high or critical advisories in production dependencies`);
  process.exit(1);
}
