/**
 * Turns request bodies into readings: one telemetry event or one state, with its decoded payload. Every check is
 * the relay's own (`assertSubfolder`, `decodeBase64`, `assertPayloadSize`), so what the ingest takes, the relay
 * will take; every refusal names the field as the device wrote it.
 *
 * Bodies:
 * - IoT Core HTTP bridge: `{"binary_data": "<base64>", "sub_folder": "..."}` for publishEvent and
 *   `{"state": {"binary_data": "<base64>"}}` for setState; the REST JSON spellings `binaryData` / `subFolder` too
 *   (docs/protocol.md §5). An empty `sub_folder` means none, as in proto3 JSON.
 * - simple form: the raw body is the payload.
 * - batch: `{"readings": [{"type", "subfolder", "payload", "encoding", "messageId"}, ...]}`, with the defaults of
 *   queue contract v1 (`type` event, `encoding` utf8). Each reading is checked on its own, so one bad reading does
 *   not hold back the rest.
 *
 * @example
 * readingFromPublishEvent(Buffer.from('{"binary_data":"aGk=","sub_folder":"alarms"}'));
 * // { type: 'event', subfolder: 'alarms', payload: <Buffer 68 69> }
 */
import { RelayError } from '../errors.js';
import { assertSubfolder } from '../iotcore/topics.js';
import { assertPayloadSize, decodeBase64 } from '../queue/message.js';
import { assertMessageId } from './deduplication.js';

export interface Reading {
  type: 'event' | 'state';
  subfolder?: string;
  payload: Buffer;
  /** The device's own ID for the reading, for deduplication. */
  messageId?: string;
}

/** A batch reading that passed its checks, or why it did not. `index` is its position in the request. */
export type BatchItem = { index: number; reading: Reading } | { index: number; error: RelayError };

/** Readings one batch request may carry: 500 readings at a gateway's 10 per session is 50 sessions already. */
export const MAX_BATCH_READINGS = 500;

const invalid = (field: string, why: string): RelayError => new RelayError('ERR_INVALID_FIELD', `${field} ${why}`, { field });

export function readingFromRaw(type: 'event' | 'state', payload: Buffer, subfolder?: string): Reading {
  const reading: Reading = { type, payload };
  if (subfolder !== undefined) {
    assertSubfolder(subfolder);
    reading.subfolder = subfolder;
  }
  assertPayloadSize(type, payload, 'body');
  return reading;
}

export function readingFromPublishEvent(body: Buffer): Reading {
  const doc = jsonObject(body, 'the body');
  onlyFields(doc, ['binary_data', 'binaryData', 'sub_folder', 'subFolder'], '');
  const data = aliased(doc, 'binary_data', 'binaryData', '');
  const reading: Reading = { type: 'event', payload: base64Field(data, 'event') };
  const sub = aliased(doc, 'sub_folder', 'subFolder', '');
  if (sub !== undefined && sub.value !== '') {
    assertSubfolder(sub.value, sub.field);
    reading.subfolder = sub.value;
  }
  return reading;
}

export function readingFromSetState(body: Buffer): Reading {
  const doc = jsonObject(body, 'the body');
  onlyFields(doc, ['state'], '');
  const state = doc['state'];
  if (typeof state !== 'object' || state === null || Array.isArray(state)) {
    throw invalid('state', 'must be an object {"binary_data": "<base64>"}');
  }
  const inner = state as Record<string, unknown>;
  onlyFields(inner, ['binary_data', 'binaryData'], 'state.');
  return { type: 'state', payload: base64Field(aliased(inner, 'binary_data', 'binaryData', 'state.'), 'state') };
}

