/**
 * The local stack's account of a relay batch: the relay's outcomes, taken from the diagnostics channel it publishes
 * on, matched to the event source's report, in the words of the terminal line and the dashboard row.
 */
import { describe, expect, it } from 'vitest';
import { describeBatch, RelayOutcomeLog, summarizeBatch } from '../../local/batch-outcomes.js';
import type { BatchReport } from '../../local/sqs-event-source.js';
import { publishRelayOutcomes } from '../../lib/relay/outcome-channel.js';
import { confirmed, failed, type RecordOutcome } from '../../lib/relay/outcomes.js';

function report(outcomes: RecordOutcome[], o: Partial<BatchReport> = {}): BatchReport {
  const ids = outcomes.map((x) => x.messageId);
  const back = outcomes.filter((x) => x.outcome !== 'confirmed' && x.deadLetter !== 'sent').map((x) => x.messageId);
  return {
    requestId: 'r-1',
    outcome: back.length === 0 ? 'succeeded' : back.length === ids.length ? 'failed' : 'partial',
    groups: ['gw-1'],
    messageIds: ids,
    deleted: ids.filter((id) => !back.includes(id)),
    retried: back,
    startedAt: 0,
    durationMs: 42,
    ...o,
  };
}

const deadLetter = (id: string, code: 'ERR_ATTACH_REJECTED' | 'ERR_INVALID_BASE64', deviceId: string, how: 'sent' | 'redrive' = 'sent'): RecordOutcome => ({
  ...failed(id, code, 'why', { deviceId, gatewayId: 'gw-1' }),
  deadLetter: how,
});

describe('summarizeBatch', () => {
  it('says confirmed, retried and dead-lettered with codes, and the devices of dead letters', () => {
    const outcomes = [
      confirmed('m-1', { deviceId: 'pump-0001' }),
      confirmed('m-2', { deviceId: 'pump-0002' }),
      failed('m-3', 'ERR_PUBACK_TIMEOUT', 'no PUBACK', { deviceId: 'pump-0003' }),
      failed('m-4', 'ERR_KEY_UNAVAILABLE', 'secret', { deviceId: 'pump-0003' }),
      deadLetter('m-5', 'ERR_ATTACH_REJECTED', 'ghost-0001'),
      deadLetter('m-6', 'ERR_ATTACH_REJECTED', 'ghost-0001'),
      deadLetter('m-7', 'ERR_INVALID_BASE64', 'pump-0004'),
    ];
    const r = report(outcomes);
    const summary = summarizeBatch(r, outcomes);

    expect(summary).toMatchObject({ known: true, confirmed: 2, retried: 2, deadLettered: 3, redrive: 0, notDeleted: 0, tone: 'bad' });
    expect(describeBatch('relay', r, summary)).toBe(
      'relay gw-1: 7 records: 2 confirmed; 2 retried: ERR_KEY_UNAVAILABLE, ERR_PUBACK_TIMEOUT; 3 dead-lettered: ERR_ATTACH_REJECTED ×2 (ghost-0001), ERR_INVALID_BASE64 (pump-0004) in 42 ms',
    );
  });

  it('is green only when everything was confirmed, and names dead letters left to the redrive and failed deletes', () => {
    const allGood = [confirmed('m-1'), confirmed('m-2')];
    const redriven = [confirmed('m-1'), deadLetter('m-2', 'ERR_ATTACH_REJECTED', 'ghost-0001', 'redrive')];
    const undeleted = report(allGood, { deleted: ['m-1'] });

    expect(summarizeBatch(report(allGood), allGood)).toMatchObject({ text: '2 records: 2 confirmed', tone: 'ok' });
    expect(summarizeBatch(report(redriven), redriven).text).toBe("2 records: 1 confirmed; 1 dead-lettered (1 left to the queue's redrive): ERR_ATTACH_REJECTED (ghost-0001)");
    expect(summarizeBatch(undeleted, allGood)).toMatchObject({ text: '2 records: 2 confirmed; 1 not deleted (they run again)', tone: 'warn' });
  });

  it('falls back to what the queue did when the relay said nothing (it threw, or timed out)', () => {
    const r: BatchReport = { ...report([confirmed('m-1'), confirmed('m-2')]), outcome: 'timed-out', deleted: [], retried: ['m-1', 'm-2'] };
    expect(summarizeBatch(r, undefined)).toMatchObject({ known: false, text: '2 records, 0 deleted, 2 back to the queue (timed-out)', tone: 'bad' });
  });
});

describe('RelayOutcomeLog', () => {
  it('collects what the relay publishes and hands out a batch\'s outcomes once, all or nothing', () => {
    const log = new RelayOutcomeLog();
    const before = [confirmed('early')];
    publishRelayOutcomes({ outcomes: before });
    log.start();
    const outcomes = [confirmed('m-1'), deadLetter('m-2', 'ERR_ATTACH_REJECTED', 'ghost-0001')];
    try {
      publishRelayOutcomes({ outcomes });

      expect(log.take(['early'])).toBeUndefined();
      expect(log.take(['m-1', 'm-unknown'])).toBeUndefined();
      // m-1 was handed out (and dropped) with the incomplete batch; m-2 is still there.
      expect(log.take(['m-2'])).toEqual([outcomes[1]]);
      expect(log.take(['m-2'])).toBeUndefined();
    } finally {
      log.stop();
    }
    publishRelayOutcomes({ outcomes: [confirmed('late')] });
    expect(log.take(['late'])).toBeUndefined();
  });
});
