/**
 * Turns the set of devices to poll into `config-poll` jobs: one list per gateway (the gateway that carries the
 * device, as everywhere else), sorted, cut into chunks a gateway session can attach at once, each with a
 * deduplication ID derived from the schedule time, the gateway and the chunk's index.
 *
 * Sorting makes the chunks a function of the device set alone, so a retried schedule invocation that sees the same
 * devices produces the same chunks under the same IDs, and SQS drops the repeats.
 *
 * @example
 * planPollJobs(['pump-0042', 'pump-0043'], { gatewayIds: ['gw-1'], chunkSize: 100, scheduledAt: new Date() });
 * // [{ gatewayId: 'gw-1', chunkIndex: 0, deviceIds: ['pump-0042', 'pump-0043'], body: '{"v":1,...}', deduplicationId: '…' }]
 */
import { createHash } from 'node:crypto';
import { RelayError } from '../errors.js';
import { assignmentFor } from '../gateway-pool.js';
import { assertDeviceId } from '../iotcore/device-id.js';
import { MAX_ATTACHED_PER_GATEWAY } from '../iotcore/limits.js';
import { encodeConfigPollMessage } from '../queue/message.js';

export interface PollJob {
  gatewayId: string;
  /** Position of this chunk among the gateway's chunks for this schedule time, from 0. */
  chunkIndex: number;
  deviceIds: string[];
  /**
   * The queue contract v1 body. The largest, 1000 IDs of 255 characters, encodes to about 252 KiB and fits the
   * classic SQS message size limit the queue producer keeps to (lib/queue/queue-producer.ts); the test suite holds
   * that true.
   */
  body: string;
  /** The SQS MessageDeduplicationId (at most 128 characters). */
  deduplicationId: string;
}

export interface PollPlanOptions {
  gatewayIds: readonly string[];
  /** Devices per job, 1 to 1000. */
  chunkSize: number;
  /** The time the schedule fired; the same on every retry of one invocation. */
  scheduledAt: Date;
}

export function planPollJobs(deviceIds: Iterable<string>, options: PollPlanOptions): PollJob[] {
  const { gatewayIds, chunkSize, scheduledAt } = options;
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_ATTACHED_PER_GATEWAY) {
    // The bridge attaches at most 1000 devices to one gateway (docs/protocol.md §3.1); the job's session
    // holds all of a chunk attached at once.
    throw new RelayError('ERR_CONFIG', `poll chunk size must be an integer from 1 to ${MAX_ATTACHED_PER_GATEWAY} (got ${chunkSize})`);
  }
  if (Number.isNaN(scheduledAt.getTime())) throw new RelayError('ERR_CONFIG', 'the schedule time is not a valid date');

  const gateways = new Set(gatewayIds);
  const assignment = assignmentFor(gatewayIds);
  const byGateway = new Map<string, string[]>();
  for (const id of new Set(deviceIds)) {
    assertDeviceId(id);
    // A gateway cannot attach itself or another gateway: the registry refuses to bind a gateway to a gateway.
    if (gateways.has(id)) continue;
    const gw = assignment.gatewayFor(id);
    const list = byGateway.get(gw) ?? [];
    list.push(id);
    byGateway.set(gw, list);
  }

  const jobs: PollJob[] = [];
  for (const gatewayId of [...byGateway.keys()].sort()) {
    const ids = byGateway.get(gatewayId)!.sort();
    let chunkIndex = 0;
    for (const chunk of chunks(ids, chunkSize)) {
      jobs.push({
        gatewayId,
        chunkIndex,
        deviceIds: chunk,
        body: encodeConfigPollMessage(chunk),
        deduplicationId: pollDeduplicationId(scheduledAt, gatewayId, chunkIndex),
      });
      chunkIndex++;
    }
  }
  return jobs;
}

/**
 * `config-poll:<schedule time>:<chunk>:<sha256 of the gateway ID>`. The gateway is hashed because a device ID may
 * be 255 characters and a deduplication ID at most 128; the hash keeps IDs of different gateways apart even on a
 * queue whose deduplication scope is the whole queue.
 */
export function pollDeduplicationId(scheduledAt: Date, gatewayId: string, chunkIndex: number): string {
  const gw = createHash('sha256').update(gatewayId).digest('hex');
  return `config-poll:${scheduledAt.toISOString()}:${chunkIndex}:${gw}`;
}

function* chunks(ids: readonly string[], size: number): Generator<string[]> {
  for (let i = 0; i < ids.length; i += size) yield ids.slice(i, i + size);
}
