/**
 * From a batch of queue records to one work list per gateway. Each record is parsed on its own (queue contract v1,
 * lib/queue/message.ts), so a malformed one becomes its own dead-letter outcome and never takes its neighbours down.
 *
 * Which gateway carries a record:
 * - its FIFO message group, when that is a configured gateway: producers and the poller put every job for gateway
 *   G in group G, which is what keeps two sessions of one gateway from running at once (docs/design.md rule 1);
 * - otherwise (a standard queue, or a group that is not a gateway) the device's gateway by stable hashing,
 *   `gatewayFor()` in lib/gateway-pool.ts, which every producer computes the same way.
 *
 * @example
 * routeRecords([{ messageId: 'm-1', body: '{"v":1,"deviceId":"pump-1","payload":"x"}', groupId: 'gw-1', receiveCount: 1 }], ['gw-1']);
 * // { batches: [{ gatewayId: 'gw-1', telemetry: [...], polls: [] }], rejected: [], foreignGroups: [] }
 */
import { isRelayError, RelayError } from '../errors.js';
import { gatewayFor } from '../gateway-pool.js';
import { parseQueueMessage, type ConfigPollMessage, type TelemetryMessage } from '../queue/message.js';
import { failed, type RecordOutcome } from './outcomes.js';

/** A queue record as the relay sees it; lib/sqs/ builds these from SQS events. */
export interface InboundRecord {
  messageId: string;
  body: string;
  /** The FIFO message group, on FIFO queues. */
  groupId?: string | undefined;
  /** How many times SQS has handed this record out, this time included. */
  receiveCount: number;
}

export interface TelemetryItem {
  messageId: string;
  message: TelemetryMessage;
}

export interface PollItem {
  messageId: string;
  message: ConfigPollMessage;
}

/** Everything one gateway session does for a batch, in queue order. */
export interface GatewayWork {
  gatewayId: string;
  telemetry: TelemetryItem[];
  polls: PollItem[];
}

export interface RoutedBatch {
  batches: GatewayWork[];
  /** Records that cannot be relayed as they are, with their outcome. */
  rejected: RecordOutcome[];
  /** Message groups seen that are not configured gateways (worth a warning: rule 1 relies on groups). */
  foreignGroups: string[];
}

export function routeRecords(records: readonly InboundRecord[], gatewayIds: readonly string[]): RoutedBatch {
  const byGateway = new Map<string, GatewayWork>();
  const rejected: RecordOutcome[] = [];
  const foreign = new Set<string>();
  const configured = new Set(gatewayIds);
  const work = (gatewayId: string): GatewayWork => {
    let w = byGateway.get(gatewayId);
    if (w === undefined) {
      w = { gatewayId, telemetry: [], polls: [] };
      byGateway.set(gatewayId, w);
    }
    return w;
  };
  for (const record of records) {
    try {
      const message = parseQueueMessage(record.body);
      const group = record.groupId !== undefined && configured.has(record.groupId) ? record.groupId : undefined;
      if (record.groupId !== undefined && group === undefined) foreign.add(record.groupId);
      if (message.type === 'config-poll') {
        work(group ?? pollGateway(message, gatewayIds)).polls.push({ messageId: record.messageId, message });
      } else {
        work(group ?? gatewayFor(message.deviceId, gatewayIds)).telemetry.push({ messageId: record.messageId, message });
      }
    } catch (e) {
      const err = isRelayError(e) ? e : new RelayError('ERR_INTERNAL', `unexpected: ${(e as Error).message}`);
      const extra = err.field === undefined ? {} : { field: err.field };
      rejected.push(failed(record.messageId, err.code, err.message, extra));
    }
  }
  return { batches: [...byGateway.values()], rejected, foreignGroups: [...foreign] };
}

/**
 * A poll job outside a gateway's message group goes to the gateway all its devices hash to. The poller builds one
 * job per gateway; a job spanning several could never be served by one session.
 */
function pollGateway(message: ConfigPollMessage, gatewayIds: readonly string[]): string {
  const gateways = new Set(message.deviceIds.map((d) => gatewayFor(d, gatewayIds)));
  if (gateways.size !== 1) {
    throw new RelayError('ERR_INVALID_FIELD', `deviceIds belong to ${gateways.size} different gateways; a poll job serves one gateway`, {
      field: 'deviceIds',
    });
  }
  return [...gateways][0]!;
}
