/**
 * Queue contract v1 (lib/queue/message.ts): what producers may write, the defaults, and the specific code and
 * field of every refusal. The fuzz test (test/fuzz/queue-message.test.ts) covers arbitrary input; this one pins the
 * contract itself.
 */
import { describe, expect, it } from 'vitest';
import type { RelayErrorCode } from '../../../lib/errors.js';
import { MAX_EVENT_BYTES, MAX_STATE_BYTES } from '../../../lib/iotcore/limits.js';
import { encodeConfigPollMessage, encodeTelemetryMessage, parseQueueMessage } from '../../../lib/queue/message.js';
import { thrownRelayError } from '../../helpers/relay-error.js';

const refusal = (body: string): { code: RelayErrorCode; field: string | undefined } => {
  const { code, field } = thrownRelayError(() => parseQueueMessage(body));
  return { code, field };
};
const body = (o: Record<string, unknown>): string => JSON.stringify({ v: 1, deviceId: 'pump-0042', payload: 'x', ...o });

describe('parseQueueMessage', () => {
  it('takes the documented defaults: an event, utf8', () => {
    // Arrange, Act
    const msg = parseQueueMessage(body({ payload: 'héllo' }));
    // Assert
    expect(msg).toEqual({ v: 1, type: 'event', deviceId: 'pump-0042', payload: Buffer.from('héllo', 'utf8') });
  });

  it('decodes base64 payloads, keeps subfolders and device tokens', () => {
    const msg = parseQueueMessage(body({ payload: 'eyJ0ZW1wIjogMjF9', encoding: 'base64', subfolder: 'alarms/high', deviceToken: 'a.b.c' }));
    expect(msg).toMatchObject({ type: 'event', subfolder: 'alarms/high', deviceToken: 'a.b.c' });
    expect(msg.type === 'event' && msg.payload.toString()).toBe('{"temp": 21}');
  });

  it('holds events to 256 KB and state to 64 KB of decoded payload', () => {
    expect(parseQueueMessage(body({ payload: 'e'.repeat(MAX_EVENT_BYTES) })).type).toBe('event');
    expect(refusal(body({ payload: 'e'.repeat(MAX_EVENT_BYTES + 1) }))).toEqual({ code: 'ERR_PAYLOAD_TOO_LARGE', field: 'payload' });
    expect(parseQueueMessage(body({ type: 'state', payload: 's'.repeat(MAX_STATE_BYTES) })).type).toBe('state');
    expect(refusal(body({ type: 'state', payload: 's'.repeat(MAX_STATE_BYTES + 1) }))).toEqual({ code: 'ERR_PAYLOAD_TOO_LARGE', field: 'payload' });
  });

  it('says which limit was passed, with the right article', () => {
    expect(thrownRelayError(() => parseQueueMessage(body({ payload: 'e'.repeat(MAX_EVENT_BYTES + 1) }))).message).toBe(
      `payload is ${MAX_EVENT_BYTES + 1} bytes; an event takes at most ${MAX_EVENT_BYTES}`,
    );
    expect(thrownRelayError(() => parseQueueMessage(body({ type: 'state', payload: 's'.repeat(MAX_STATE_BYTES + 1) }))).message).toBe(
      `payload is ${MAX_STATE_BYTES + 1} bytes; a state takes at most ${MAX_STATE_BYTES}`,
    );
  });

  it.each<[string, string, RelayErrorCode, string | undefined]>([
    ['not JSON', '{"v":1,', 'ERR_INVALID_MESSAGE', undefined],
    ['an array', '[1]', 'ERR_INVALID_MESSAGE', undefined],
    ['version 2', body({ v: 2 }), 'ERR_UNSUPPORTED_VERSION', 'v'],
    ['no version', JSON.stringify({ deviceId: 'pump-0042', payload: 'x' }), 'ERR_UNSUPPORTED_VERSION', 'v'],
    ['an unknown type', body({ type: 'command' }), 'ERR_UNKNOWN_TYPE', 'type'],
    ['an unknown field', body({ priority: 1 }), 'ERR_INVALID_FIELD', 'priority'],
    ['a subfolder on state', body({ type: 'state', subfolder: 'a' }), 'ERR_INVALID_FIELD', 'subfolder'],
    ['a wildcard subfolder', body({ subfolder: 'a/#' }), 'ERR_INVALID_SUBFOLDER', 'subfolder'],
    ['a device ID with a level', body({ deviceId: 'pump/0042' }), 'ERR_INVALID_DEVICE_ID', 'deviceId'],
    ['a device ID IoT Core allows but MQTT forbids in a topic', body({ deviceId: 'pump+x' }), 'ERR_DEVICE_ID_MQTT_WILDCARD', 'deviceId'],
    ['a number payload', body({ payload: 42 }), 'ERR_INVALID_FIELD', 'payload'],
    ['an unknown encoding', body({ encoding: 'hex' }), 'ERR_INVALID_FIELD', 'encoding'],
    ['unpadded base64', body({ encoding: 'base64', payload: 'e30' }), 'ERR_INVALID_BASE64', 'payload'],
    ['a token that is not a JWT', body({ deviceToken: 'not a jwt' }), 'ERR_INVALID_FIELD', 'deviceToken'],
    ['deviceIds on a record', body({ deviceIds: ['pump-0042'] }), 'ERR_INVALID_FIELD', 'deviceIds'],
  ])('refuses %s with its own code and field', (_what, raw, code, field) => {
    expect(refusal(raw)).toEqual({ code, field });
  });

  it('reads config-poll jobs, dropping repeated devices', () => {
    expect(parseQueueMessage(encodeConfigPollMessage(['valve-01', 'valve-02', 'valve-01']))).toEqual({ v: 1, type: 'config-poll', deviceIds: ['valve-01', 'valve-02'] });
    expect(refusal(JSON.stringify({ v: 1, type: 'config-poll', deviceIds: [] }))).toEqual({ code: 'ERR_INVALID_FIELD', field: 'deviceIds' });
    expect(refusal(JSON.stringify({ v: 1, type: 'config-poll', deviceIds: ['ok-1', 'x'] }))).toEqual({ code: 'ERR_INVALID_DEVICE_ID', field: 'deviceIds[1]' });
    expect(refusal(JSON.stringify({ v: 1, type: 'config-poll', deviceIds: ['ok-1', 'pump+x'] }))).toEqual({ code: 'ERR_DEVICE_ID_MQTT_WILDCARD', field: 'deviceIds[1]' });
    expect(refusal(JSON.stringify({ v: 1, type: 'config-poll', deviceIds: ['ok-1'], payload: 'x' }))).toEqual({ code: 'ERR_INVALID_FIELD', field: 'payload' });
  });

  it('reads back what encodeTelemetryMessage writes, binary bytes included', () => {
    const payload = Buffer.from([0, 255, 0x2b, 0x23, 0x2f]);
    const encoded = encodeTelemetryMessage({ type: 'event', deviceId: 'pump-0042', subfolder: 'raw', payload, deviceToken: 'h.p.s' });
    expect(parseQueueMessage(encoded)).toEqual({ v: 1, type: 'event', deviceId: 'pump-0042', subfolder: 'raw', payload, deviceToken: 'h.p.s' });
  });
});
