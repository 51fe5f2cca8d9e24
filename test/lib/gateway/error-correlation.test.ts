import { describe, expect, it } from 'vitest';
import { correlateGatewayError, GATEWAY_ERROR_CODES, gatewayErrorReason, type SentPacket } from '../../../lib/gateway/error-correlation.js';
import { GATEWAY_ERROR_TYPES, parseGatewayError } from '../../../lib/iotcore/gateway-error.js';

const attach: SentPacket = { kind: 'attach', deviceId: 'pump-1', topic: '/devices/pump-1/attach' };
const e1: SentPacket = { kind: 'publish', deviceId: 'pump-1', topic: '/devices/pump-1/events', unit: 0 };
const e2: SentPacket = { kind: 'publish', deviceId: 'pump-1', topic: '/devices/pump-1/events', unit: 1 };
const s1: SentPacket = { kind: 'publish', deviceId: 'pump-2', topic: '/devices/pump-2/state', unit: 2 };

const sent = {
  byPacketId: new Map<number, SentPacket>([
    [10, attach],
    [11, e1],
    [12, e2],
    [13, s1],
  ]),
  byTopic: new Map<string, SentPacket[]>([
    [attach.topic, [attach]],
    [e1.topic, [e1, e2]],
    [s1.topic, [s1]],
  ]),
  devices: new Set(['pump-1', 'pump-2']),
};

const error = (o: Record<string, unknown>) => parseGatewayError(JSON.stringify({ error_type: 'GATEWAY_DEVICE_NOT_FOUND', description: 'd', ...o }))!;

describe('correlateGatewayError', () => {
  it('matches by packet ID first', () => {
    const m = correlateGatewayError(error({ device_id: 'pump-1', mqtt_message_info: { message_type: 'PUBLISH', topic: e2.topic, packet_id: 12 } }), sent);
    expect(m).toEqual({ by: 'packet', packets: [e2] });
  });

  it('reads the flat shape the same way', () => {
    const m = correlateGatewayError(error({ device_id: 'pump-2', message_type: 'PUBLISH', topic: s1.topic, packet_id: 13 }), sent);
    expect(m).toEqual({ by: 'packet', packets: [s1] });
  });

  it('falls back to the topic when the packet ID names another topic (a reused identifier)', () => {
    const m = correlateGatewayError(error({ device_id: 'pump-1', mqtt_message_info: { topic: e1.topic, packet_id: 13 } }), sent);
    expect(m).toEqual({ by: 'topic', packets: [e1, e2] });
  });

  it('falls back to the topic when the packet ID is 0 or unknown', () => {
    expect(correlateGatewayError(error({ mqtt_message_info: { topic: s1.topic, packet_id: 0 } }), sent)).toEqual({ by: 'topic', packets: [s1] });
    expect(correlateGatewayError(error({ mqtt_message_info: { topic: s1.topic, packet_id: 999 } }), sent)).toEqual({ by: 'topic', packets: [s1] });
  });

  it('falls back to the device ID, or the device in a topic it never sent to', () => {
    expect(correlateGatewayError(error({ error_type: 'GATEWAY_DETACHMENT_DEVICE_ERROR', device_id: 'pump-2' }), sent)).toEqual({ by: 'device', deviceId: 'pump-2' });
    expect(correlateGatewayError(error({ mqtt_message_info: { topic: '/devices/pump-1/config' } }), sent)).toEqual({ by: 'device', deviceId: 'pump-1' });
  });

  it('matches nothing for a device of no packet of this session', () => {
    expect(correlateGatewayError(error({ device_id: 'other-device' }), sent)).toEqual({ by: 'none' });
    expect(correlateGatewayError(error({}), sent)).toEqual({ by: 'none' });
  });

  it('a packet ID naming a different device is not trusted', () => {
    const m = correlateGatewayError(error({ device_id: 'pump-2', mqtt_message_info: { packet_id: 11 } }), sent);
    expect(m).toEqual({ by: 'device', deviceId: 'pump-2' });
  });
});

describe('GATEWAY_ERROR_CODES', () => {
  it('maps every documented error type to a code', () => {
    for (const type of GATEWAY_ERROR_TYPES) expect(GATEWAY_ERROR_CODES[type]).toMatch(/^ERR_/);
    expect(GATEWAY_ERROR_CODES.GATEWAY_ATTACHMENT_ERROR).toBe('ERR_ATTACH_REJECTED');
    expect(GATEWAY_ERROR_CODES.GATEWAY_DEVICE_NOT_FOUND).toBe('ERR_DEVICE_NOT_FOUND');
  });

  it('keeps reasons short and names the raw type', () => {
    const long = error({ error_type: 'SOMETHING_NEW', description: 'x'.repeat(2000) });
    expect(gatewayErrorReason(long).startsWith('SOMETHING_NEW: ')).toBe(true);
    expect(gatewayErrorReason(long).length).toBeLessThan(400);
  });
});
