/**
 * The queue contract, version 1: the JSON body of every SQS message the relay consumes (docs/design.md "Queue
 * message"). Producers are our ingest handler, the poller, and third parties (LoRa network servers, IoT rules),
 * so every field is checked and every refusal names the field and the reason.
 *
 * @example
 * const msg = parseQueueMessage('{"v":1,"deviceId":"pump-0042","payload":"hi"}');
 * // { v: 1, type: 'event', deviceId: 'pump-0042', payload: <Buffer 68 69>, ... }
 */
import { describeInput, RelayError } from '../errors.js';
import { assertTopicDeviceId } from '../iotcore/device-id.js';
import { MAX_ATTACHED_PER_GATEWAY, MAX_EVENT_BYTES, MAX_STATE_BYTES } from '../iotcore/limits.js';
import { assertSubfolder } from '../iotcore/topics.js';

export interface TelemetryMessage {
  v: 1;
  type: 'event' | 'state';
  deviceId: string;
  subfolder?: string;
  payload: Buffer;
  /** A device JWT, sent as `{"authorization": token}` in the attach. */
  deviceToken?: string;
}

export interface ConfigPollMessage {
  v: 1;
  type: 'config-poll';
  deviceIds: string[];
}

export type QueueMessage = TelemetryMessage | ConfigPollMessage;

/** The JSON body as producers write it. */
export interface TelemetryMessageBody {
  v: 1;
  deviceId: string;
  type?: 'event' | 'state';
  subfolder?: string;
  payload: string;
  encoding?: 'utf8' | 'base64';
  deviceToken?: string;
}

/** A body larger than this cannot carry a valid record (256 KB of payload is ~342 KB in base64). */
export const MAX_BODY_BYTES = 1024 * 1024;
const MAX_TOKEN_LENGTH = 8192;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const KNOWN_FIELDS = new Set(['v', 'deviceId', 'type', 'subfolder', 'payload', 'encoding', 'deviceToken', 'deviceIds']);

const invalid = (field: string, why: string): RelayError =>
  new RelayError('ERR_INVALID_FIELD', `${field} ${why}`, { field });

/** Decodes strict base64 (standard alphabet, padded). Node's decoder silently skips bad characters; this does not. */
export function decodeBase64(text: string, field = 'payload'): Buffer {
  if (!BASE64.test(text)) {
    throw new RelayError('ERR_INVALID_BASE64', `${field} is not valid base64 (standard alphabet, with padding)`, { field });
  }
  return Buffer.from(text, 'base64');
}

export function payloadLimit(type: 'event' | 'state'): number {
  return type === 'state' ? MAX_STATE_BYTES : MAX_EVENT_BYTES;
}

export function assertPayloadSize(type: 'event' | 'state', payload: Uint8Array, field = 'payload'): void {
  const limit = payloadLimit(type);
  if (payload.byteLength > limit) {
    throw new RelayError('ERR_PAYLOAD_TOO_LARGE', `${field} is ${payload.byteLength} bytes; ${type === 'event' ? 'an event' : 'a state'} takes at most ${limit}`, { field });
  }
}

export function assertDeviceToken(token: unknown, field = 'deviceToken'): asserts token is string {
  if (typeof token !== 'string') throw invalid(field, 'must be a string');
  if (token.length > MAX_TOKEN_LENGTH) throw invalid(field, `must be at most ${MAX_TOKEN_LENGTH} characters`);
  if (!JWT_SHAPE.test(token)) throw invalid(field, 'must be a compact JWT (three base64url parts)');
}

