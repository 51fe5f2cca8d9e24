/**
 * Commands (docs/protocol.md §2, "Commands"): delivered only to a client connected and subscribed at the moment
 * of sending, never stored or queued. The topic is `/devices/{id}/commands` without a subfolder, else
 * `/devices/{id}/commands/{subfolder}`. A gateway receives the commands of devices it attached, if it subscribed
 * for them. The QoS is the one the subscription was granted; at QoS 1 the command is resent until PUBACKed
 * (`commandResendMs`, BridgeConnection.commandSent).
 *
 * @example
 * deliverCommand(connections, 'demo-registry', 'pump-0001', 'valves/close', Buffer.from('now')); // false: no subscriber
 */
import { MAX_COMMAND_BYTES } from '../lib/iotcore/limits.js';
import { subfolderProblem } from '../lib/iotcore/topics.js';
import type { BridgeConnection } from './connection.js';
import { topicMatches } from './faults.js';
import { ApiError } from './registry.js';

/** The topic a command is published on; an empty subfolder is no subfolder. */
export function commandTopic(deviceId: string, subfolder: string | undefined): string {
  return subfolder === undefined || subfolder === '' ? `/devices/${deviceId}/commands` : `/devices/${deviceId}/commands/${subfolder}`;
}

/**
 * Publishes a command to every connection subscribed for the device; true if at least one got it. Throws
 * INVALID_ARGUMENT for a subfolder with `+`, `#`, NUL or an empty level, or a payload over 256 KB.
 */
export function deliverCommand(
  connections: Iterable<BridgeConnection>,
  registryId: string,
  deviceId: string,
  subfolder: string | undefined,
  payload: Buffer,
): boolean {
  if (subfolder !== undefined && subfolder !== '') {
    const problem = subfolderProblem(subfolder);
    if (problem !== undefined) throw new ApiError('INVALID_ARGUMENT', `subfolder ${problem}`);
  }
  if (payload.length > MAX_COMMAND_BYTES) throw new ApiError('INVALID_ARGUMENT', `a command is at most ${MAX_COMMAND_BYTES} bytes`);
  const topic = commandTopic(deviceId, subfolder);
  let delivered = false;
  for (const conn of connections) {
    if (conn.closed || conn.registryId !== registryId || !conn.actsFor(deviceId)) continue;
    let qos: 0 | 1 | undefined;
    for (const [filter, granted] of conn.subscriptions) {
      if (topicMatches(filter, topic)) qos = Math.max(qos ?? 0, granted) as 0 | 1;
    }
    if (qos === undefined) continue;
    if (qos === 1) {
      const packet = { cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false, messageId: conn.nextMessageId() } as const;
      conn.send(packet);
      conn.commandSent(packet);
    } else {
      conn.send({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false });
    }
    conn.log(`command delivered on ${topic} (QoS ${qos})`);
    delivered = true;
  }
  return delivered;
}
