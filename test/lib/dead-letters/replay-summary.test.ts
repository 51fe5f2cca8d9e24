import { describe, expect, it } from 'vitest';
import { deadLetterOf } from '../../../lib/dead-letters/dead-letter.js';
import type { ReplayReport } from '../../../lib/dead-letters/dead-letter-queue.js';
import { summarizeReplay } from '../../../lib/dead-letters/replay-summary.js';

const dl = deadLetterOf({ MessageId: 'dl-1', Body: '{"v":1,"deviceId":"pump-01","payload":"x"}' });

function report(changes: Partial<ReplayReport> = {}): ReplayReport {
  return { dryRun: false, examined: 0, approximateDepth: 0, unreached: 0, arrivedDuring: 0, replayed: [], skipped: [], notMatching: 0, failed: [], notDeleted: [], ...changes };
}

describe('summarizeReplay', () => {
  it('says how many were replayed, or would be in a dry run, and nothing more when that is all', () => {
    expect(summarizeReplay(report({ replayed: [{ deadLetter: dl }, { deadLetter: dl }] }))).toBe('replayed 2');
    expect(summarizeReplay(report({ dryRun: true, replayed: [{ deadLetter: dl }] }))).toBe('would replay 1');
    expect(summarizeReplay(report())).toBe('replayed 0');
  });

  it('names the codes of skipped records once each, with how to force them when the caller says', () => {
    const skipped = [
      { deadLetter: dl, why: { code: 'ERR_INVALID_BASE64', reason: 'r' } },
      { deadLetter: dl, why: { code: 'ERR_INVALID_BASE64', reason: 'r' } },
      { deadLetter: dl, why: { code: 'ERR_INVALID_DEVICE_ID', reason: 'r' } },
    ];
    expect(summarizeReplay(report({ skipped }), '--force replays them')).toBe('replayed 0; skipped 3 that would fail again (ERR_INVALID_BASE64, ERR_INVALID_DEVICE_ID; --force replays them)');
    expect(summarizeReplay(report({ skipped: skipped.slice(0, 1) }))).toBe('replayed 0; skipped 1 that would fail again (ERR_INVALID_BASE64)');
  });

  it('adds each other count only when it is not zero, in a fixed order', () => {
    const summary = summarizeReplay(
      report({
        replayed: [{ deadLetter: dl }],
        notMatching: 2,
        failed: [{ deadLetter: dl, reason: 'throttled' }],
        notDeleted: [{ deadLetter: dl, reason: 'gone' }, { deadLetter: dl, reason: 'gone' }],
        unreached: 4,
      }),
    );
    expect(summary).toBe(
      'replayed 1; 2 not matching the filter; 1 failed and left in the dead-letter queue; ' +
        '2 replayed but not deleted (they come back in the dead-letter queue: a duplicate, not a loss); 4 not reached',
    );
  });
});
