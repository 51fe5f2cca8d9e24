/**
 * What a gateway session has sent and what the bridge said about it: the devices it attached, the records it
 * publishes (as units of the publish plan), every packet by its ID and topic, and the errors-topic messages. It
 * applies each gateway error to the packets it names (lib/gateway/error-correlation.ts), so that the report
 * (lib/gateway/session-report.ts) can give every record its one outcome.
 *
 * @example
 * const ledger = new SessionLedger('gw-1');
 * ledger.applyGatewayError(parseGatewayError(payload)!); // { by: 'packet', ... }
 */
import { RelayError, type RelayErrorCode } from '../errors.js';
import type { GatewayErrorMessage } from '../iotcore/gateway-error.js';
import { correlateGatewayError, GATEWAY_ERROR_CODES, gatewayErrorReason, type Correlation, type SentPacket } from './error-correlation.js';
import type { Flight, FlightEnd } from './flights.js';
import { LateErrorWindow } from './late-errors.js';
import type { PubackRefusal } from './mqtt-link.js';
import type { PlannedPublish } from './publish-plan.js';
import { pubackFailure } from './reason-codes.js';

export interface Failure {
  code: RelayErrorCode;
  reason: string;
}

export interface DeviceEntry {
  deviceId: string;
  status: 'attaching' | 'attached' | 'failed';
  failure: Failure | undefined;
  /** The bridge refused the attach itself: there is nothing to detach. */
  attachRefused: boolean;
  attach: Flight;
  detach: Flight | undefined;
  /** The answer to this device's detach arrived: errors about it can no longer be pending. */
  barrier: boolean;
}

/** One planned PUBLISH. It is its own `SentPacket` for error correlation, so sending it allocates nothing more. */
export interface Unit {
  readonly kind: 'publish';
  /** Index in the ledger's `units`. */
  readonly unit: number;
  keys: string[];
  deviceId: string;
  topic: string;
  payload: Buffer;
  flight: Flight | undefined;
  /** Handed to the link: the errors topic may name it by topic from then on. */
  sent: boolean;
  /** Set when an errors-topic message named this unit, or its device failed. Overrides a PUBACK. */
  failure: Failure | undefined;
}

export class SessionLedger {
  readonly devices = new Map<string, DeviceEntry>();
  readonly units: Unit[] = [];
  readonly gatewayErrors: GatewayErrorMessage[] = [];
  uncorrelated = 0;
  /** Errors after a device's final barrier: applied during the grace window, only counted after it. */
  readonly late: LateErrorWindow;
  private readonly byPacketId = new Map<number, SentPacket>();
  /** Attaches, detaches and SUBSCRIBEs sent, in order; record PUBLISHes are the units marked `sent`. */
  private readonly otherPackets: SentPacket[] = [];
  /** The flight of every SUBSCRIBE, for errors-topic messages that name one. */
  private readonly subscribeFlights = new Map<SentPacket, Flight>();

  /** `lateErrorGraceMs`: the grace window for errors after the final barrier (lib/gateway/late-errors.ts). */
  constructor(lateErrorGraceMs = 0) {
    this.late = new LateErrorWindow(lateErrorGraceMs);
  }

  /** A device being attached; `sendAttach` sends its attach once the entry exists (errors may name it at once). */
  addDevice(deviceId: string, sendAttach: () => Flight): DeviceEntry {
    const entry: DeviceEntry = { deviceId, status: 'attaching', failure: undefined, attachRefused: false, attach: undefined!, detach: undefined, barrier: false };
    this.devices.set(deviceId, entry);
    entry.attach = sendAttach();
    return entry;
  }

  /** Once their attaches ended: attached on a PUBACK, failed otherwise (unless an errors-topic message decided first). */
  decideAttaches(devices: readonly DeviceEntry[], attachTimeoutMs: number): void {
    for (const d of devices) {
      if (d.status !== 'attaching') continue;
      const end = d.attach.end;
      if (end === undefined) throw new RelayError('ERR_INTERNAL', `the attach of ${d.deviceId} was decided before it ended`);
      if (end.kind === 'acked') d.status = 'attached';
      else this.failDevice(d, attachFailure(d, end, attachTimeoutMs));
    }
  }

  /** The publish plan's units, in order, each its own entry of `units`. */
  addUnits(planned: Iterable<PlannedPublish>): Unit[] {
    const added: Unit[] = [];
    for (const p of planned) {
      const unit: Unit = { kind: 'publish', unit: this.units.length, keys: p.keys, deviceId: p.deviceId, topic: p.topic, payload: p.payload, flight: undefined, sent: false, failure: undefined };
      this.units.push(unit);
      added.push(unit);
    }
    return added;
  }

  /** A PUBACK or an error naming a device's detach comes after every answer to its earlier packets: its barrier. */
  markBarrier(d: DeviceEntry): void {
    const end = d.detach?.end;
    if (end?.kind === 'acked' || end?.kind === 'refused' || d.detach?.ackedAt !== undefined) d.barrier = true;
  }

  /**
   * The final barrier, once every detach has ended: each device's barrier, then the grace window for late errors
   * (lib/gateway/late-errors.ts), over by `until` at the latest.
   */
  async markBarriers(detached: readonly DeviceEntry[], until = 0): Promise<void> {
    for (const d of detached) this.markBarrier(d);
    let lastAckAt: number | undefined;
    for (const u of this.units) {
      const ackedAt = u.flight?.ackedAt;
      if (u.failure === undefined && ackedAt !== undefined && this.devices.get(u.deviceId)?.barrier === true) lastAckAt = Math.max(lastAckAt ?? 0, ackedAt);
    }
    await this.late.close(until, lastAckAt);
  }