export function parseQueueMessage(body: string): QueueMessage {
  // A UTF-16 code unit takes at most 3 bytes in UTF-8, so a short body needs no byte count.
  if (body.length * 3 > MAX_BODY_BYTES && Buffer.byteLength(body, 'utf8') > MAX_BODY_BYTES) {
    throw new RelayError('ERR_INVALID_MESSAGE', `message body is larger than ${MAX_BODY_BYTES} bytes`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (e) {
    throw new RelayError('ERR_INVALID_MESSAGE', `message body is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new RelayError('ERR_INVALID_MESSAGE', 'message body must be a JSON object');
  }
  const o = doc as Record<string, unknown>;
  if (o.v !== 1) {
    throw new RelayError('ERR_UNSUPPORTED_VERSION', `v must be 1 (got ${describeInput(o.v)})`, { field: 'v' });
  }
  for (const name in o) {
    if (KNOWN_FIELDS.has(name) || !Object.hasOwn(o, name)) continue;
    // The name comes from the producer: keep an empty or overlong one readable in the dead-letter reason.
    throw invalid(name === '' ? '(the empty name)' : name.slice(0, 64), 'is not a field of queue contract v1');
  }

  const type = o.type ?? 'event';
  if (type === 'config-poll') return parseConfigPoll(o);
  if (type !== 'event' && type !== 'state') {
    throw new RelayError('ERR_UNKNOWN_TYPE', `type must be "event", "state" or "config-poll" (got ${describeInput(type)})`, { field: 'type' });
  }
  // deviceIds is a known field of the contract, but only of config-poll jobs; on a record it would be silently lost.
  if (o.deviceIds !== undefined) throw invalid('deviceIds', 'is only for config-poll jobs');
  assertTopicDeviceId(o.deviceId);
  if (o.subfolder !== undefined) {
    if (type === 'state') throw invalid('subfolder', 'is only for events; state has no subfolders');
    assertSubfolder(o.subfolder);
  }
  const encoding = o.encoding ?? 'utf8';
  if (encoding !== 'utf8' && encoding !== 'base64') throw invalid('encoding', 'must be "utf8" or "base64"');
  if (typeof o.payload !== 'string') throw invalid('payload', 'must be a string');
  const payload = encoding === 'base64' ? decodeBase64(o.payload) : Buffer.from(o.payload, 'utf8');
  assertPayloadSize(type, payload);
  const msg: TelemetryMessage = { v: 1, type, deviceId: o.deviceId, payload };
  if (o.subfolder !== undefined) msg.subfolder = o.subfolder;
  if (o.deviceToken !== undefined) {
    assertDeviceToken(o.deviceToken);
    msg.deviceToken = o.deviceToken;
  }
  return msg;
}

function parseConfigPoll(o: Record<string, unknown>): ConfigPollMessage {
  for (const f of ['deviceId', 'payload', 'subfolder', 'encoding', 'deviceToken']) {
    if (o[f] !== undefined) throw invalid(f, 'is not a field of a config-poll job');
  }
  const ids = o.deviceIds;
  if (!Array.isArray(ids) || ids.length === 0) throw invalid('deviceIds', 'must be a non-empty array');
  if (ids.length > MAX_ATTACHED_PER_GATEWAY) {
    throw invalid('deviceIds', `must hold at most ${MAX_ATTACHED_PER_GATEWAY} devices (a gateway attaches no more)`);
  }
  ids.forEach((id, i) => assertTopicDeviceId(id, `deviceIds[${i}]`));
  return { v: 1, type: 'config-poll', deviceIds: [...new Set(ids as string[])] };
}

/** The JSON body for a telemetry record; binary payloads travel as base64. */
export function encodeTelemetryMessage(m: Omit<TelemetryMessage, 'v'>): string {
  const body: TelemetryMessageBody = { v: 1, deviceId: m.deviceId, type: m.type, payload: m.payload.toString('base64'), encoding: 'base64' };
  if (m.subfolder !== undefined) body.subfolder = m.subfolder;
  if (m.deviceToken !== undefined) body.deviceToken = m.deviceToken;
  return JSON.stringify(body);
}

export function encodeConfigPollMessage(deviceIds: readonly string[]): string {
  return JSON.stringify({ v: 1, type: 'config-poll', deviceIds });
}
