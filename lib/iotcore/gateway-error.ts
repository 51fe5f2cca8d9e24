/**
 * Messages the bridge sends on `/devices/{gateway}/errors`. The documented shape nests the packet details under
 * `mqtt_message_info`; the ClearBlade gateway page lists the same three fields flat. Both are accepted.
 * The payload comes from the network, so it is parsed defensively: anything unusable yields undefined.
 *
 * @example
 * parseGatewayError('{"error_type":"GATEWAY_DEVICE_NOT_FOUND","device_id":"d-1","description":"..."}')
 */
export const GATEWAY_ERROR_TYPES = [
  'GATEWAY_ATTACHMENT_ERROR',
  'GATEWAY_DEVICE_NOT_FOUND',
  'GATEWAY_INVALID_MQTT_TOPIC',
  'GATEWAY_UNEXPECTED_PACKET_ID',
  'GATEWAY_UNEXPECTED_MESSAGE_TYPE',
  'GATEWAY_DETACHMENT_DEVICE_ERROR',
  'UNKNOWN',
] as const;

export type GatewayErrorType = (typeof GATEWAY_ERROR_TYPES)[number];

export interface GatewayErrorMessage {
  /** One of the documented types; anything else is reported as UNKNOWN with the raw value kept. */
  errorType: GatewayErrorType;
  rawErrorType: string;
  description: string;
  deviceId: string | undefined;
  messageType: string | undefined;
  topic: string | undefined;
  /** 0 or undefined when no packet caused the error. */
  packetId: number | undefined;
}

/** Error payloads are small; anything larger is not from the bridge and is not parsed. */
const MAX_ERROR_PAYLOAD = 64 * 1024;

const str = (v: unknown, max = 1024): string | undefined =>
  typeof v === 'string' && v.length <= max ? v : undefined;

export function parseGatewayError(payload: Uint8Array | string): GatewayErrorMessage | undefined {
  const text = typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8');
  if (text.length > MAX_ERROR_PAYLOAD) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return undefined;
  const o = doc as Record<string, unknown>;
  const rawType = str(o.error_type, 128);
  if (rawType === undefined) return undefined;
  const info =
    typeof o.mqtt_message_info === 'object' && o.mqtt_message_info !== null && !Array.isArray(o.mqtt_message_info)
      ? (o.mqtt_message_info as Record<string, unknown>)
      : o;
  const packetId = info.packet_id;
  return {
    errorType: (GATEWAY_ERROR_TYPES as readonly string[]).includes(rawType) ? (rawType as GatewayErrorType) : 'UNKNOWN',
    rawErrorType: rawType,
    description: str(o.description, 4096) ?? '',
    deviceId: str(o.device_id, 255),
    messageType: str(info.message_type, 64),
    topic: str(info.topic, 1024),
    packetId:
      typeof packetId === 'number' && Number.isInteger(packetId) && packetId >= 0 && packetId <= 65535 ? packetId : undefined,
  };
}
