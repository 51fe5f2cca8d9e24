/**
 * Reading the two network servers' webhook bodies: the fixtures hold the same frame (device soil-probe-07, port 2,
 * counter 1337, payload 01 7b 00 e6 0c 1f, heard by two gateways) as The Things Stack and as ChirpStack send it,
 * and both must read to the same uplink.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isRelayError, type RelayErrorCode } from '../../../lib/errors.js';
import { readChirpstackEvent } from '../../../lib/lorawan/chirpstack-event.js';
import { readTtsMessage } from '../../../lib/lorawan/tts-message.js';
import { bestGateway, envelopeOf, payloadOf, type LoraMessage, type LoraUplink } from '../../../lib/lorawan/uplink.js';

const fixture = (name: string): Record<string, unknown> => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;
const FRAME = Buffer.from('017b00e60c1f', 'hex');

function uplink(message: LoraMessage): LoraUplink {
  if (message.kind !== 'uplink') throw new Error(`expected an uplink, got the event ${message.event}`);
  return message;
}

function refusal(read: () => unknown): { code: RelayErrorCode; field: string | undefined; message: string } {
  try {
    read();
  } catch (e) {
    if (isRelayError(e)) return { code: e.code, field: e.field, message: e.message };
    throw e;
  }
  throw new Error('expected a refusal');
}

/** A deep copy of a fixture, changed by `edit`. */
function edited(name: string, edit: (doc: any) => void): Record<string, unknown> {
  const doc = fixture(name);
  edit(doc);
  return doc;
}

describe('the same frame from both network servers', () => {
  const tts = uplink(readTtsMessage(fixture('tts-uplink.json')));
  const chirpstack = uplink(readChirpstackEvent('up', fixture('chirpstack-up.json')));

  it('reads to the same device, port, counter, bytes and decoded payload', () => {
    for (const u of [tts, chirpstack]) {
      expect(u.payload).toEqual(FRAME);
      expect(u.fPort).toBe(2);
      expect(u.fCnt).toBe(1337);
      expect(u.decoded).toEqual({ moisture: 123, temperature: 23, battery_mv: 3103 });
      expect(u.device.deviceId).toBe('soil-probe-07');
      // Upper case from The Things Stack, lower case from ChirpStack: one spelling for templates.
      expect(u.device.devEui).toBe('70b3d57ed0061a2c');
      expect(u.gateways.map((g) => [g.rssi, g.snr])).toEqual([
        [-97, 7.25],
        [-112, -4.5],
      ]);
    }
    expect(tts.device.applicationId).toBe('orchard-sensors');
    expect(chirpstack.device.applicationId).toBe('0b6c7e3a-2f94-4b1d-a8e5-93c0d6f21b77');
    expect(chirpstack.device.tags).toEqual({ site: 'orchard', row: '7' });
    // The Network Server's reception time, not the gateway's.
    expect(tts.time).toBe('2025-03-14T07:42:18.695120437Z');
    expect(chirpstack.time).toBe('2025-03-14T07:42:18.695120437+00:00');
  });

  it('makes the same envelope, radio values from the best gateway', () => {
    const strip = ({ gatewayId: _g, time: _t, ...rest }: ReturnType<typeof envelopeOf>) => rest;
    expect(strip(envelopeOf(tts))).toEqual({ payload: 'AXsA5gwf', fPort: 2, fCnt: 1337, rssi: -97, snr: 7.25 });
    expect(strip(envelopeOf(chirpstack))).toEqual(strip(envelopeOf(tts)));
    expect(envelopeOf(tts).gatewayId).toBe('gw-orchard-north');
    expect(envelopeOf(chirpstack).gatewayId).toBe('b827ebfffe61a2c1');
    expect(JSON.parse(payloadOf(tts, 'envelope', 'x').toString())).toEqual(envelopeOf(tts));
  });

  it('gives raw bytes and decoded JSON as the payload modes say', () => {
    expect(payloadOf(tts, 'raw', 'x')).toEqual(FRAME);
    expect(JSON.parse(payloadOf(chirpstack, 'decoded', 'object').toString())).toEqual({ moisture: 123, temperature: 23, battery_mv: 3103 });
  });

  it('keys deduplication on the session and counter (TTS) and on the deduplication ID (ChirpStack)', () => {
    expect(tts.dedupKey).toBe('tts:orchard-sensors/soil-probe-07:AZGx7n2kQ0uV3rT9cW1yHg==:1337');
    expect(chirpstack.dedupKey).toBe('cs:up:5f0c3a9e-7b41-4d2a-9c63-1e8f2b7d4a10');
  });
});

