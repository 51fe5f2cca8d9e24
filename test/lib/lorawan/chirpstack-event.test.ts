import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CHIRPSTACK_EVENTS, readChirpstackEvent } from '../../../lib/lorawan/chirpstack-event.js';
import type { RelayErrorCode } from '../../../lib/errors.js';
import { thrownRelayError } from '../../helpers/relay-error.js';
import { edited, expectTheSampleFrame, fixture, uplinkOf } from './lora-fixtures.js';

describe('an up event of ChirpStack', () => {
  const chirpstack = uplinkOf(readChirpstackEvent('up', fixture('chirpstack-up.json')));

  it('reads the frame, its device with its tags, its gateways and time', () => {
    expectTheSampleFrame(chirpstack);
    expect(chirpstack.device).toEqual({
      deviceId: 'soil-probe-07',
      devEui: '70b3d57ed0061a2c',
      applicationId: '0b6c7e3a-2f94-4b1d-a8e5-93c0d6f21b77',
      tags: { site: 'orchard', row: '7' },
    });
    expect(chirpstack.gateways[0]).toEqual({ id: 'b827ebfffe61a2c1', rssi: -97, snr: 7.25 });
    expect(chirpstack.time).toBe('2025-03-14T07:42:18.695120437+00:00');
  });

  it('reads absent default values as zero or nothing', () => {
    const u = uplinkOf(
      readChirpstackEvent(
        'up',
        edited('chirpstack-up.json', (d) => {
          for (const key of ['fCnt', 'data', 'object', 'rxInfo', 'time']) delete d[key];
          delete d.deviceInfo.tags;
          delete d.deviceInfo.deviceName;
          delete d.deviceInfo.applicationId;
        }),
      ),
    );
    expect([u.fCnt, u.payload.byteLength, u.decoded, u.gateways, u.time]).toEqual([0, 0, undefined, [], undefined]);
    expect(u.device).toEqual({ devEui: '70b3d57ed0061a2c', tags: {} });
  });

  it('keys deduplication on the deduplication ID, or on DevEUI, session address and counter without one', () => {
    expect(chirpstack.dedupKey).toBe('cs:up:5f0c3a9e-7b41-4d2a-9c63-1e8f2b7d4a10');
    expect(uplinkOf(readChirpstackEvent('up', edited('chirpstack-up.json', (d) => delete d.deduplicationId))).dedupKey).toBe('cs:up:70b3d57ed0061a2c:260b4f1c:1337');
    expect(uplinkOf(readChirpstackEvent('up', edited('chirpstack-up.json', (d) => (delete d.deduplicationId, delete d.devAddr)))).dedupKey).toBe('cs:up:70b3d57ed0061a2c::1337');
  });

  it.each([
    ['no deviceInfo', (d: any) => delete d.deviceInfo, 'ERR_INVALID_FIELD', 'deviceInfo'],
    ['no DevEUI', (d: any) => delete d.deviceInfo.devEui, 'ERR_INVALID_FIELD', 'deviceInfo.devEui'],
    ['a DevEUI too short', (d: any) => (d.deviceInfo.devEui = '70b3d57e'), 'ERR_INVALID_FIELD', 'deviceInfo.devEui'],
    ['fCnt negative', (d: any) => (d.fCnt = -1), 'ERR_INVALID_FIELD', 'fCnt'],
    ['fPort a float', (d: any) => (d.fPort = 2.5), 'ERR_INVALID_FIELD', 'fPort'],
    ['data bad base64', (d: any) => (d.data = 'not base64!'), 'ERR_INVALID_BASE64', 'data'],
    ['data longer than any frame', (d: any) => (d.data = 'A'.repeat(344)), 'ERR_PAYLOAD_TOO_LARGE', 'data'],
    ['an object that is a list', (d: any) => (d.object = []), 'ERR_INVALID_FIELD', 'object'],
    ['a huge rxInfo', (d: any) => (d.rxInfo = Array(1000).fill(d.rxInfo[0])), 'ERR_PAYLOAD_TOO_LARGE', 'rxInfo'],
    ['a reception that is not an object', (d: any) => (d.rxInfo[1] = 'gw'), 'ERR_INVALID_FIELD', 'rxInfo[1]'],
    ['a gateway without ID', (d: any) => delete d.rxInfo[0].gatewayId, 'ERR_INVALID_FIELD', 'rxInfo[0].gatewayId'],
    ['an SNR as text', (d: any) => (d.rxInfo[0].snr = 'good'), 'ERR_INVALID_FIELD', 'rxInfo[0].snr'],
    ['a tag that is a number', (d: any) => (d.deviceInfo.tags.row = 7), 'ERR_INVALID_FIELD', 'deviceInfo.tags'],
    ['tags that are a list', (d: any) => (d.deviceInfo.tags = ['a']), 'ERR_INVALID_FIELD', 'deviceInfo.tags'],
    ['over 100 tags', (d: any) => (d.deviceInfo.tags = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`t${i}`, 'v']))), 'ERR_PAYLOAD_TOO_LARGE', 'deviceInfo.tags'],
    ['a session address over 8 characters', (d: any) => (delete d.deduplicationId, (d.devAddr = '260b4f1c0')), 'ERR_INVALID_FIELD', 'devAddr'],
    ['a bad time', (d: any) => (d.time = 'now'), 'ERR_INVALID_FIELD', 'time'],
  ])('refuses %s, naming the field', (_what, edit, code, field) => {
    expect(thrownRelayError(() => readChirpstackEvent('up', edited('chirpstack-up.json', edit)), code as RelayErrorCode).field).toBe(field);
  });

  it('names a bad tag by its key, cut short', () => {
    const message = thrownRelayError(() => readChirpstackEvent('up', edited('chirpstack-up.json', (d) => (d.deviceInfo.tags = { ['k'.repeat(60)]: 1 }))), 'ERR_INVALID_FIELD').message;
    expect(message).toBe(`deviceInfo.tags.${'k'.repeat(40)} must be a string`);
  });
});

