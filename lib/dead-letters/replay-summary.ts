/**
 * A replay's outcome in one line, the same for the command line and the local dashboard's replay button.
 *
 * @example
 * summarizeReplay(report, '--force replays them');
 * // 'replayed 3; skipped 1 that would fail again (ERR_INVALID_BASE64; --force replays them); 2 not matching the filter'
 */
import type { ReplayReport } from './dead-letter-queue.js';

/** `forceHint` follows the codes of skipped records: how the caller's interface forces them (`--force replays them`). */
export function summarizeReplay(report: ReplayReport, forceHint?: string): string {
  const parts = [`${report.dryRun ? 'would replay' : 'replayed'} ${report.replayed.length}`];
  if (report.skipped.length > 0) {
    const codes = [...new Set(report.skipped.map((s) => s.why.code))].join(', ');
    parts.push(`skipped ${report.skipped.length} that would fail again (${codes}${forceHint === undefined ? '' : `; ${forceHint}`})`);
  }
  if (report.notMatching > 0) parts.push(`${report.notMatching} not matching the filter`);
  if (report.failed.length > 0) parts.push(`${report.failed.length} failed and left in the dead-letter queue`);
  if (report.notDeleted.length > 0) parts.push(`${report.notDeleted.length} replayed but not deleted (they come back in the dead-letter queue: a duplicate, not a loss)`);
  if (report.unreached > 0) parts.push(`${report.unreached} not reached`);
  return parts.join('; ');
}