/** Parses a batch body. Throws for the request as a whole (not JSON, no readings, too many); reports readings one by one. */
export function batchItemsFrom(body: Buffer): BatchItem[] {
  const doc = jsonObject(body, 'the body');
  onlyFields(doc, ['readings'], '');
  const readings = doc['readings'];
  if (!Array.isArray(readings) || readings.length === 0) throw invalid('readings', 'must be a non-empty array');
  if (readings.length > MAX_BATCH_READINGS) {
    throw invalid('readings', `holds ${readings.length} readings; at most ${MAX_BATCH_READINGS} per request`);
  }
  const seen = new Map<string, number>();
  return readings.map((raw, index): BatchItem => {
    const prefix = `readings[${index}]`;
    try {
      const reading = batchReading(raw, prefix);
      if (reading.messageId !== undefined) {
        const earlier = seen.get(reading.messageId);
        if (earlier !== undefined) throw invalid(`${prefix}.messageId`, `repeats readings[${earlier}].messageId`);
        seen.set(reading.messageId, index);
      }
      return { index, reading };
    } catch (e) {
      if (e instanceof RelayError) return { index, error: e };
      throw e;
    }
  });
}

function batchReading(raw: unknown, prefix: string): Reading {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(prefix, 'must be an object');
  const o = raw as Record<string, unknown>;
  onlyFields(o, ['type', 'subfolder', 'payload', 'encoding', 'messageId'], `${prefix}.`);
  const type = o['type'] ?? 'event';
  if (type !== 'event' && type !== 'state') throw invalid(`${prefix}.type`, 'must be "event" or "state"');
  const reading: Reading = { type, payload: Buffer.alloc(0) };
  if (o['subfolder'] !== undefined) {
    if (type === 'state') throw invalid(`${prefix}.subfolder`, 'is only for events; state has no subfolders');
    assertSubfolder(o['subfolder'], `${prefix}.subfolder`);
    reading.subfolder = o['subfolder'];
  }
  const encoding = o['encoding'] ?? 'utf8';
  if (encoding !== 'utf8' && encoding !== 'base64') throw invalid(`${prefix}.encoding`, 'must be "utf8" or "base64"');
  const payload = o['payload'];
  if (typeof payload !== 'string') throw invalid(`${prefix}.payload`, 'must be a string');
  reading.payload = encoding === 'base64' ? decodeBase64(payload, `${prefix}.payload`) : Buffer.from(payload, 'utf8');
  assertPayloadSize(type, reading.payload, `${prefix}.payload`);
  if (o['messageId'] !== undefined) {
    assertMessageId(o['messageId'], `${prefix}.messageId`);
    reading.messageId = o['messageId'];
  }
  return reading;
}

function jsonObject(body: Buffer, what: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw new RelayError('ERR_INVALID_MESSAGE', `${what} is not JSON`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new RelayError('ERR_INVALID_MESSAGE', `${what} must be a JSON object`);
  return doc as Record<string, unknown>;
}

/** Unknown fields are refused, as IoT Core's JSON parser refuses them, so a misspelt field is not silently lost. */
function onlyFields(o: Record<string, unknown>, known: readonly string[], prefix: string): void {
  const unknown = Object.keys(o).find((k) => !known.includes(k));
  if (unknown !== undefined) throw invalid(`${prefix}${unknown}`, `is not a known field (expected ${known.join(', ')})`);
}

/** A field that may be spelt two ways; giving both is refused rather than picking one. */
function aliased(o: Record<string, unknown>, snake: string, camel: string, prefix: string): { field: string; value: string } | undefined {
  const present = [snake, camel].filter((k) => o[k] !== undefined);
  if (present.length === 2) throw invalid(`${prefix}${snake}`, `and ${prefix}${camel} are the same field; give one`);
  const [name] = present;
  if (name === undefined) return undefined;
  const value = o[name];
  if (typeof value !== 'string') throw invalid(`${prefix}${name}`, 'must be a string');
  return { field: `${prefix}${name}`, value };
}

function base64Field(data: { field: string; value: string } | undefined, type: 'event' | 'state'): Buffer {
  if (data === undefined) throw invalid(type === 'state' ? 'state.binary_data' : 'binary_data', 'is required (base64 of the payload)');
  const payload = decodeBase64(data.value, data.field);
  assertPayloadSize(type, payload, data.field);
  return payload;
}
