/**
 * Fuzzing what the bridge sends on a gateway's errors topic. `parseGatewayError` never throws: it returns
 * undefined for anything unusable, or a message whose fields have the types and bounds the session relies on.
 * Matching a parsed message against what a session sent (`correlateGatewayError`) never throws either, and only
 * ever names packets, topics and devices the session really sent.
 *
 * `FUZZ_RUNS=n` runs more cases; `FUZZ_SEED=n` replays a reported seed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { correlateGatewayError, type SentPacket } from '../../lib/gateway/error-correlation.js';
import { GATEWAY_ERROR_TYPES, parseGatewayError, type GatewayErrorMessage } from '../../lib/iotcore/gateway-error.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2_000);
const SEED = process.env.FUZZ_SEED === undefined ? 424_242 : Number(process.env.FUZZ_SEED);
const params = { numRuns: RUNS, seed: SEED };

function parseChecked(payload: Uint8Array | string): GatewayErrorMessage | undefined {
  let parsed: GatewayErrorMessage | undefined;
  expect(() => (parsed = parseGatewayError(payload))).not.toThrow();
  if (parsed === undefined) return undefined;
  expect(GATEWAY_ERROR_TYPES).toContain(parsed.errorType);
  expect(typeof parsed.rawErrorType).toBe('string');
  expect(parsed.rawErrorType.length).toBeLessThanOrEqual(128);
  expect(typeof parsed.description).toBe('string');
  expect(parsed.description.length).toBeLessThanOrEqual(4096);
  for (const [value, max] of [
    [parsed.deviceId, 255],
    [parsed.messageType, 64],
    [parsed.topic, 1024],
  ] as const) {
    if (value !== undefined) {
      expect(typeof value).toBe('string');
      expect(value.length).toBeLessThanOrEqual(max);
    }
  }
  if (parsed.packetId !== undefined) {
    expect(Number.isInteger(parsed.packetId)).toBe(true);
    expect(parsed.packetId).toBeGreaterThanOrEqual(0);
    expect(parsed.packetId).toBeLessThanOrEqual(65535);
  }
  return parsed;
}

const devices = ['pump-01', 'pump-02', 'gw-1', '__proto__', 'constructor'];
const topics = ['/devices/pump-01/events', '/devices/pump-01/attach', '/devices/pump-02/state', '/devices/gw-1/errors', '/devices/+/events', '#', '__proto__', ''];

const errorLike = fc.record(
  {
    error_type: fc.oneof(fc.constantFrom(...GATEWAY_ERROR_TYPES, 'GATEWAY_UNKNOWN_ERROR', '__proto__', '', 'x'.repeat(129)), fc.anything()),
    description: fc.oneof(fc.string(), fc.anything(), fc.constant('d'.repeat(5000))),
    device_id: fc.oneof(fc.constantFrom(...devices), fc.string(), fc.anything()),
    message_type: fc.oneof(fc.constantFrom('PUBLISH', 'SUBSCRIBE'), fc.anything()),
    topic: fc.oneof(fc.constantFrom(...topics), fc.anything()),
    packet_id: fc.oneof(fc.integer({ min: -2, max: 70_000 }), fc.double(), fc.anything()),
    mqtt_message_info: fc.oneof(
      fc.record(
        {
          message_type: fc.oneof(fc.constantFrom('PUBLISH'), fc.anything()),
          topic: fc.oneof(fc.constantFrom(...topics), fc.anything()),
          packet_id: fc.oneof(fc.integer({ min: -2, max: 70_000 }), fc.anything()),
        },
        { requiredKeys: [] },
      ),
      fc.anything(),
    ),
  },
  { requiredKeys: [] },
);

/** What a session might have sent, for the correlation to search. */
const sentPackets = fc.array(
  fc.record({ id: fc.integer({ min: 1, max: 20 }), kind: fc.constantFrom('attach', 'publish', 'detach', 'subscribe'), deviceId: fc.constantFrom(...devices), topic: fc.constantFrom(...topics) }),
  { maxLength: 12 },
);

describe('the errors topic under fuzzing', () => {
  it('any bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => void parseChecked(b)), params);
  });

  it('any text and any JSON value', () => {
    fc.assert(fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 400 }), fc.json({ maxDepth: 4 })), (s) => void parseChecked(s)), params);
  });

  it('objects shaped like error messages, with any field of any type; correlation names only what was sent', () => {
    let parsedCount = 0;
    fc.assert(
      fc.property(errorLike, sentPackets, (o, sent) => {
        const parsed = parseChecked(JSON.stringify(o));
        if (parsed === undefined) return;
        parsedCount++;
        const byPacketId = new Map<number, SentPacket>();
        const byTopic = new Map<string, SentPacket[]>();
        for (const p of sent) {
          const packet = (p.kind === 'publish' ? { kind: 'publish', deviceId: p.deviceId, topic: p.topic, unit: p.id } : { kind: p.kind, deviceId: p.deviceId, topic: p.topic }) as SentPacket;
          byPacketId.set(p.id, packet);
          byTopic.set(p.topic, [...(byTopic.get(p.topic) ?? []), packet]);
        }
        const deviceSet = new Set(sent.map((p) => p.deviceId));
        let match: ReturnType<typeof correlateGatewayError> | undefined;
        expect(() => (match = correlateGatewayError(parsed, { byPacketId, byTopic, devices: deviceSet }))).not.toThrow();
        const all = [...byPacketId.values(), ...[...byTopic.values()].flat()];
        if (match?.by === 'packet' || match?.by === 'topic') for (const p of match.packets) expect(all).toContain(p);
        if (match?.by === 'device') expect(deviceSet.has(match.deviceId)).toBe(true);
      }),
      params,
    );
    expect(parsedCount).toBeGreaterThan(0);
  });

  it('payloads past the size a bridge sends are dropped unread', () => {
    const big = JSON.stringify({ error_type: 'GATEWAY_DEVICE_NOT_FOUND', device_id: 'pump-01', description: 'x'.repeat(64 * 1024) });
    expect(parseGatewayError(big)).toBeUndefined();
  });
});
