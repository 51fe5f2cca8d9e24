import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { digestOf, readTtsMessage, timeAt, TTS_EVENTS } from '../../../lib/lorawan/tts-message.js';
import type { RelayErrorCode } from '../../../lib/errors.js';
import { thrownRelayError } from '../../helpers/relay-error.js';
import { edited, expectTheSampleFrame, fixture, uplinkOf } from './lora-fixtures.js';

describe('an uplink of The Things Stack', () => {
  const tts = uplinkOf(readTtsMessage(fixture('tts-uplink.json')));

  it('reads the frame, its device, its gateways and the Network Server reception time', () => {
    expectTheSampleFrame(tts);
    expect(tts.device).toEqual({ deviceId: 'soil-probe-07', applicationId: 'orchard-sensors', devEui: '70b3d57ed0061a2c', tags: {} });
    expect(tts.gateways.map((g) => g.id)).toEqual(['gw-orchard-north', 'gw-barn']);
    // The Network Server's reception time, not the gateway's.
    expect(tts.time).toBe('2025-03-14T07:42:18.695120437Z');
  });

  it('takes the message reception time when the uplink has none', () => {
    const u = uplinkOf(readTtsMessage(edited('tts-uplink.json', (d) => delete d.uplink_message.received_at)));
    expect(u.time).toBe('2025-03-14T07:42:18.903817562Z');
    const neither = uplinkOf(readTtsMessage(edited('tts-uplink.json', (d) => (delete d.uplink_message.received_at, delete d.received_at))));
    expect(neither.time).toBeUndefined();
  });

  it('reads absent default values as zero and an absent payload as empty', () => {
    const u = uplinkOf(
      readTtsMessage(
        edited('tts-uplink.json', (d) => {
          delete d.uplink_message.f_cnt;
          delete d.uplink_message.frm_payload;
          delete d.uplink_message.decoded_payload;
          delete d.uplink_message.rx_metadata;
          delete d.end_device_ids.dev_eui;
        }),
      ),
    );
    expect([u.fCnt, u.payload.byteLength, u.decoded, u.gateways, u.device.devEui]).toEqual([0, 0, undefined, [], undefined]);
  });

  it('keys deduplication on the session and counter, then the as:up correlation ID, then the counter and time', () => {
    expect(tts.dedupKey).toBe('tts:orchard-sensors/soil-probe-07:AZGx7n2kQ0uV3rT9cW1yHg==:1337');
    const noSession = uplinkOf(readTtsMessage(edited('tts-uplink.json', (d) => delete d.uplink_message.session_key_id)));
    expect(noSession.dedupKey).toBe('tts:as:up:01J8Z4K6Q2WZ3M7X5V0B9N1C2D');
    const noCorrelation = uplinkOf(readTtsMessage(edited('tts-uplink.json', (d) => (delete d.uplink_message.session_key_id, (d.correlation_ids = ['gs:conn:x', 7])))));
    expect(noCorrelation.dedupKey).toBe('tts:orchard-sensors/soil-probe-07:1337:2025-03-14T07:42:18.695120437Z');
  });

  it.each([
    ['not an object', () => readTtsMessage([1, 2]), 'ERR_INVALID_MESSAGE', undefined],
    ['null', () => readTtsMessage(null), 'ERR_INVALID_MESSAGE', undefined],
    ['no known message', () => readTtsMessage({ end_device_ids: {} }), 'ERR_UNKNOWN_TYPE', undefined],
    ['no end_device_ids', () => readTtsMessage(edited('tts-uplink.json', (d) => delete d.end_device_ids)), 'ERR_INVALID_FIELD', 'end_device_ids'],
    ['no application ID', () => readTtsMessage(edited('tts-uplink.json', (d) => delete d.end_device_ids.application_ids)), 'ERR_INVALID_FIELD', 'end_device_ids.application_ids'],
    ['a numeric device ID', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.end_device_ids.device_id = 7))), 'ERR_INVALID_FIELD', 'end_device_ids.device_id'],
    ['a device ID over 36 characters', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.end_device_ids.device_id = 'd'.repeat(37)))), 'ERR_INVALID_FIELD', 'end_device_ids.device_id'],
    ['an uplink_message that is not an object', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message = 'up'))), 'ERR_INVALID_FIELD', 'uplink_message'],
    ['f_cnt as text', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.f_cnt = '1337'))), 'ERR_INVALID_FIELD', 'uplink_message.f_cnt'],
    ['f_port over 255', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.f_port = 256))), 'ERR_INVALID_FIELD', 'uplink_message.f_port'],
    ['bad base64', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.frm_payload = 'AXs*5gwf'))), 'ERR_INVALID_BASE64', 'uplink_message.frm_payload'],
    ['unpadded base64', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.frm_payload = 'AXsA5g'))), 'ERR_INVALID_BASE64', 'uplink_message.frm_payload'],
    ['a frame longer than LoRaWAN allows', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.frm_payload = 'A'.repeat(400)))), 'ERR_PAYLOAD_TOO_LARGE', 'uplink_message.frm_payload'],
    ['rx_metadata not a list', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.rx_metadata = {}))), 'ERR_INVALID_FIELD', 'uplink_message.rx_metadata'],
    ['a huge rx_metadata', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.rx_metadata = Array(5000).fill(d.uplink_message.rx_metadata[0])))), 'ERR_PAYLOAD_TOO_LARGE', 'uplink_message.rx_metadata'],
    ['a reception that is not an object', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.rx_metadata[1] = 5))), 'ERR_INVALID_FIELD', 'uplink_message.rx_metadata[1]'],
    ['a reception without gateway ID', () => readTtsMessage(edited('tts-uplink.json', (d) => delete d.uplink_message.rx_metadata[0].gateway_ids.gateway_id)), 'ERR_INVALID_FIELD', 'uplink_message.rx_metadata[0].gateway_ids.gateway_id'],
    ['an RSSI as text', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.rx_metadata[1].rssi = '-112'))), 'ERR_INVALID_FIELD', 'uplink_message.rx_metadata[1].rssi'],
    ['a decoded payload that is a list', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.decoded_payload = [1]))), 'ERR_INVALID_FIELD', 'uplink_message.decoded_payload'],
    ['a bad reception time', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.received_at = 'yesterday'))), 'ERR_INVALID_FIELD', 'uplink_message.received_at'],
    ['a DevEUI that is not hex', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.end_device_ids.dev_eui = '70B3D57ED0061AZZ'))), 'ERR_INVALID_FIELD', 'end_device_ids.dev_eui'],
    ['over 100 correlation IDs', () => readTtsMessage(edited('tts-uplink.json', (d) => (delete d.uplink_message.session_key_id, (d.correlation_ids = Array(101).fill('x'))))), 'ERR_PAYLOAD_TOO_LARGE', 'correlation_ids'],
  ])('refuses %s, naming the field', (_what, read, code, field) => {
    expect(thrownRelayError(read, code as RelayErrorCode).field).toBe(field);
  });

  it('says which messages it knows when it finds none', () => {
    expect(thrownRelayError(() => readTtsMessage({}), 'ERR_UNKNOWN_TYPE').message).toBe(`the body holds no message of The Things Stack: expected uplink_message or one of ${TTS_EVENTS.join(', ')}`);
  });
});

