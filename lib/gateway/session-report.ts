/**
 * The report of a closed gateway session: one result per record handed to `publish()` and per device attached,
 * decided from the ledger (lib/gateway/session-ledger.ts). A record is confirmed only if it has its PUBACK, no
 * errors-topic message named it, and its device's detach was answered: the final barrier after which no error
 * about the device's earlier packets can still come (docs/design.md, "Rules the protocol forces"). Errors within
 * the grace window after it still count (lib/gateway/late-errors.ts).
 *
 * @example
 * const report = sessionReport(ledger, { gatewayId: 'gw-1', stopped: undefined, lost: false, ... });
 * report.records.get('m-1'); // { status: 'confirmed', deviceId: 'pump-1', latencyMs: 27 }
 */
import type { RelayErrorCode } from '../errors.js';
import type { GatewayErrorMessage } from '../iotcore/gateway-error.js';
import type { DeviceEntry, Failure, SessionLedger, Unit } from './session-ledger.js';
import type { SessionPhase } from './session-state.js';

export type AttachResult = { ok: true; latencyMs: number } | { ok: false; code: RelayErrorCode; reason: string };

export type RecordResult =
  | { status: 'confirmed'; deviceId: string; latencyMs: number; coalescedInto?: string }
  | { status: 'failed'; deviceId: string; code: RelayErrorCode; reason: string; coalescedInto?: string };

export interface SessionFailure {
  code: RelayErrorCode;
  reason: string;
  /** The phase the session was in when it happened. */
  phase: SessionPhase;
}

export interface SessionReport {
  gatewayId: string;
  /** One entry per record handed to `publish()`, coalesced state records included. */
  records: Map<string, RecordResult>;
  attachments: Map<string, AttachResult>;
  /** What ended the session's work early (connection failure, lost connection, takeover, deadline), if anything. */
  failure: SessionFailure | undefined;
  /** Every phase the session went through, in order. */
  phases: SessionPhase[];
  gatewayErrors: GatewayErrorMessage[];
  /** Errors-topic messages that named nothing this session sent. */
  uncorrelatedErrors: number;
  /**
   * Errors-topic messages about a device that came after its final barrier; those within the grace window
   * un-confirmed what they named (lib/gateway/late-errors.ts).
   */
  lateErrors: number;
  /** Of the late errors, those after the grace window: only counted, what they named stayed confirmed. */
  lateErrorsAfterGrace: number;
  connectMs: number | undefined;
  /** Milliseconds from each PUBLISH to its PUBACK, for attaches and for records. */
  attachLatenciesMs: number[];
  publishLatenciesMs: number[];
  /** The most record PUBLISHes that were unacknowledged at once (never above `publishWindow`). */
  maxPublishesInFlight: number;
}

/** What the session knows besides the ledger when it reports. */
export interface ReportContext {
  gatewayId: string;
  stopped: SessionFailure | undefined;
  /** The bridge closed the connection (or it broke) before the session closed it. */
  lost: boolean;
  phases: SessionPhase[];
  connectMs: number | undefined;
  maxPublishesInFlight: number;
  pubackTimeoutMs: number;
}

export function sessionReport(ledger: SessionLedger, context: ReportContext): SessionReport {
  const records = new Map<string, RecordResult>();
  const publishLatenciesMs: number[] = [];
  for (const unit of ledger.units) {
    const result = unitResult(unit, ledger, context);
    if (result.status === 'confirmed') publishLatenciesMs.push(result.latencyMs);
    const keys = unit.keys;
    const newest = keys[0]!;
    records.set(newest, result);
    for (let i = 1; i < keys.length; i++) records.set(keys[i]!, { ...result, coalescedInto: newest });
  }
  const attachments = new Map<string, AttachResult>();
  const attachLatenciesMs: number[] = [];
  for (const d of ledger.devices.values()) {
    const r = attachResult(d);
    attachments.set(d.deviceId, r);
    if (r.ok) attachLatenciesMs.push(r.latencyMs);
  }
  return {
    gatewayId: context.gatewayId,
    records,
    attachments,
    failure: context.stopped,
    phases: context.phases,
    gatewayErrors: [...ledger.gatewayErrors],
    uncorrelatedErrors: ledger.uncorrelated,
    lateErrors: ledger.late.lateErrors,
    lateErrorsAfterGrace: ledger.late.lateErrorsAfterGrace,
    connectMs: context.connectMs,
    attachLatenciesMs,
    publishLatenciesMs,
    maxPublishesInFlight: context.maxPublishesInFlight,
  };
}

export function attachResult(device: DeviceEntry): AttachResult {
  if (device.status === 'attached') return { ok: true, latencyMs: (device.attach.ackedAt ?? Date.now()) - device.attach.sentAt };
  const failure = device.failure ?? { code: 'ERR_INTERNAL' as const, reason: 'attach left undecided' };
  return { ok: false, code: failure.code, reason: failure.reason };
}

function unitResult(unit: Unit, ledger: SessionLedger, context: ReportContext): RecordResult {
  const deviceId = unit.deviceId;
  if (unit.failure !== undefined) return failedResult(deviceId, unit.failure);
  const flight = unit.flight;
  if (flight === undefined) return failedResult(deviceId, context.stopped ?? { code: 'ERR_INTERNAL', reason: 'record never sent' });
  if (flight.ackedAt === undefined) {
    const end = flight.end;
    if (end?.kind === 'timeout') return failedResult(deviceId, { code: 'ERR_PUBACK_TIMEOUT', reason: `no PUBACK within ${context.pubackTimeoutMs} ms` });
    if (end?.kind === 'refused' || end?.kind === 'stopped') return failedResult(deviceId, end);
    return failedResult(deviceId, context.stopped ?? { code: 'ERR_INTERNAL', reason: 'publish left undecided' });
  }
  const device = ledger.devices.get(deviceId);
  if (device === undefined || !device.barrier) return failedResult(deviceId, barrierFailure(device, context));
  return { status: 'confirmed', deviceId, latencyMs: flight.ackedAt - flight.sentAt };
}

/** Why an acknowledged record still goes back: the final barrier for its device never came. */
function barrierFailure(device: DeviceEntry | undefined, context: ReportContext): Failure {
  const id = device?.deviceId ?? 'the device';
  const stopped = context.stopped;
  if (context.lost && stopped !== undefined) {
    return { code: stopped.code, reason: `${stopped.reason}; the detach of ${id} was never answered, so a late error could not be ruled out` };
  }
  if (device?.detach === undefined) return { code: 'ERR_DEADLINE', reason: `no time was left to detach ${id} and close the session cleanly` };
  return { code: 'ERR_PUBACK_TIMEOUT', reason: `the detach of ${id} (the session's final barrier) was not acknowledged in time` };
}

/** A failed record's result (a module function, not a closure made for every record of the report). */
function failedResult(deviceId: string, f: Failure): RecordResult {
  return { status: 'failed', deviceId, code: f.code, reason: f.reason };
}
