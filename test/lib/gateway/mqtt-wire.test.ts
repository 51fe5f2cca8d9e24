import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { generate, parser, type Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { encodeQos1Publish, isPlainPuback, MAX_REMAINING_LENGTH, nextFrame } from '../../../lib/gateway/mqtt-wire.js';

const packetId = fc.integer({ min: 1, max: 0xffff });
// Topics with multi-byte characters too: the topic length is in bytes, not characters.
const topic = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 300 });
// Payload sizes across every width of the remaining length (1, 2, 3 and 4 bytes); large ones are filled with one
// random byte, which keeps generating them cheap.
const payload = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.tuple(fc.constantFrom(120, 16_370, 16_400, 2_097_140, 2_097_200), fc.integer({ min: 0, max: 255 })).map(([size, byte]) => new Uint8Array(size).fill(byte)),
);

describe('encodeQos1Publish', () => {
  it("is byte for byte what mqtt-packet's generate makes of the same QoS 1 PUBLISH", () => {
    fc.assert(
      fc.property(topic, payload, packetId, (t, p, id) => {
        const bytes = Buffer.from(p);
        const expected = generate({ cmd: 'publish', topic: t, payload: bytes, qos: 1, retain: false, dup: false, messageId: id });
        expect(encodeQos1Publish(t, bytes, id).equals(expected)).toBe(true);
      }),
      { numRuns: 40 },
    );
  });

  it("reads back through mqtt-packet's parser as the same topic, payload and packet ID", () => {
    const packets: Packet[] = [];
    const p = parser({ protocolVersion: 4 });
    p.on('packet', (packet: Packet) => packets.push(packet));
    p.parse(encodeQos1Publish('/devices/pump-é/events/a', Buffer.from('21.5'), 65535));
    expect(packets).toEqual([expect.objectContaining({ cmd: 'publish', qos: 1, dup: false, retain: false, topic: '/devices/pump-é/events/a', messageId: 65535, payload: Buffer.from('21.5') })]);
  });

  it('refuses a PUBLISH larger than the remaining length can say', () => {
    const huge = { length: MAX_REMAINING_LENGTH } as Buffer;
    expect(() => encodeQos1Publish('/t', huge, 1)).toThrow(/larger than MQTT allows/);
  });
});

describe('nextFrame', () => {
  const anyPacket = fc.oneof(
    fc.record({ cmd: fc.constant('puback' as const), messageId: packetId }),
    fc.record({ cmd: fc.constant('suback' as const), messageId: packetId, granted: fc.array(fc.constantFrom(0, 1, 0x80), { minLength: 1, maxLength: 3 }) }),
    fc.record({ cmd: fc.constant('publish' as const), topic, payload: payload.map((b) => Buffer.from(b)), qos: fc.constantFrom(0 as const, 1 as const), messageId: packetId, retain: fc.constant(false), dup: fc.constant(false) }),
    fc.record({ cmd: fc.constant('connack' as const), returnCode: fc.integer({ min: 0, max: 5 }), sessionPresent: fc.boolean() }),
    fc.constant({ cmd: 'pingresp' as const }),
  );

  it('cuts any stream of packets, split anywhere, into exactly the packets mqtt-packet parses from it', () => {
    fc.assert(
      fc.property(fc.array(anyPacket, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (list, cuts) => {
        const wire = Buffer.concat(list.map((packet) => generate(packet as Packet)));
        const expected: Packet[] = [];
        const reference = parser({ protocolVersion: 4 });
        reference.on('packet', (packet: Packet) => expected.push(packet));
        reference.parse(wire);

        // The link's way: chunks as they might arrive, frames cut by nextFrame, each frame parsed on its own.
        const points = [...new Set(cuts.map((c) => c % wire.length))].sort((a, b) => a - b);
        const chunks = [...points, wire.length].map((end, i, all) => wire.subarray(i === 0 ? 0 : all[i - 1]!, end));
        const got: Packet[] = [];
        const framed = parser({ protocolVersion: 4 });
        framed.on('packet', (packet: Packet) => got.push(packet));
        let partial: Buffer | undefined;
        for (const chunk of chunks) {
          const buffer = partial === undefined ? chunk : Buffer.concat([partial, chunk]);
          partial = undefined;
          let offset = 0;
          while (offset < buffer.length) {
            const frame = nextFrame(buffer, offset);
            expect(frame).not.toBe('malformed');
            if (frame === undefined || frame === 'malformed') {
              partial = buffer.subarray(offset);
              break;
            }
            if (isPlainPuback(buffer, frame)) got.push({ cmd: 'puback', messageId: buffer.readUInt16BE(frame.start + 2) } as Packet);
            else framed.parse(buffer.subarray(frame.start, frame.end));
            offset = frame.end;
          }
        }
        expect(partial).toBeUndefined();
        const shape = (p: Packet): unknown => ({ cmd: p.cmd, messageId: p.messageId, ...(p.cmd === 'publish' ? { topic: p.topic, payload: createHash('sha256').update(p.payload).digest('hex') } : {}), ...(p.cmd === 'suback' ? { granted: p.granted } : {}) });
        expect(got.map(shape)).toEqual(expected.map(shape));
      }),
      { numRuns: 40 },
    );
  });

  it('says a packet is incomplete until its last byte, and malformed past four length bytes', () => {
    const puback = generate({ cmd: 'puback', messageId: 258 });
    for (let n = 1; n < puback.length; n++) expect(nextFrame(puback.subarray(0, n), 0)).toBeUndefined();
    expect(nextFrame(puback, 0)).toEqual({ start: 0, end: 4 });
    expect(isPlainPuback(puback, { start: 0, end: 4 })).toBe(true);
    expect(nextFrame(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), 0)).toBe('malformed');
    // A four-byte length is the most there is, and is read whole.
    expect(nextFrame(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), 0)).toBeUndefined();
  });

  it('does not take an MQTT 5 PUBACK with a reason code, or another four-byte packet, for a plain PUBACK', () => {
    const v5 = generate({ cmd: 'puback', messageId: 9, reasonCode: 0x10 }, { protocolVersion: 5 });
    expect(isPlainPuback(v5, nextFrame(v5, 0) as { start: number; end: number })).toBe(false);
    const unsuback = generate({ cmd: 'unsuback', messageId: 9, granted: [] });
    expect(isPlainPuback(unsuback, nextFrame(unsuback, 0) as { start: number; end: number })).toBe(false);
  });
});
