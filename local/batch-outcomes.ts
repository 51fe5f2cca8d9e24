/**
 * What became of each record of a relay batch in the local stack, in words: confirmed, retried, dead-lettered, with
 * the codes (and the devices of dead letters). Lambda's response names only the records that go back to the queue,
 * so the event source alone would call a dead-lettered record "deleted" like a confirmed one; the relay publishes
 * its outcomes on a diagnostics channel (lib/relay/outcome-channel.ts), collected here by message ID and matched to
 * the event source's report of the same batch. The terminal line and the dashboard row are the same text.
 *
 * @example
 * const outcomes = new RelayOutcomeLog();
 * outcomes.start();
 * source.onBatch = (report) => log(describeBatch('relay', report, summarizeBatch(report, outcomes.take(report.messageIds))));
 * // relay gw-1: 6 records: 4 confirmed; 2 dead-lettered: ERR_ATTACH_REJECTED ×2 (ghost-0001) in 48 ms
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { RELAY_OUTCOMES_CHANNEL, type RelayOutcomesMessage } from '../lib/relay/outcome-channel.js';
import type { RecordOutcome } from '../lib/relay/outcomes.js';
import type { BatchReport } from './sqs-event-source.js';

export interface CodeCount {
  code: string;
  count: number;
  /** The devices of those records, first seen first, at most a few. */
  devices: string[];
}

export interface BatchSummary {
  /** Whether the relay's outcomes were known for every record; if not, only deleted and returned are. */
  known: boolean;
  confirmed: number;
  retried: number;
  deadLettered: number;
  /** Dead letters left to the queue's redrive policy (the dead-letter queue did not take them). */
  redrive: number;
  retriedCodes: CodeCount[];
  deadLetterCodes: CodeCount[];
  /** Records the relay was done with whose delete failed: they run again. */
  notDeleted: number;
  /** One line: the records and what became of them. */
  text: string;
  tone: 'ok' | 'warn' | 'bad';
}

/** Outcomes kept for batches not yet reported; bounded, as several stacks in one process all receive them all. */
const MAX_KEPT = 10_000;
const DEVICES_SHOWN = 3;

export class RelayOutcomeLog {
  readonly #byMessageId = new Map<string, RecordOutcome>();
  readonly #listener = (message: unknown): void => {
    for (const o of (message as RelayOutcomesMessage).outcomes) {
      this.#byMessageId.set(o.messageId, o);
      if (this.#byMessageId.size > MAX_KEPT) this.#byMessageId.delete(this.#byMessageId.keys().next().value!);
    }
  };
  #subscribed = false;

  start(): void {
    if (this.#subscribed) return;
    subscribe(RELAY_OUTCOMES_CHANNEL, this.#listener);
    this.#subscribed = true;
  }

  stop(): void {
    if (!this.#subscribed) return;
    unsubscribe(RELAY_OUTCOMES_CHANNEL, this.#listener);
    this.#subscribed = false;
    this.#byMessageId.clear();
  }

  /** The outcomes of these records, removed from the log; undefined unless every one is known. */
  take(messageIds: readonly string[]): RecordOutcome[] | undefined {
    const found = messageIds.map((id) => this.#byMessageId.get(id));
    for (const id of messageIds) this.#byMessageId.delete(id);
    return found.every((o) => o !== undefined) ? (found as RecordOutcome[]) : undefined;
  }
}

export function summarizeBatch(report: BatchReport, outcomes: readonly RecordOutcome[] | undefined): BatchSummary {
  const records = plural(report.messageIds.length, 'record');
  if (outcomes === undefined || report.outcome === 'threw' || report.outcome === 'timed-out' || report.outcome === 'invalid-response') {
    const text =
      report.outcome === 'succeeded'
        ? `${records}, ${report.deleted.length} deleted`
        : `${records}, ${report.deleted.length} deleted, ${report.retried.length} back to the queue (${report.outcome})`;
    return {
      known: false,
      confirmed: 0,
      retried: report.retried.length,
      deadLettered: 0,
      redrive: 0,
      retriedCodes: [],
      deadLetterCodes: [],
      notDeleted: 0,
      text,
      tone: report.outcome === 'succeeded' ? 'ok' : report.outcome === 'partial' ? 'warn' : 'bad',
    };
  }
  const confirmed = outcomes.filter((o) => o.outcome === 'confirmed');
  const retried = outcomes.filter((o) => o.outcome === 'retry' || o.outcome === 'retry-backoff');
  const deadLettered = outcomes.filter((o) => o.outcome === 'dead-letter');
  const redrive = deadLettered.filter((o) => o.deadLetter !== 'sent').length;
  const deleted = new Set(report.deleted);
  const notDeleted = outcomes.filter((o) => (o.outcome === 'confirmed' || o.deadLetter === 'sent') && !deleted.has(o.messageId)).length;
  const retriedCodes = codeCounts(retried);
  const deadLetterCodes = codeCounts(deadLettered);

  const parts: string[] = [];
  if (confirmed.length > 0 || outcomes.length === 0) parts.push(`${confirmed.length} confirmed`);
  if (retried.length > 0) parts.push(`${retried.length} retried: ${describeCodes(retriedCodes, false)}`);
  if (deadLettered.length > 0) {
    const viaRedrive = redrive > 0 ? ` (${redrive} left to the queue's redrive)` : '';
    parts.push(`${deadLettered.length} dead-lettered${viaRedrive}: ${describeCodes(deadLetterCodes, true)}`);
  }
  if (notDeleted > 0) parts.push(`${notDeleted} not deleted (they run again)`);
  return {
    known: true,
    confirmed: confirmed.length,
    retried: retried.length,
    deadLettered: deadLettered.length,
    redrive,
    retriedCodes,
    deadLetterCodes,
    notDeleted,
    text: `${records}: ${parts.join('; ')}`,
    tone: deadLettered.length > 0 ? 'bad' : retried.length > 0 || notDeleted > 0 ? 'warn' : 'ok',
  };
}

/** The stack's terminal line for a batch of `functionName`. */
export function describeBatch(functionName: string, report: BatchReport, summary: BatchSummary): string {
  const groups = report.groups.length > 0 ? ` ${report.groups.join(',')}` : '';
  return `${functionName}${groups}: ${summary.text} in ${report.durationMs} ms`;
}

function codeCounts(outcomes: readonly RecordOutcome[]): CodeCount[] {
  const byCode = new Map<string, CodeCount>();
  for (const o of outcomes) {
    const code = o.code ?? 'ERR_INTERNAL';
    const entry = byCode.get(code) ?? { code, count: 0, devices: [] };
    entry.count += 1;
    if (o.deviceId !== undefined && !entry.devices.includes(o.deviceId) && entry.devices.length < DEVICES_SHOWN) entry.devices.push(o.deviceId);
    byCode.set(code, entry);
  }
  return [...byCode.values()].sort((a, b) => b.count - a.count || a.code.localeCompare(b.code));
}

function describeCodes(counts: readonly CodeCount[], withDevices: boolean): string {
  return counts
    .map((c) => `${c.code}${c.count > 1 ? ` ×${c.count}` : ''}${withDevices && c.devices.length > 0 ? ` (${c.devices.join(', ')})` : ''}`)
    .join(', ');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
