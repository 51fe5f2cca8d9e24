/**
 * MQTT 5.0 on the emulated bridge (the `mqtt5` option). aedes speaks 3.1.1 only, so a 5.0 connection is carried
 * over it in 3.1.1 form: the packet tap (packet-tap.ts) hands aedes the client's packets without their 5.0 parts
 * (properties, subscription options), and turns every packet that leaves for the client into its 5.0 form here:
 *
 * - CONNACK: the 3.1.1 return code becomes the 5.0 reason code of the same meaning (MQTT 5.0 §3.2.2.2);
 * - SUBACK: a refused subscription (0x80 in 3.1.1) is 0x87, Not authorized: the bridge refuses topics a client
 *   may not use, never for lack of resources;
 * - UNSUBACK: one Success reason code per topic of the UNSUBSCRIBE (5.0 requires them, 3.1.1 has none);
 * - PUBACK: Success unless the connection gave a reason code; a refusal carries a reason string (§3.4.2.2.2).
 *
 * A publish the bridge refuses without closing (a device the gateway has not attached, a failed attach, a device
 * detached for its state rate) is answered on 3.1.1 by silence plus an errors-topic message; on 5.0 the same
 * errors-topic message goes out, and the PUBACK carries the refusal (`PublishRefusal`). Where the bridge is set to
 * acknowledge failures (`ackFailedAttach`, `ackFailedPublish`) the PUBACK is a plain Success on 5.0 too: a bridge
 * that acknowledges before it knows has no reason code to give.
 *
 * @example
 * toVersion5({ cmd: 'connack', returnCode: 4, sessionPresent: false }, 1); // { cmd: 'connack', reasonCode: 0x86, ... }
 */
import type { Packet } from 'mqtt-packet';

/** MQTT 5.0 PUBACK reason codes the bridge gives a refused publish (§3.4.2.1). */
export const PUBACK_REFUSAL = {
  /** The packet was valid, but the bridge does not act on it for this gateway (a device it did not attach). */
  notAuthorized: 0x87,
  topicNameInvalid: 0x90,
  quotaExceeded: 0x97,
} as const;

/** Why the bridge did not take a publish it answers without closing the connection. */
export interface PublishRefusal {
  reasonCode: (typeof PUBACK_REFUSAL)[keyof typeof PUBACK_REFUSAL];
  reason: string;
  /**
   * Whether the bridge acknowledges this failure with a plain PUBACK all the same (`ackFailedAttach`), on 3.1.1 and
   * 5.0 alike; otherwise 3.1.1 gets no PUBACK and 5.0 one with the reason code.
   */
  plainAck: boolean;
}

/** 3.1.1 CONNACK return codes (§3.2.2.3) and the 5.0 reason codes that mean the same. */
const CONNACK_REASON: Readonly<Record<number, number>> = {
  0: 0x00,
  1: 0x84, // Unsupported Protocol Version
  2: 0x85, // Client Identifier not valid
  3: 0x88, // Server unavailable
  4: 0x86, // Bad User Name or Password
  5: 0x87, // Not authorized
};

/** The largest reason string sent: a packet stays small, and a device's own words are never needed whole. */
const MAX_REASON_STRING = 200;

/**
 * The 5.0 form of a packet the bridge sends. `topicsUnsubscribed` is the number of topics of the UNSUBSCRIBE an
 * UNSUBACK answers. Packets without a 5.0 difference the bridge uses (PUBLISH, PINGRESP) pass unchanged.
 */
export function toVersion5(packet: Packet, topicsUnsubscribed = 1): Packet {
  switch (packet.cmd) {
    case 'connack': {
      const code = packet.reasonCode ?? CONNACK_REASON[packet.returnCode ?? 0] ?? 0x80;
      // Accepted: QoS 2 closes the connection ([CB-MQTT]), so the server's Maximum QoS is 1 (§3.2.2.3.4).
      return { cmd: 'connack', sessionPresent: packet.sessionPresent, reasonCode: code, ...(code === 0 ? { properties: { maximumQoS: 1 } } : {}) };
    }
    case 'suback':
      return { ...packet, granted: packet.granted.map((g) => (typeof g === 'number' && g >= 0x80 ? PUBACK_REFUSAL.notAuthorized : g)) };
    case 'unsuback':
      return { ...packet, granted: packet.granted ?? Array.from({ length: Math.max(1, topicsUnsubscribed) }, () => 0) };
    case 'puback':
      return { ...packet, reasonCode: packet.reasonCode ?? 0 };
    default:
      return packet;
  }
}

/** The PUBACK of a refused publish on a 5.0 connection. */
export function refusingPuback(messageId: number, refusal: PublishRefusal): Packet {
  const reasonString = refusal.reason.length > MAX_REASON_STRING ? `${refusal.reason.slice(0, MAX_REASON_STRING - 3)}...` : refusal.reason;
  return { cmd: 'puback', messageId, reasonCode: refusal.reasonCode, properties: { reasonString } };
}

/** The 3.1.1 form of a 5.0 client packet aedes handles (CONNECT, SUBSCRIBE, UNSUBSCRIBE): no properties. */
export function toVersion4(packet: Packet): Packet {
  const { properties: _dropped, ...rest } = packet as Packet & { properties?: unknown };
  if (rest.cmd === 'connect') return { ...rest, protocolVersion: 4, protocolId: 'MQTT' };
  if (rest.cmd === 'subscribe') return { ...rest, subscriptions: rest.subscriptions.map(({ topic, qos }) => ({ topic, qos })) };
  return rest as Packet;
}
