/**
 * Reads a webhook body of The Things Stack (v3, JSON format) into a `LoraMessage`. The body holds the device's
 * identifiers (`end_device_ids`), the stack's `correlation_ids`, and exactly one message, named by its key:
 * `uplink_message`, or another one (`join_accept`, `downlink_ack`, `downlink_sent`...).
 *
 * From an uplink it takes `uplink_message.frm_payload` (base64), `f_port`, `f_cnt`, `decoded_payload` (the payload
 * formatter's output), `received_at` (the Network Server's reception time) and per gateway
 * `rx_metadata[].gateway_ids.gateway_id`, `rssi` and `snr`. The stack leaves out fields with a default value
 * (https://www.thethingsindustries.com/docs/integrations/data-formats/), so an absent `f_cnt` is 0.
 *
 * Deduplication key, the same on every retry of a webhook: the application and device, the session
 * (`uplink_message.session_key_id`) and the frame counter; without a session key ID (some ABP sessions), the
 * Application Server's `as:up:` correlation ID; without either, device, frame counter and reception time.
 *
 * @example
 * const message = readTtsMessage(JSON.parse(body));
 * if (message.kind === 'uplink') message.payload; // FRMPayload bytes
 */
import { createHash } from 'node:crypto';
import { RelayError } from '../errors.js';
import { decodeBase64 } from '../queue/message.js';
import {
  arrayAt,
  isJsonObject,
  objectAt,
  optionalDevEuiAt,
  optionalNumberAt,
  optionalStringAt,
  stringAt,
  uintAt,
  type JsonObject,
} from './json-fields.js';
import { MAX_GATEWAYS, type LoraDevice, type LoraGateway, type LoraMessage, type LoraUplink } from './uplink.js';

/** The messages besides `uplink_message` a webhook of The Things Stack may carry. */
export const TTS_EVENTS = [
  'join_accept',
  'downlink_ack',
  'downlink_nack',
  'downlink_sent',
  'downlink_failed',
  'downlink_queued',
  'downlink_queue_invalidated',
  'location_solved',
  'service_data',
  'uplink_normalized',
] as const;

/** The Things Stack's identifiers are at most 36 characters. */
const MAX_ID = 36;
/** 255 bytes of FRMPayload, more than any LoRaWAN data rate carries, in base64. */
const MAX_FRM_PAYLOAD_BASE64 = 340;
const MAX_CORRELATION_IDS = 100;

export function readTtsMessage(doc: unknown): LoraMessage {
  if (!isJsonObject(doc)) throw new RelayError('ERR_INVALID_MESSAGE', 'the body must be a JSON object (a webhook message of The Things Stack)');
  if (doc.uplink_message !== undefined) return readUplink(doc);
  const event = TTS_EVENTS.find((name) => doc[name] !== undefined);
  if (event === undefined) {
    throw new RelayError('ERR_UNKNOWN_TYPE', `the body holds no message of The Things Stack: expected uplink_message or one of ${TTS_EVENTS.join(', ')}`);
  }
  return {
    kind: 'event',
    event,
    body: doc,
    resolve: () => ({ device: readDevice(doc), dedupKey: `tts:${event}:${digestOf(doc)}` }),
  };
}

function readDevice(doc: JsonObject): LoraDevice & { deviceId: string; applicationId: string } {
  const ids = objectAt(doc, 'end_device_ids');
  const applicationIds = objectAt(ids, 'application_ids', 'end_device_ids.application_ids');
  const device = {
    deviceId: stringAt(ids, 'device_id', 'end_device_ids.device_id', MAX_ID),
    applicationId: stringAt(applicationIds, 'application_id', 'end_device_ids.application_ids.application_id', MAX_ID),
    tags: {},
  };
  const devEui = optionalDevEuiAt(ids, 'dev_eui', 'end_device_ids.dev_eui');
  return devEui === undefined ? device : { ...device, devEui };
}