describe('The Things Stack', () => {
  it('reads absent default values as zero and an absent payload as empty', () => {
    const u = uplink(
      readTtsMessage(
        edited('tts-uplink.json', (d) => {
          delete d.uplink_message.f_cnt;
          delete d.uplink_message.frm_payload;
          delete d.uplink_message.decoded_payload;
        }),
      ),
    );
    expect([u.fCnt, u.payload.byteLength, u.decoded]).toEqual([0, 0, undefined]);
    expect(() => payloadOf(u, 'decoded', 'uplink_message.decoded_payload')).toThrow(/uplink_message.decoded_payload is missing/);
  });

  it('falls back on the as:up correlation ID without a session key ID', () => {
    const u = uplink(readTtsMessage(edited('tts-uplink.json', (d) => delete d.uplink_message.session_key_id)));
    expect(u.dedupKey).toBe('tts:as:up:01J8Z4K6Q2WZ3M7X5V0B9N1C2D');
  });

  it('reads other messages as events, their device read only on demand', () => {
    const m = readTtsMessage(fixture('tts-join-accept.json'));
    expect(m.kind).toBe('event');
    if (m.kind !== 'event') return;
    expect(m.event).toBe('join_accept');
    expect(m.resolve().device).toMatchObject({ deviceId: 'soil-probe-07', applicationId: 'orchard-sensors', devEui: '70b3d57ed0061a2c' });
    // An acknowledged event needs no device identifiers at all.
    expect(readTtsMessage({ downlink_ack: {} }).kind).toBe('event');
  });

  it.each([
    ['not an object', () => readTtsMessage([1, 2]), 'ERR_INVALID_MESSAGE', undefined],
    ['no known message', () => readTtsMessage({ end_device_ids: {} }), 'ERR_UNKNOWN_TYPE', undefined],
    ['no end_device_ids', () => readTtsMessage(edited('tts-uplink.json', (d) => delete d.end_device_ids)), 'ERR_INVALID_FIELD', 'end_device_ids'],
    ['a numeric device ID', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.end_device_ids.device_id = 7))), 'ERR_INVALID_FIELD', 'end_device_ids.device_id'],
    ['f_cnt as text', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.f_cnt = '1337'))), 'ERR_INVALID_FIELD', 'uplink_message.f_cnt'],
    ['f_port over 255', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.f_port = 256))), 'ERR_INVALID_FIELD', 'uplink_message.f_port'],
    ['bad base64', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.frm_payload = 'AXs*5gwf'))), 'ERR_INVALID_BASE64', 'uplink_message.frm_payload'],
    ['unpadded base64', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.frm_payload = 'AXsA5g'))), 'ERR_INVALID_BASE64', 'uplink_message.frm_payload'],
    ['a frame longer than LoRaWAN allows', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.frm_payload = 'A'.repeat(400)))), 'ERR_PAYLOAD_TOO_LARGE', 'uplink_message.frm_payload'],
    ['rx_metadata not a list', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.rx_metadata = {}))), 'ERR_INVALID_FIELD', 'uplink_message.rx_metadata'],
    ['a huge rx_metadata', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.rx_metadata = Array(5000).fill(d.uplink_message.rx_metadata[0])))), 'ERR_PAYLOAD_TOO_LARGE', 'uplink_message.rx_metadata'],
    ['an RSSI as text', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.rx_metadata[1].rssi = '-112'))), 'ERR_INVALID_FIELD', 'uplink_message.rx_metadata[1].rssi'],
    ['a decoded payload that is a list', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.decoded_payload = [1]))), 'ERR_INVALID_FIELD', 'uplink_message.decoded_payload'],
    ['a bad reception time', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.uplink_message.received_at = 'yesterday'))), 'ERR_INVALID_FIELD', 'uplink_message.received_at'],
    ['a DevEUI that is not hex', () => readTtsMessage(edited('tts-uplink.json', (d) => (d.end_device_ids.dev_eui = '70B3D57ED0061AZZ'))), 'ERR_INVALID_FIELD', 'end_device_ids.dev_eui'],
  ])('refuses %s, naming the field', (_what, read, code, field) => {
    expect(refusal(read)).toMatchObject({ code, field });
  });
});

