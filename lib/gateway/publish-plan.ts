/**
 * Turns a batch's telemetry into the PUBLISH packets a gateway session sends, in the order it sends them.
 *
 * - Records keep queue order: the session sends packets in plan order over one TCP stream, so the records of one
 *   device reach the bridge in the order they were queued.
 * - Several state records of one device are coalesced into one PUBLISH of the newest, at the newest's place. State
 *   is a "latest value" (the bridge keeps one current state per device and allows about one update per second,
 *   docs/protocol.md §4), so publishing the older ones would only spend that budget on values that are
 *   overwritten within the same second. The older records share the newest's fate: confirmed when it is confirmed,
 *   failed back with it otherwise, so a state is never reported delivered unless a newer one reached the bridge.
 *
 * @example
 * planPublishes([{ key: 'm1', deviceId: 'pump-1', kind: 'state', payload: a }, { key: 'm2', deviceId: 'pump-1', kind: 'state', payload: b }]);
 * // [{ keys: ['m2', 'm1'], topic: '/devices/pump-1/state', payload: b, ... }]
 */
import { RelayError } from '../errors.js';
import { eventsTopic, stateTopic } from '../iotcore/topics.js';

export interface PublishRequest {
  /** Identifies the record in results (the SQS message ID). Unique within a session. */
  key: string;
  deviceId: string;
  kind: 'event' | 'state';
  /** Events only. */
  subfolder?: string;
  payload: Buffer;
}

export interface PlannedPublish {
  /** keys[0] is the record whose payload is published; the rest are older state records coalesced into it. */
  keys: string[];
  deviceId: string;
  kind: 'event' | 'state';
  topic: string;
  payload: Buffer;
}

export function planPublishes(requests: readonly PublishRequest[]): PlannedPublish[] {
  const seen = new Set<string>();
  for (const r of requests) {
    if (seen.has(r.key)) throw new RelayError('ERR_INTERNAL', `record ${r.key} was handed to the session twice`);
    seen.add(r.key);
  }
  // The newest state record of each device, found by scanning backwards.
  const newestState = new Map<string, PublishRequest>();
  const olderStates = new Map<string, string[]>();
  for (let i = requests.length - 1; i >= 0; i--) {
    const r = requests[i]!;
    if (r.kind !== 'state') continue;
    if (!newestState.has(r.deviceId)) {
      newestState.set(r.deviceId, r);
      olderStates.set(r.deviceId, []);
    } else {
      olderStates.get(r.deviceId)!.push(r.key);
    }
  }
  const plan: PlannedPublish[] = [];
  // A device's events without subfolder all go to one topic: built once per device, not once per record.
  const plainEventTopics = new Map<string, string>();
  for (const r of requests) {
    if (r.kind === 'event') {
      let topic: string | undefined;
      if (r.subfolder === undefined) {
        topic = plainEventTopics.get(r.deviceId);
        if (topic === undefined) plainEventTopics.set(r.deviceId, (topic = eventsTopic(r.deviceId)));
      } else {
        topic = eventsTopic(r.deviceId, r.subfolder);
      }
      plan.push({ keys: [r.key], deviceId: r.deviceId, kind: 'event', topic, payload: r.payload });
    } else if (newestState.get(r.deviceId) === r) {
      // Newest first, then the others from newer to older.
      plan.push({ keys: [r.key, ...olderStates.get(r.deviceId)!], deviceId: r.deviceId, kind: 'state', topic: stateTopic(r.deviceId), payload: r.payload });
    }
  }
  return plan;
}
