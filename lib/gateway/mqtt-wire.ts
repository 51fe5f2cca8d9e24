/**
 * The two byte-level paths of the MQTT link that run once per record, written out because mqtt-packet's general
 * ones cost several times more there (measured in a fresh process, where a session's first 10,000 PUBACKs through
 * its parser took about 100 ms and its QoS 1 PUBLISH encoder about 24 ms):
 *
 * - `encodeQos1Publish`: a QoS 1 PUBLISH of MQTT 3.1.1 (§3.3), no DUP, no RETAIN.
 * - `nextFrame`: where the next whole packet in a buffer ends, from the fixed header (§2.2), so that the link can
 *   read a 3.1.1 PUBACK (four bytes, §3.4) itself and hand every other packet, whole, to mqtt-packet's parser.
 *
 * test/lib/gateway/mqtt-wire.test.ts checks both against mqtt-packet's `generate` and `parser` for random inputs.
 *
 * @example
 * encodeQos1Publish('/devices/pump-1/events', Buffer.from('21.5'), 7); // <Buffer 32 1c 00 16 2f 64 ... 00 07 32 31 2e 35>
 * nextFrame(Buffer.from([0x40, 0x02, 0x00, 0x07]), 0); // { start: 0, end: 4 }
 */

/** The largest remaining length the four bytes of its encoding can say (§2.2.3). */
export const MAX_REMAINING_LENGTH = 268_435_455;

export function encodeQos1Publish(topic: string, payload: Buffer, packetId: number): Buffer {
  const topicBytes = Buffer.byteLength(topic, 'utf8');
  const remaining = 2 + topicBytes + 2 + payload.length;
  if (remaining > MAX_REMAINING_LENGTH) throw new RangeError(`a PUBLISH of ${remaining} bytes is larger than MQTT allows`);
  const headerBytes = remaining < 0x80 ? 2 : remaining < 0x4000 ? 3 : remaining < 0x200000 ? 4 : 5;
  const out = Buffer.allocUnsafe(headerBytes + remaining);
  out[0] = 0x32; // PUBLISH, QoS 1
  let at = 1;
  let rest = remaining;
  do {
    let digit = rest % 0x80;
    rest = Math.floor(rest / 0x80);
    if (rest > 0) digit |= 0x80;
    out[at++] = digit;
  } while (rest > 0);
  out.writeUInt16BE(topicBytes, at);
  at += 2;
  at += out.write(topic, at, 'utf8');
  out.writeUInt16BE(packetId, at);
  payload.copy(out, at + 2);
  return out;
}

/**
 * The next whole packet of `buffer` from `offset`: its bounds, undefined when the buffer ends inside it, or
 * 'malformed' when its remaining length takes more than four bytes.
 */
export function nextFrame(buffer: Buffer, offset: number): { start: number; end: number } | undefined | 'malformed' {
  let remaining = 0;
  let multiplier = 1;
  let at = offset + 1;
  for (let i = 0; ; i++) {
    if (i === 4) return 'malformed';
    if (at >= buffer.length) return undefined;
    const digit = buffer[at++]!;
    remaining += (digit & 0x7f) * multiplier;
    multiplier *= 0x80;
    if ((digit & 0x80) === 0) break;
  }
  const end = at + remaining;
  return end <= buffer.length ? { start: offset, end } : undefined;
}

/** Whether the frame is an MQTT 3.1.1 PUBACK (type 4, flags 0, remaining length 2); its packet ID then follows. */
export function isPlainPuback(buffer: Buffer, frame: { start: number; end: number }): boolean {
  return buffer[frame.start] === 0x40 && frame.end - frame.start === 4;
}
