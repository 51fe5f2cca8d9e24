/**
 * One LoRaWAN message as both network servers' webhooks describe it, once read (tts-message.ts,
 * chirpstack-event.ts): an uplink with its frame, or another event (a join, an acknowledgement, a status report...).
 * Everything after reading works on this shape only, so The Things Stack and ChirpStack are relayed alike.
 *
 * The payload modes of an integration turn an uplink into the bytes relayed to IoT Core:
 * - `raw`: the frame payload (FRMPayload) as the device sent it;
 * - `decoded`: the network server's decoded payload (its payload formatter or codec), as JSON text; refused when
 *   the uplink has none;
 * - `envelope`: a compact JSON object: `{"payload": <base64>, "fPort", "fCnt", "time", "rssi", "snr", "gatewayId"}`,
 *   the radio values from the best gateway (the highest SNR, then the highest RSSI); the last three are left out
 *   when no gateway reported them.
 *
 * @example
 * const bytes = payloadOf(uplink, 'envelope');
 * // {"payload":"AQI=","fPort":2,"fCnt":17,"time":"2025-03-01T10:00:00Z","rssi":-97,"snr":7.5,"gatewayId":"gtw-roof"}
 */
import { RelayError } from '../errors.js';

export type PayloadMode = 'raw' | 'decoded' | 'envelope';

/** The end device as the network server names it. */
export interface LoraDevice {
  /** The Things Stack's device ID; ChirpStack's device name. */
  deviceId?: string;
  /** 16 lower-case hexadecimal digits. */
  devEui?: string;
  /** The Things Stack's application ID; ChirpStack's application UUID. */
  applicationId?: string;
  /** ChirpStack's device and device-profile tags. */
  tags: Readonly<Record<string, string>>;
}

export interface LoraGateway {
  id: string;
  rssi?: number;
  snr?: number;
}

export interface LoraUplink {
  kind: 'uplink';
  device: LoraDevice;
  fPort: number;
  fCnt: number;
  /** FRMPayload, decrypted by the network server. */
  payload: Buffer;
  /** The network server's decoded payload; undefined when it has none. */
  decoded?: unknown;
  /** When the network server received the frame (ISO 8601), when it says. */
  time?: string;
  gateways: LoraGateway[];
  /** Identifies this uplink among the device's, the same on every retry of the webhook. */
  dedupKey: string;
}

export interface LoraEvent {
  kind: 'event';
  /** The network server's name of the event: `join`, `status` (ChirpStack); `join_accept`, `downlink_ack`... (TTS). */
  event: string;
  /** The event's body as received, for integrations that relay it. */
  body: Record<string, unknown>;
  /**
   * The device and deduplication key, read only for an event that is relayed: one that is only acknowledged needs
   * no more than a JSON object, whatever else its body holds.
   */
  resolve(): { device: LoraDevice; dedupKey: string };
}

export type LoraMessage = LoraUplink | LoraEvent;

/** Metadata of more gateways than this is not a real uplink: 413. */
export const MAX_GATEWAYS = 100;

/** The gateway with the highest SNR (the better measure near the sensitivity limit), then the highest RSSI. */
export function bestGateway(gateways: readonly LoraGateway[]): LoraGateway | undefined {
  let best: LoraGateway | undefined;
  for (const g of gateways) {
    if (g.rssi === undefined && g.snr === undefined) continue;
    if (best === undefined) {
      best = g;
      continue;
    }
    const snr = (g.snr ?? -Infinity) - (best.snr ?? -Infinity);
    if (snr > 0 || (snr === 0 && (g.rssi ?? -Infinity) > (best.rssi ?? -Infinity))) best = g;
  }
  return best;
}

export interface Envelope {
  payload: string;
  fPort: number;
  fCnt: number;
  time?: string;
  rssi?: number;
  snr?: number;
  gatewayId?: string;
}

export function envelopeOf(uplink: LoraUplink): Envelope {
  const envelope: Envelope = { payload: uplink.payload.toString('base64'), fPort: uplink.fPort, fCnt: uplink.fCnt };
  if (uplink.time !== undefined) envelope.time = uplink.time;
  const best = bestGateway(uplink.gateways);
  if (best !== undefined) {
    if (best.rssi !== undefined) envelope.rssi = best.rssi;
    if (best.snr !== undefined) envelope.snr = best.snr;
    envelope.gatewayId = best.id;
  }
  return envelope;
}

/**
 * The bytes relayed for an uplink. `decodedField` names where the decoded payload would be, for the refusal when
 * there is none.
 */
export function payloadOf(uplink: LoraUplink, mode: PayloadMode, decodedField: string): Buffer {
  if (mode === 'raw') return uplink.payload;
  if (mode === 'envelope') return Buffer.from(JSON.stringify(envelopeOf(uplink)), 'utf8');
  if (uplink.decoded === undefined) {
    throw new RelayError(
      'ERR_INVALID_FIELD',
      `${decodedField} is missing: the integration relays decoded payloads, and the network server decoded none (is a payload formatter or codec set for this device?)`,
      { field: decodedField },
    );
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(uplink.decoded);
  } catch {
    // A structure nested deeper than the stack allows; JSON.parse took it, JSON.stringify cannot.
    throw new RelayError('ERR_INVALID_FIELD', `${decodedField} is nested too deeply to relay`, { field: decodedField });
  }
  return Buffer.from(text ?? 'null', 'utf8');
}
