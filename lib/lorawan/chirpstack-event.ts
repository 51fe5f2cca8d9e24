/**
 * Reads an event of ChirpStack v4's HTTP integration (payload marshaler: JSON) into a `LoraMessage`. ChirpStack
 * POSTs every event of an application to the configured URL and names it in the query: `?event=up`, `join`, `ack`,
 * `txack`, `status`, `log`, `location` or `integration`
 * (https://www.chirpstack.io/docs/chirpstack/integrations/events.html).
 *
 * From `up` it takes `deviceInfo` (`devEui`, `deviceName`, `applicationId`, `tags`), `data` (FRMPayload, base64),
 * `object` (the codec's output), `fPort`, `fCnt`, `time`, and per gateway `rxInfo[].gatewayId`, `rssi` and `snr`.
 * ChirpStack marshals Protocol Buffers to JSON and leaves out default values, so an absent `fCnt` is 0.
 *
 * Deduplication key: ChirpStack's `deduplicationId`, one UUID per uplink however many gateways heard it; without
 * one, the DevEUI, the session's device address (`devAddr`) and the frame counter.
 *
 * @example
 * const message = readChirpstackEvent('up', JSON.parse(body));
 */
import { RelayError } from '../errors.js';
import { decodeBase64 } from '../queue/message.js';
import {
  arrayAt,
  devEuiAt,
  isJsonObject,
  objectAt,
  optionalNumberAt,
  optionalObjectAt,
  optionalStringAt,
  stringAt,
  uintAt,
  type JsonObject,
} from './json-fields.js';
import { digestOf, timeAt } from './tts-message.js';
import { MAX_GATEWAYS, type LoraDevice, type LoraGateway, type LoraMessage, type LoraUplink } from './uplink.js';

export const CHIRPSTACK_EVENTS = ['up', 'join', 'ack', 'txack', 'status', 'log', 'location', 'integration'] as const;

const MAX_FRM_PAYLOAD_BASE64 = 340;
const MAX_TAGS = 100;

export function readChirpstackEvent(event: string | undefined, doc: unknown): LoraMessage {
  if (event === undefined || event === '') {
    throw new RelayError('ERR_INVALID_FIELD', 'the event query parameter is missing (ChirpStack posts to <URL>?event=up, ?event=join...)', { field: 'event' });
  }
  if (!(CHIRPSTACK_EVENTS as readonly string[]).includes(event)) {
    throw new RelayError('ERR_UNKNOWN_TYPE', `event ${JSON.stringify(event.slice(0, 40))} is not an event of ChirpStack's HTTP integration (${CHIRPSTACK_EVENTS.join(', ')})`, {
      field: 'event',
    });
  }
  if (!isJsonObject(doc)) throw new RelayError('ERR_INVALID_MESSAGE', `the body must be a JSON object (a ChirpStack ${event} event)`);
  if (event === 'up') return readUplink(doc);
  return {
    kind: 'event',
    event,
    body: doc,
    resolve: () => {
      const id = optionalStringAt(doc, 'deduplicationId', 'deduplicationId', 64);
      return { device: readDevice(doc), dedupKey: `cs:${event}:${id ?? digestOf(doc)}` };
    },
  };
}

function readDevice(doc: JsonObject): LoraDevice & { devEui: string } {
  const info = objectAt(doc, 'deviceInfo');
  const device: LoraDevice & { devEui: string } = { devEui: devEuiAt(info, 'devEui', 'deviceInfo.devEui'), tags: readTags(info) };
  const name = optionalStringAt(info, 'deviceName', 'deviceInfo.deviceName');
  const application = optionalStringAt(info, 'applicationId', 'deviceInfo.applicationId', 64);
  if (name !== undefined) device.deviceId = name;
  if (application !== undefined) device.applicationId = application;
  return device;
}

function readTags(info: JsonObject): Record<string, string> {
  const tags = optionalObjectAt(info, 'tags', 'deviceInfo.tags');
  if (tags === undefined) return {};
  const entries = Object.entries(tags);
  if (entries.length > MAX_TAGS) {
    throw new RelayError('ERR_PAYLOAD_TOO_LARGE', `deviceInfo.tags holds ${entries.length} tags; at most ${MAX_TAGS} are taken`, { field: 'deviceInfo.tags' });
  }
  const out: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (typeof value !== 'string') throw new RelayError('ERR_INVALID_FIELD', `deviceInfo.tags.${key.slice(0, 40)} must be a string`, { field: 'deviceInfo.tags' });
    out[key] = value;
  }
  return out;
}

function readUplink(doc: JsonObject): LoraUplink {
  const device = readDevice(doc);
  const fPort = uintAt(doc, 'fPort', 'fPort', 255);
  const fCnt = uintAt(doc, 'fCnt', 'fCnt', 0xffff_ffff);

  const data = optionalStringAt(doc, 'data', 'data', Number.MAX_SAFE_INTEGER);
  if (data !== undefined && data.length > MAX_FRM_PAYLOAD_BASE64) {
    throw new RelayError('ERR_PAYLOAD_TOO_LARGE', 'data is longer than any LoRaWAN frame (255 bytes)', { field: 'data' });
  }
  const payload = data === undefined ? Buffer.alloc(0) : decodeBase64(data, 'data');

  const decoded = doc.object;
  if (decoded !== undefined && !isJsonObject(decoded)) throw new RelayError('ERR_INVALID_FIELD', 'object must be an object', { field: 'object' });

  const rxInfo = arrayAt(doc, 'rxInfo', 'rxInfo');
  if (rxInfo.length > MAX_GATEWAYS) {
    throw new RelayError('ERR_PAYLOAD_TOO_LARGE', `rxInfo lists ${rxInfo.length} receptions; at most ${MAX_GATEWAYS} are taken`, { field: 'rxInfo' });
  }
  const gateways = rxInfo.map((entry, i): LoraGateway => {
    const path = `rxInfo[${i}]`;
    if (!isJsonObject(entry)) throw new RelayError('ERR_INVALID_FIELD', `${path} must be an object`, { field: path });
    const gateway: LoraGateway = { id: stringAt(entry, 'gatewayId', `${path}.gatewayId`, 64) };
    const rssi = optionalNumberAt(entry, 'rssi', `${path}.rssi`);
    const snr = optionalNumberAt(entry, 'snr', `${path}.snr`);
    if (rssi !== undefined) gateway.rssi = rssi;
    if (snr !== undefined) gateway.snr = snr;
    return gateway;
  });

  const time = timeAt(doc, 'time', 'time');
  const deduplicationId = optionalStringAt(doc, 'deduplicationId', 'deduplicationId', 64);
  const devAddr = optionalStringAt(doc, 'devAddr', 'devAddr', 8);
  const dedupKey = deduplicationId !== undefined ? `cs:up:${deduplicationId}` : `cs:up:${device.devEui}:${devAddr ?? ''}:${fCnt}`;
  const uplink: LoraUplink = { kind: 'uplink', device, fPort, fCnt, payload, gateways, dedupKey };
  if (decoded !== undefined) uplink.decoded = decoded;
  if (time !== undefined) uplink.time = time;
  return uplink;
}
