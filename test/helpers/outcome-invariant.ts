/**
 * The relay's contract, checked after every test that relays records:
 * 1. each record ends in exactly one outcome (confirmed | retry | retry-backoff | dead-letter), and a record that
 *    is not confirmed carries a code and a reason;
 * 2. every confirmed record is among what the emulator received exactly once: its event in `registry.events`
 *    (device, subfolder and bytes), its state in the device's stored states; a state coalesced into a newer one is
 *    confirmed only if that newer one is confirmed and was received;
 * 3. hence no record the emulator did not receive is confirmed.
 * Records that were not confirmed may or may not have reached the emulator: delivery is at least once.
 *
 * @example
 * expectOutcomeInvariant({ records, outcomes, emulator, registryId: fleet.registryId });
 */
import { expect } from 'vitest';
import type { Emulator } from '../../emulator/index.js';
import type { SessionReport } from '../../lib/gateway/session.js';
import { parseQueueMessage, type QueueMessage } from '../../lib/queue/message.js';
import { confirmed, failed, type RecordOutcome } from '../../lib/relay/outcomes.js';

export interface SentRecord {
  messageId: string;
  body: string;
}

export interface InvariantInput {
  records: readonly SentRecord[];
  outcomes: readonly RecordOutcome[];
  emulator: Emulator;
  registryId: string;
  /**
   * Devices the relay's config polls accounted for (a config received, or the device reported missing), by device;
   * a confirmed poll job needs an entry for each of its devices.
   */
  configsDelivered?: ReadonlyMap<string, unknown>;
}

const OUTCOMES = new Set(['confirmed', 'retry', 'retry-backoff', 'dead-letter']);

export function expectOutcomeInvariant(input: InvariantInput): void {
  const { records, outcomes, emulator, registryId } = input;

  // 1. exactly one outcome per record
  const byId = new Map<string, RecordOutcome>();
  for (const o of outcomes) {
    expect(byId.has(o.messageId), `two outcomes for ${o.messageId}`).toBe(false);
    byId.set(o.messageId, o);
    expect(OUTCOMES.has(o.outcome), `unknown outcome ${o.outcome}`).toBe(true);
    if (o.outcome === 'confirmed') {
      expect(o.code, `confirmed ${o.messageId} carries a code`).toBeUndefined();
    } else {
      expect(o.code, `${o.messageId} (${o.outcome}) has no code`).toMatch(/^ERR_/);
      expect(o.reason, `${o.messageId} (${o.outcome}) has no reason`).toBeTruthy();
    }
  }
  expect(outcomes.length, 'one outcome per record').toBe(records.length);
  for (const r of records) expect(byId.has(r.messageId), `no outcome for ${r.messageId}`).toBe(true);

  // 2. confirmed records are among what the emulator received, exactly once
  const parsed = new Map<string, QueueMessage>();
  for (const r of records) {
    try {
      parsed.set(r.messageId, parseQueueMessage(r.body));
    } catch {
      expect(byId.get(r.messageId)?.outcome, `malformed ${r.messageId} confirmed`).not.toBe('confirmed');
    }
  }
  for (const r of records) {
    const o = byId.get(r.messageId)!;
    if (o.outcome !== 'confirmed') continue;
    const m = parsed.get(r.messageId)!;
    if (m.type === 'config-poll') {
      for (const d of m.deviceIds) expect(input.configsDelivered?.has(d), `confirmed poll that did not account for ${d}`).toBe(true);
      continue;
    }
    if (m.type === 'event') {
      const data = m.payload.toString('base64');
      const matches = emulator.registry.events.filter(
        (e) => e.attributes.deviceId === m.deviceId && e.attributes.subFolder === (m.subfolder ?? '') && e.data === data,
      );
      expect(matches.length, `confirmed event ${r.messageId} received ${matches.length} times`).toBe(1);
      continue;
    }
    // state: the record itself, or the newer record it was coalesced into, must be stored once
    let stateRecord = r;
    if (o.coalescedInto !== undefined) {
      const newer = byId.get(o.coalescedInto);
      expect(newer?.outcome, `${r.messageId} confirmed through ${o.coalescedInto}, which is not`).toBe('confirmed');
      stateRecord = records.find((x) => x.messageId === o.coalescedInto)!;
    }
    const stateMessage = parsed.get(stateRecord.messageId)!;
    expect(stateMessage.type).toBe('state');
    if (stateMessage.type !== 'state') continue;
    const data = stateMessage.payload.toString('base64');
    const stored = emulator.registry.states(registryId, stateMessage.deviceId).filter((s) => s.binaryData === data);
    expect(stored.length, `confirmed state ${r.messageId} stored ${stored.length} times`).toBe(1);
  }
}

/**
 * A gateway session's report as record outcomes, for session-level tests: each record handed to `publish()` gets
 * its result; one that never reached the session gets the session's failure.
 */
export function sessionOutcomes(report: SessionReport, records: readonly SentRecord[]): RecordOutcome[] {
  return records.map((r) => {
    const result = report.records.get(r.messageId);
    if (result === undefined) {
      const f = report.failure ?? { code: 'ERR_INTERNAL' as const, reason: 'not handed to the session' };
      return failed(r.messageId, f.code, f.reason);
    }
    const extra = result.coalescedInto === undefined ? {} : { coalescedInto: result.coalescedInto };
    return result.status === 'confirmed' ? confirmed(r.messageId, extra) : failed(r.messageId, result.code, result.reason, extra);
  });
}
