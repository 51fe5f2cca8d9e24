/**
 * What the bridge tells a gateway on `/devices/{gateway}/errors` (docs/protocol.md §3.5, [CB-GW]
 * "Troubleshooting"). Errors are best-effort QoS 0; a gateway that is not subscribed gets nothing, and the error is
 * only recorded, as ClearBlade only logs it. Every error, delivered or not, is kept in `registry.errors`.
 *
 * Two payload shapes: `nested` (default) is what Google's bridge was seen sending, packet details under
 * `mqtt_message_info`; `flat` puts `message_type`, `topic` and `packet_id` at the top level, as ClearBlade's page
 * lists the fields.
 *
 * @example
 * reportGatewayError(sink, { type: 'GATEWAY_DEVICE_NOT_FOUND', deviceId: 'pump-1', description: '...',
 *   packet: { messageType: 'PUBLISH', topic: '/devices/pump-1/state', packetId: 7 } });
 */
import type { GatewayErrorType } from '../lib/iotcore/gateway-error.js';
import { errorsTopic } from '../lib/iotcore/topics.js';
import type { Packet } from 'mqtt-packet';
import type { Registry } from './registry.js';

export type ErrorShape = 'nested' | 'flat';

export interface GatewayErrorReport {
  type: GatewayErrorType;
  /** The device the error is about (may be the gateway itself). */
  deviceId: string;
  description: string;
  /** The packet that caused the error, if one did. */
  packet?: { messageType: 'PUBLISH' | 'SUBSCRIBE' | 'PUBREC' | 'PUBREL' | 'PUBCOMP'; topic: string; packetId: number };
}

/** The part of a gateway's connection that error reporting needs. */
export interface ErrorSink {
  readonly registry: Registry;
  readonly gatewayId: string;
  readonly errorShape: ErrorShape;
  /** Whether the gateway holds a subscription to its errors topic. */
  subscribedTo(topicFilter: string): boolean;
  send(packet: Packet): void;
}

export function errorPayload(report: GatewayErrorReport, shape: ErrorShape): Record<string, unknown> {
  const payload: Record<string, unknown> = {
    error_type: report.type,
    description: report.description,
    device_id: report.deviceId,
  };
  if (report.packet !== undefined) {
    const info = { message_type: report.packet.messageType, topic: report.packet.topic, packet_id: report.packet.packetId };
    if (shape === 'flat') Object.assign(payload, info);
    else payload['mqtt_message_info'] = info;
  }
  return payload;
}

/** Sends the error if the gateway is subscribed to its errors topic, records it either way; true if sent. */
export function reportGatewayError(sink: ErrorSink, report: GatewayErrorReport): boolean {
  const topic = errorsTopic(sink.gatewayId);
  const payload = errorPayload(report, sink.errorShape);
  const delivered = sink.subscribedTo(topic);
  if (delivered) {
    sink.send({ cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(payload)), qos: 0, retain: false, dup: false });
  }
  sink.registry.recordError({ time: new Date().toISOString(), gatewayId: sink.gatewayId, delivered, payload });
  return delivered;
}