describe('other messages of The Things Stack', () => {
  it('read as events, their device read only on demand', () => {
    const m = readTtsMessage(fixture('tts-join-accept.json'));
    if (m.kind !== 'event') throw new Error('expected an event');
    expect(m.event).toBe('join_accept');
    expect(m.body).toEqual(fixture('tts-join-accept.json'));
    expect(m.resolve().device).toMatchObject({ deviceId: 'soil-probe-07', applicationId: 'orchard-sensors', devEui: '70b3d57ed0061a2c' });
    // An acknowledged event needs no device identifiers at all; resolving it does.
    const ack = readTtsMessage({ downlink_ack: {} });
    if (ack.kind !== 'event') throw new Error('expected an event');
    expect(thrownRelayError(() => ack.resolve(), 'ERR_INVALID_FIELD').field).toBe('end_device_ids');
  });

  it('key deduplication on the event and a digest of the whole body', () => {
    const body = fixture('tts-join-accept.json');
    const m = readTtsMessage(body);
    if (m.kind !== 'event') throw new Error('expected an event');
    expect(m.resolve().dedupKey).toBe(`tts:join_accept:${createHash('sha256').update(JSON.stringify(body)).digest('hex')}`);
  });
});

describe('digestOf', () => {
  it('is the SHA-256 of the JSON text, and refuses a body nested too deeply to write out', () => {
    expect(digestOf({ a: 1 })).toBe(createHash('sha256').update('{"a":1}').digest('hex'));
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 100_000; i++) deep = { a: deep };
    expect(thrownRelayError(() => digestOf(deep), 'ERR_INVALID_MESSAGE').message).toBe('the body is nested too deeply');
  });
});

describe('timeAt', () => {
  it('takes an ISO 8601 time, nothing for absent or empty, and refuses anything else', () => {
    expect(timeAt({ t: '2025-03-14T07:42:18Z' }, 't', 'x.t')).toBe('2025-03-14T07:42:18Z');
    expect(timeAt({}, 't', 'x.t')).toBeUndefined();
    expect(timeAt({ t: '' }, 't', 'x.t')).toBeUndefined();
    expect(thrownRelayError(() => timeAt({ t: 'soon' }, 't', 'x.t'), 'ERR_INVALID_FIELD')).toMatchObject({ field: 'x.t', message: 'x.t must be an ISO 8601 time' });
    expect(thrownRelayError(() => timeAt({ t: '2'.repeat(65) }, 't', 'x.t'), 'ERR_INVALID_FIELD').message).toMatch(/at most 64 characters/);
  });
});
