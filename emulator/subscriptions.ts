/**
 * Which subscriptions the bridge grants (docs/protocol.md §2). A client may subscribe to its own config and
 * commands topics, a gateway also to those of devices it attached and to its own errors topic. Requested QoS 2 is
 * granted as QoS 1; the errors topic is QoS 0 only. A topic outside `/devices/` closes the connection; an IoT Core
 * topic the client may not subscribe to gets 0x80 in the SUBACK, with an error on the errors topic when a gateway
 * names a device it has not attached or a malformed topic.
 *
 * @example
 * grantedQos('/devices/gw-1/errors', 1); // 0
 * decideSubscription(connection, '/devices/pump-1/config'); // { outcome: 'grant' } once pump-1 is attached
 */
import type { QoS } from 'mqtt-packet';
import { parseTopic } from '../lib/iotcore/topics.js';
import type { GatewayErrorReport } from './errors-topic.js';
import { topicFilterProblem } from './faults.js';

export type SubscriptionVerdict =
  | { outcome: 'grant' }
  /** SUBACK 0x80, and possibly an error for the gateway. */
  | { outcome: 'reject'; reason: string; error?: Omit<GatewayErrorReport, 'packet'> }
  | { outcome: 'close'; reason: string };

/** What a subscription decision looks at. */
export interface Subscriber {
  readonly deviceId: string;
  isGateway(): boolean;
  actsFor(deviceId: string): boolean;
  readonly ctx: { readonly options: { readonly commandSubfolderSubscriptions: boolean } };
}

/** The QoS granted for a requested one; depends on the topic only. */
export function grantedQos(topic: string, requested: QoS): QoS {
  const parsed = parseTopic(topic);
  // [CB-GW], "Troubleshooting": the errors topic is subscribed with QoS 0; a higher request is granted 0.
  if (parsed !== undefined && !('malformed' in parsed) && parsed.kind === 'errors') return 0;
  // [CB-MQTT]: a QoS 2 subscription is granted QoS 1.
  return requested === 2 ? 1 : requested;
}

export function decideSubscription(subscriber: Subscriber, topic: string): SubscriptionVerdict {
  const parsed = parseTopic(topic);
  if (parsed === undefined) return { outcome: 'close', reason: `SUBSCRIBE to ${topic}, which is not an IoT Core topic` };
  const gateway = subscriber.isGateway();
  if ('malformed' in parsed) {
    const reason = `SUBSCRIBE to a malformed device topic ${topic}: ${parsed.malformed}`;
    if (!gateway) return { outcome: 'close', reason };
    return {
      outcome: 'reject',
      reason,
      error: {
        type: 'GATEWAY_INVALID_MQTT_TOPIC',
        deviceId: topic.split('/')[2] ?? '',
        description: `The topic '${topic}' is not a valid device topic: ${parsed.malformed}.`,
      },
    };
  }
  const own = parsed.deviceId === subscriber.deviceId;
  switch (parsed.kind) {
    case 'errors':
      if (own && gateway) return { outcome: 'grant' };
      return { outcome: 'reject', reason: `only a gateway may subscribe to its own errors topic (${topic})` };
    case 'config':
    case 'commands': {
      if (parsed.kind === 'commands' && parsed.subfolder !== '#') {
        // [G-CMD]: only /commands/# is supported; ClearBlade's node sample suggests specific subfolders work too.
        if (!subscriber.ctx.options.commandSubfolderSubscriptions) {
          return { outcome: 'reject', reason: `only /devices/{id}/commands/# can be subscribed to (${topic})` };
        }
        const problem = topicFilterProblem(topic);
        if (problem !== undefined) return { outcome: 'reject', reason: `${topic} ${problem}` };
      }
      if (subscriber.actsFor(parsed.deviceId)) return { outcome: 'grant' };
      if (!gateway) return { outcome: 'reject', reason: `${subscriber.deviceId} may not subscribe to another device's topic ${topic}` };
      return {
        outcome: 'reject',
        reason: `${parsed.deviceId} is not attached`,
        error: {
          type: 'GATEWAY_DEVICE_NOT_FOUND',
          deviceId: parsed.deviceId,
          description: `Device '${parsed.deviceId}' is not attached to gateway '${subscriber.deviceId}'.`,
        },
      };
    }
    default:
      // events, state, attach, detach: the client publishes there, it does not subscribe.
      return { outcome: 'reject', reason: `${parsed.kind} topics cannot be subscribed to (${topic})` };
  }
}
