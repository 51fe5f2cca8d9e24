import { describe, expect, it } from 'vitest';
import { readChirpstackEvent } from '../../../lib/lorawan/chirpstack-event.js';
import { readTtsMessage } from '../../../lib/lorawan/tts-message.js';
import { bestGateway, envelopeOf, payloadOf, type LoraUplink } from '../../../lib/lorawan/uplink.js';
import { thrownRelayError } from '../../helpers/relay-error.js';
import { DECODED, edited, fixture, FRAME, uplinkOf } from './lora-fixtures.js';

const bare = (changes: Partial<LoraUplink> = {}): LoraUplink => ({ kind: 'uplink', device: { tags: {} }, fPort: 1, fCnt: 0, payload: Buffer.alloc(0), gateways: [], dedupKey: 'k', ...changes });

describe('the same frame from both network servers', () => {
  const tts = uplinkOf(readTtsMessage(fixture('tts-uplink.json')));
  const chirpstack = uplinkOf(readChirpstackEvent('up', fixture('chirpstack-up.json')));

  it('makes the same envelope, radio values from the best gateway', () => {
    const strip = ({ gatewayId: _g, time: _t, ...rest }: ReturnType<typeof envelopeOf>) => rest;
    expect(strip(envelopeOf(tts))).toEqual({ payload: 'AXsA5gwf', fPort: 2, fCnt: 1337, rssi: -97, snr: 7.25 });
    expect(strip(envelopeOf(chirpstack))).toEqual(strip(envelopeOf(tts)));
    expect(envelopeOf(tts)).toMatchObject({ gatewayId: 'gw-orchard-north', time: '2025-03-14T07:42:18.695120437Z' });
    expect(envelopeOf(chirpstack).gatewayId).toBe('b827ebfffe61a2c1');
  });

  it('gives raw bytes, decoded JSON or the envelope as the payload modes say', () => {
    for (const u of [tts, chirpstack]) {
      expect(payloadOf(u, 'raw', 'x')).toEqual(FRAME);
      expect(JSON.parse(payloadOf(u, 'decoded', 'x').toString())).toEqual(DECODED);
      expect(JSON.parse(payloadOf(u, 'envelope', 'x').toString())).toEqual(envelopeOf(u));
    }
  });
});

describe('payloadOf', () => {
  it('refuses decoded mode for an uplink the network server decoded nothing of, naming where it would be', () => {
    const u = uplinkOf(readTtsMessage(edited('tts-uplink.json', (d) => delete d.uplink_message.decoded_payload)));
    const refusal = thrownRelayError(() => payloadOf(u, 'decoded', 'uplink_message.decoded_payload'), 'ERR_INVALID_FIELD');
    expect(refusal.field).toBe('uplink_message.decoded_payload');
    expect(refusal.message).toMatch(/^uplink_message.decoded_payload is missing: .*payload formatter or codec/);
    // Raw and envelope need no decoded payload.
    expect(payloadOf(u, 'raw', 'x')).toEqual(FRAME);
  });

  it('relays a decoded null as such, and refuses one nested too deeply to write out', () => {
    expect(payloadOf(bare({ decoded: null }), 'decoded', 'object').toString()).toBe('null');
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(thrownRelayError(() => payloadOf(bare({ decoded: deep }), 'decoded', 'object'), 'ERR_INVALID_FIELD')).toMatchObject({
      field: 'object',
      message: 'object is nested too deeply to relay',
    });
  });
});

describe('envelopeOf', () => {
  it('leaves out the time and the radio values nobody reported', () => {
    expect(envelopeOf(bare())).toEqual({ payload: '', fPort: 1, fCnt: 0 });
    expect(envelopeOf(bare({ gateways: [{ id: 'quiet' }] }))).toEqual({ payload: '', fPort: 1, fCnt: 0 });
    expect(envelopeOf(bare({ gateways: [{ id: 'g', snr: 3 }], time: 't' }))).toEqual({ payload: '', fPort: 1, fCnt: 0, time: 't', snr: 3, gatewayId: 'g' });
  });
});

describe('bestGateway', () => {
  it('is the one with the highest SNR, then the highest RSSI, and none without radio values', () => {
    expect(bestGateway([{ id: 'a', rssi: -60, snr: 2 }, { id: 'b', rssi: -110, snr: 9 }])?.id).toBe('b');
    expect(bestGateway([{ id: 'a', rssi: -80, snr: 5 }, { id: 'b', rssi: -70, snr: 5 }])?.id).toBe('b');
    expect(bestGateway([{ id: 'a', rssi: -70, snr: 5 }, { id: 'b', rssi: -70, snr: 5 }])?.id).toBe('a');
    expect(bestGateway([{ id: 'a' }])).toBeUndefined();
    expect(bestGateway([])).toBeUndefined();
  });

  it('ranks a gateway with an SNR above one without, and skips those that reported nothing', () => {
    expect(bestGateway([{ id: 'a', rssi: -40 }, { id: 'b', rssi: -120, snr: -20 }])?.id).toBe('b');
    expect(bestGateway([{ id: 'a' }, { id: 'b', rssi: -120 }, { id: 'c' }])?.id).toBe('b');
  });
});