describe('ChirpStack', () => {
  it('reads every other event by its query name, and refuses unknown ones', () => {
    const status = readChirpstackEvent('status', fixture('chirpstack-status.json'));
    expect(status).toMatchObject({ kind: 'event', event: 'status' });
    if (status.kind === 'event') expect(status.resolve().dedupKey).toBe('cs:status:a3d9e41c-0b57-4f3e-8d21-6c7b9e0f1a24');
    expect(readChirpstackEvent('join', fixture('chirpstack-join.json'))).toMatchObject({ kind: 'event', event: 'join' });
    expect(refusal(() => readChirpstackEvent(undefined, fixture('chirpstack-up.json')))).toMatchObject({ code: 'ERR_INVALID_FIELD', field: 'event' });
    expect(refusal(() => readChirpstackEvent('uplink', fixture('chirpstack-up.json')))).toMatchObject({ code: 'ERR_UNKNOWN_TYPE', field: 'event' });
  });

  it('keys deduplication on DevEUI, session address and counter without a deduplication ID', () => {
    const u = uplink(readChirpstackEvent('up', edited('chirpstack-up.json', (d) => delete d.deduplicationId)));
    expect(u.dedupKey).toBe('cs:up:70b3d57ed0061a2c:260b4f1c:1337');
  });

  it.each([
    ['no deviceInfo', (d: any) => delete d.deviceInfo, 'ERR_INVALID_FIELD', 'deviceInfo'],
    ['no DevEUI', (d: any) => delete d.deviceInfo.devEui, 'ERR_INVALID_FIELD', 'deviceInfo.devEui'],
    ['fCnt negative', (d: any) => (d.fCnt = -1), 'ERR_INVALID_FIELD', 'fCnt'],
    ['fPort a float', (d: any) => (d.fPort = 2.5), 'ERR_INVALID_FIELD', 'fPort'],
    ['data bad base64', (d: any) => (d.data = 'not base64!'), 'ERR_INVALID_BASE64', 'data'],
    ['a huge rxInfo', (d: any) => (d.rxInfo = Array(1000).fill(d.rxInfo[0])), 'ERR_PAYLOAD_TOO_LARGE', 'rxInfo'],
    ['a gateway without ID', (d: any) => delete d.rxInfo[0].gatewayId, 'ERR_INVALID_FIELD', 'rxInfo[0].gatewayId'],
    ['a tag that is a number', (d: any) => (d.deviceInfo.tags.row = 7), 'ERR_INVALID_FIELD', 'deviceInfo.tags'],
  ])('refuses %s, naming the field', (_what, edit, code, field) => {
    expect(refusal(() => readChirpstackEvent('up', edited('chirpstack-up.json', edit)))).toMatchObject({ code, field });
  });
});

describe('best gateway', () => {
  it('is the one with the highest SNR, then the highest RSSI, and none without radio values', () => {
    expect(bestGateway([{ id: 'a', rssi: -60, snr: 2 }, { id: 'b', rssi: -110, snr: 9 }])?.id).toBe('b');
    expect(bestGateway([{ id: 'a', rssi: -80, snr: 5 }, { id: 'b', rssi: -70, snr: 5 }])?.id).toBe('b');
    expect(bestGateway([{ id: 'a' }])).toBeUndefined();
    expect(envelopeOf({ kind: 'uplink', device: { tags: {} }, fPort: 1, fCnt: 0, payload: Buffer.alloc(0), gateways: [], dedupKey: 'k' })).toEqual({ payload: '', fPort: 1, fCnt: 0 });
  });
});