  /** Notes a packet handed to the link under `packetId`. */
  sent(packet: SentPacket, packetId: number, flight: Flight): void {
    if (packet.kind === 'publish') this.units[packet.unit]!.sent = true;
    else if (packet.kind !== 'subscribe') this.otherPackets.push(packet);
    // A SUBSCRIBE sent again (the bridge dropped the first) is the same subscription under a second packet ID.
    else if (!this.subscribeFlights.has(packet)) {
      this.otherPackets.push(packet);
      this.subscribeFlights.set(packet, flight);
    }
    this.byPacketId.set(packetId, packet);
  }

  /** Records an errors-topic message and fails what it names; returns how it was matched. */
  applyGatewayError(error: GatewayErrorMessage): Correlation {
    this.gatewayErrors.push(error);
    const code = GATEWAY_ERROR_CODES[error.errorType];
    const reason = gatewayErrorReason(error);
    const match = correlateGatewayError(error, { byPacketId: this.byPacketId, byTopic: this.packetsOnTopic(error.topic), devices: new Set(this.devices.keys()) });
    // Every packet a match names is of one device (a topic names its device); past its barrier the error is late.
    const named = match.by === 'device' ? match.deviceId : match.by === 'none' ? undefined : match.packets[0]?.deviceId;
    if (!this.late.admits(named === undefined ? undefined : this.devices.get(named))) return match;
    switch (match.by) {
      case 'packet':
      case 'topic':
        for (const packet of match.packets) this.applyToPacket(packet, { code, reason });
        break;
      case 'device':
        this.applyToDevice(this.devices.get(match.deviceId)!, { code, reason });
        break;
      case 'none':
        this.uncorrelated++;
        break;
    }
    return match;
  }

  /**
   * A 5.0 PUBACK refused a packet (lib/gateway/reason-codes.ts): it fails as an errors-topic message naming that
   * packet would fail it, at once and without one.
   */
  applyPubackRefusal(packet: SentPacket, refusal: PubackRefusal): void {
    this.applyToPacket(packet, pubackFailure(packet.kind, refusal));
  }

  /** Marks a device failed: its queued records are not sent, and those not yet answered stop waiting. */
  failDevice(device: DeviceEntry, failure: Failure): void {
    device.failure ??= failure;
    device.status = 'failed';
    for (const u of this.units) {
      if (u.deviceId === device.deviceId && u.flight === undefined) u.failure ??= device.failure;
    }
  }

  /** Nothing tells which of the device's packets the bridge means, so every one of them is suspect. */
  private applyToDevice(device: DeviceEntry, failure: Failure): void {
    this.failDevice(device, failure);
    device.attach.settle({ kind: 'refused', ...failure });
    if (failure.code === 'ERR_ATTACH_REJECTED' && device.status === 'failed' && device.attach.ackedAt === undefined) device.attachRefused = true;
    for (const u of this.units) {
      if (u.deviceId === device.deviceId) {
        u.failure ??= failure;
        u.flight?.settle({ kind: 'refused', ...failure });
      }
    }
    for (const [packet, flight] of this.subscribeFlights) if (packet.deviceId === device.deviceId) flight.settle({ kind: 'refused', ...failure });
  }

  private applyToPacket(packet: SentPacket, failure: Failure): void {
    const device = this.devices.get(packet.deviceId);
    switch (packet.kind) {
      case 'attach': {
        if (device === undefined) return;
        // The bridge may acknowledge a failed attach as well; the error wins either way.
        if (device.attach.end === undefined || device.attach.ackedAt === undefined) device.attachRefused = true;
        device.attach.settle({ kind: 'refused', ...failure });
        this.failDevice(device, failure);
        return;
      }
      case 'publish': {
        const unit = this.units[packet.unit];
        if (unit === undefined) return;
        unit.failure ??= failure;
        // A device the bridge no longer has attached gets nothing more from this session; failed before the flight
        // ends, so that the publish window's refill does not send the device's next record.
        if (device !== undefined && (failure.code === 'ERR_DEVICE_NOT_FOUND' || failure.code === 'ERR_DEVICE_DETACHED')) this.failDevice(device, failure);
        unit.flight?.settle({ kind: 'refused', ...failure });
        return;
      }
      case 'detach':
        device?.detach?.settle({ kind: 'refused', ...failure });
        return;
      case 'subscribe':
        this.subscribeFlights.get(packet)?.settle({ kind: 'refused', ...failure });
        return;
    }
  }

  /**
   * What this session sent to `topic`, in sending order, as the correlation's topic index. Built only when an error
   * arrives (rare), instead of a list entry kept per PUBLISH for the whole session.
   */
  private packetsOnTopic(topic: string | undefined): Map<string, SentPacket[]> {
    const index = new Map<string, SentPacket[]>();
    if (topic === undefined) return index;
    const list: SentPacket[] = [];
    for (const p of this.otherPackets) if (p.topic === topic) list.push(p);
    for (const u of this.units) if (u.sent && u.topic === topic) list.push(u);
    if (list.length > 0) index.set(topic, list);
    return index;
  }
}

/** Why an attach that ended without its PUBACK failed. */
function attachFailure(device: DeviceEntry, end: FlightEnd, attachTimeoutMs: number): Failure {
  switch (end.kind) {
    case 'refused':
    case 'stopped':
      return { code: end.code, reason: end.reason };
    case 'timeout':
      return { code: 'ERR_ATTACH_TIMEOUT', reason: `the attach of ${device.deviceId} was neither acknowledged nor refused within ${attachTimeoutMs} ms` };
    case 'acked':
      return { code: 'ERR_INTERNAL', reason: 'acknowledged attach reported as failed' };
  }
}