function readUplink(doc: JsonObject): LoraUplink {
  const device = readDevice(doc);
  const up = objectAt(doc, 'uplink_message');
  const fPort = uintAt(up, 'f_port', 'uplink_message.f_port', 255);
  const fCnt = uintAt(up, 'f_cnt', 'uplink_message.f_cnt', 0xffff_ffff);

  const frm = optionalStringAt(up, 'frm_payload', 'uplink_message.frm_payload', Number.MAX_SAFE_INTEGER);
  if (frm !== undefined && frm.length > MAX_FRM_PAYLOAD_BASE64) {
    throw new RelayError('ERR_PAYLOAD_TOO_LARGE', 'uplink_message.frm_payload is longer than any LoRaWAN frame (255 bytes)', { field: 'uplink_message.frm_payload' });
  }
  const payload = frm === undefined ? Buffer.alloc(0) : decodeBase64(frm, 'uplink_message.frm_payload');

  const decoded = up.decoded_payload;
  if (decoded !== undefined && !isJsonObject(decoded)) {
    throw new RelayError('ERR_INVALID_FIELD', 'uplink_message.decoded_payload must be an object', { field: 'uplink_message.decoded_payload' });
  }

  const metadata = arrayAt(up, 'rx_metadata', 'uplink_message.rx_metadata');
  if (metadata.length > MAX_GATEWAYS) {
    throw new RelayError('ERR_PAYLOAD_TOO_LARGE', `uplink_message.rx_metadata lists ${metadata.length} receptions; at most ${MAX_GATEWAYS} are taken`, {
      field: 'uplink_message.rx_metadata',
    });
  }
  const gateways = metadata.map((entry, i): LoraGateway => {
    const path = `uplink_message.rx_metadata[${i}]`;
    if (!isJsonObject(entry)) throw new RelayError('ERR_INVALID_FIELD', `${path} must be an object`, { field: path });
    const ids = objectAt(entry, 'gateway_ids', `${path}.gateway_ids`);
    const gateway: LoraGateway = { id: stringAt(ids, 'gateway_id', `${path}.gateway_ids.gateway_id`, MAX_ID) };
    const rssi = optionalNumberAt(entry, 'rssi', `${path}.rssi`);
    const snr = optionalNumberAt(entry, 'snr', `${path}.snr`);
    if (rssi !== undefined) gateway.rssi = rssi;
    if (snr !== undefined) gateway.snr = snr;
    return gateway;
  });

  const time = timeAt(up, 'received_at', 'uplink_message.received_at') ?? timeAt(doc, 'received_at', 'received_at');
  const uplink: LoraUplink = { kind: 'uplink', device, fPort, fCnt, payload, gateways, dedupKey: dedupKeyOf(doc, up, device, fCnt, time) };
  if (decoded !== undefined) uplink.decoded = decoded;
  if (time !== undefined) uplink.time = time;
  return uplink;
}

function dedupKeyOf(doc: JsonObject, up: JsonObject, device: { deviceId: string; applicationId: string }, fCnt: number, time: string | undefined): string {
  const device_ = `${device.applicationId}/${device.deviceId}`;
  const session = optionalStringAt(up, 'session_key_id', 'uplink_message.session_key_id', 128);
  if (session !== undefined) return `tts:${device_}:${session}:${fCnt}`;
  const correlationIds = arrayAt(doc, 'correlation_ids', 'correlation_ids');
  if (correlationIds.length > MAX_CORRELATION_IDS) {
    throw new RelayError('ERR_PAYLOAD_TOO_LARGE', `correlation_ids lists ${correlationIds.length} IDs; at most ${MAX_CORRELATION_IDS} are taken`, { field: 'correlation_ids' });
  }
  const applicationServer = correlationIds.find((id): id is string => typeof id === 'string' && id.startsWith('as:up:'));
  if (applicationServer !== undefined) return `tts:${applicationServer}`;
  return `tts:${device_}:${fCnt}:${time ?? ''}`;
}

/** An optional ISO 8601 time. */
export function timeAt(parent: JsonObject, key: string, path: string): string | undefined {
  const value = optionalStringAt(parent, key, path, 64);
  if (value !== undefined && !Number.isFinite(Date.parse(value))) {
    throw new RelayError('ERR_INVALID_FIELD', `${path} must be an ISO 8601 time`, { field: path });
  }
  return value;
}

/** SHA-256 of a message as received: the deduplication key of events that carry no ID of their own. */
export function digestOf(doc: JsonObject): string {
  let text: string;
  try {
    text = JSON.stringify(doc);
  } catch {
    throw new RelayError('ERR_INVALID_MESSAGE', 'the body is nested too deeply');
  }
  return createHash('sha256').update(text).digest('hex');
}