describe('the event query parameter', () => {
  it('reads every other event by its name, the device only on demand', () => {
    const status = readChirpstackEvent('status', fixture('chirpstack-status.json'));
    if (status.kind !== 'event') throw new Error('expected an event');
    expect(status.event).toBe('status');
    expect(status.resolve().dedupKey).toBe('cs:status:a3d9e41c-0b57-4f3e-8d21-6c7b9e0f1a24');
    expect(readChirpstackEvent('join', fixture('chirpstack-join.json'))).toMatchObject({ kind: 'event', event: 'join' });
    const bare = readChirpstackEvent('log', { level: 'ERROR' });
    if (bare.kind !== 'event') throw new Error('expected an event');
    expect(thrownRelayError(() => bare.resolve(), 'ERR_INVALID_FIELD').field).toBe('deviceInfo');
  });

  it('keys an event without a deduplication ID on a digest of its body', () => {
    const body = edited('chirpstack-status.json', (d) => delete d.deduplicationId);
    const status = readChirpstackEvent('status', body);
    if (status.kind !== 'event') throw new Error('expected an event');
    expect(status.resolve().dedupKey).toBe(`cs:status:${createHash('sha256').update(JSON.stringify(body)).digest('hex')}`);
  });

  it('is required, and must name an event of the HTTP integration', () => {
    for (const missing of [undefined, '']) {
      expect(thrownRelayError(() => readChirpstackEvent(missing, fixture('chirpstack-up.json')), 'ERR_INVALID_FIELD')).toMatchObject({
        field: 'event',
        message: 'the event query parameter is missing (ChirpStack posts to <URL>?event=up, ?event=join...)',
      });
    }
    expect(thrownRelayError(() => readChirpstackEvent('uplink', fixture('chirpstack-up.json')), 'ERR_UNKNOWN_TYPE')).toMatchObject({
      field: 'event',
      message: `event "uplink" is not an event of ChirpStack's HTTP integration (${CHIRPSTACK_EVENTS.join(', ')})`,
    });
    expect(thrownRelayError(() => readChirpstackEvent('x'.repeat(500), {}), 'ERR_UNKNOWN_TYPE').message).toContain(`"${'x'.repeat(40)}"`);
  });

  it('comes with a body that is a JSON object', () => {
    expect(thrownRelayError(() => readChirpstackEvent('join', [1]), 'ERR_INVALID_MESSAGE').message).toBe('the body must be a JSON object (a ChirpStack join event)');
  });
});
