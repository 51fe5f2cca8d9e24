/**
 * Which of a session's packets a message on `/devices/{gateway}/errors` is about. The bridge sends these
 * asynchronously and best-effort (QoS 0), and may or may not say which packet caused them
 * (docs/protocol.md §3.5), so the match is tried from the most to the least precise:
 * 1. the packet ID, when the packet it names was sent to the same topic and for the same device;
 * 2. else the topic: every packet this session sent to it (several events without subfolder share one topic, and
 *    nothing tells which of them failed, so all of them are named);
 * 3. else the device ID: everything of that device.
 * A message that matches nothing is reported as uncorrelated; it cannot un-confirm anything.
 *
 * @example
 * correlateGatewayError(parseGatewayError(payload)!, sentPackets);
 * // { by: 'packet', packet: { kind: 'publish', deviceId: 'pump-1', topic: '/devices/pump-1/state', unit: 3 } }
 */
import type { RelayErrorCode } from '../errors.js';
import type { GatewayErrorMessage, GatewayErrorType } from '../iotcore/gateway-error.js';
import { parseTopic } from '../iotcore/topics.js';

/** A packet the session sent, as the correlation sees it. */
export type SentPacket =
  | { kind: 'attach' | 'detach'; deviceId: string; topic: string }
  | { kind: 'publish'; deviceId: string; topic: string; unit: number }
  | { kind: 'subscribe'; deviceId: string; topic: string };

export interface SentPackets {
  byPacketId: ReadonlyMap<number, SentPacket>;
  byTopic: ReadonlyMap<string, readonly SentPacket[]>;
  /** Devices this session attached or tried to attach. */
  devices: ReadonlySet<string>;
}

export type Correlation =
  | { by: 'packet'; packets: SentPacket[] }
  | { by: 'topic'; packets: SentPacket[] }
  | { by: 'device'; deviceId: string }
  | { by: 'none' };

/** The code each documented error type (docs/protocol.md §3.5) becomes; exhaustive over GatewayErrorType. */
export const GATEWAY_ERROR_CODES: Readonly<Record<GatewayErrorType, RelayErrorCode>> = {
  GATEWAY_ATTACHMENT_ERROR: 'ERR_ATTACH_REJECTED',
  GATEWAY_DEVICE_NOT_FOUND: 'ERR_DEVICE_NOT_FOUND',
  GATEWAY_INVALID_MQTT_TOPIC: 'ERR_INVALID_TOPIC',
  GATEWAY_UNEXPECTED_PACKET_ID: 'ERR_UNEXPECTED_PACKET_ID',
  GATEWAY_UNEXPECTED_MESSAGE_TYPE: 'ERR_UNEXPECTED_MESSAGE_TYPE',
  GATEWAY_DETACHMENT_DEVICE_ERROR: 'ERR_DEVICE_DETACHED',
  UNKNOWN: 'ERR_GATEWAY_ERROR',
};

export function correlateGatewayError(error: GatewayErrorMessage, sent: SentPackets): Correlation {
  // Packet ID 0 is not a valid MQTT packet identifier; the bridge uses it (or leaves the field out) for "none".
  if (error.packetId !== undefined && error.packetId !== 0) {
    const packet = sent.byPacketId.get(error.packetId);
    // mqtt.js reuses identifiers after 65535 packets; a packet whose topic or device disagrees with the message is
    // another packet that happened to carry the same number.
    const agrees =
      packet !== undefined &&
      (error.topic === undefined || error.topic === packet.topic) &&
      (error.deviceId === undefined || error.deviceId === packet.deviceId);
    if (packet !== undefined && agrees) return { by: 'packet', packets: [packet] };
  }
  if (error.topic !== undefined) {
    const packets = sent.byTopic.get(error.topic);
    if (packets !== undefined && packets.length > 0) return { by: 'topic', packets: [...packets] };
  }
  const deviceId = error.deviceId ?? deviceOfTopic(error.topic);
  if (deviceId !== undefined && sent.devices.has(deviceId)) return { by: 'device', deviceId };
  return { by: 'none' };
}

function deviceOfTopic(topic: string | undefined): string | undefined {
  if (topic === undefined) return undefined;
  const parsed = parseTopic(topic);
  return parsed !== undefined && 'deviceId' in parsed ? parsed.deviceId : undefined;
}

/** A short, log-safe reason from an error message: its raw type and the bridge's description. */
export function gatewayErrorReason(error: GatewayErrorMessage): string {
  const description = error.description.length > 300 ? `${error.description.slice(0, 300)}...` : error.description;
  return description === '' ? error.rawErrorType : `${error.rawErrorType}: ${description}`;
}
