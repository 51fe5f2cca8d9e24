/**
 * The poller's settings, read from the environment once and checked, so a bad deployment fails on its first
 * schedule with a message naming the variable rather than enqueueing jobs the relay would refuse.
 *
 * | variable | meaning |
 * |---|---|
 * | `IOTCORE_GATEWAY_IDS` | gateways, as for the relay; each device is polled through the gateway that carries it |
 * | `RELAY_QUEUE_URL` | the relay's FIFO queue |
 * | `POLL_DEVICE_IDS` | devices always polled, comma separated (optional) |
 * | `POLL_RECENT_HOURS` | also poll every device relayed for in this many hours (default 24; 0 turns it off) |
 * | `POLL_CHUNK_SIZE` | devices per job (default 100, at most 1000) |
 *
 * @example
 * const settings = pollSettingsFromEnv(process.env);
 */
import { RelayError } from '../errors.js';
import { parseGatewayIds } from '../gateway-pool.js';
import { deviceIdProblem } from '../iotcore/device-id.js';
import { MAX_ATTACHED_PER_GATEWAY } from '../iotcore/limits.js';

export interface PollSettings {
  gatewayIds: string[];
  queueUrl: string;
  /** Always polled. */
  deviceIds: string[];
  /** 0: poll only `deviceIds`. */
  recentHours: number;
  chunkSize: number;
}

export const DEFAULT_RECENT_HOURS = 24;
export const DEFAULT_CHUNK_SIZE = 100;
/** SQS limits a MessageGroupId to 128 characters, and the group of a gateway's jobs is its ID. */
const MAX_GROUP_ID_LENGTH = 128;

export function pollSettingsFromEnv(env: NodeJS.ProcessEnv): PollSettings {
  const gatewayIds = parseGatewayIds(env.IOTCORE_GATEWAY_IDS);
  const long = gatewayIds.find((id) => id.length > MAX_GROUP_ID_LENGTH);
  if (long !== undefined) {
    throw new RelayError('ERR_CONFIG', `gateway ID ${long} is longer than ${MAX_GROUP_ID_LENGTH} characters and cannot be an SQS message group`);
  }
  const queueUrl = env.RELAY_QUEUE_URL?.trim() ?? '';
  if (queueUrl === '') throw new RelayError('ERR_CONFIG', 'RELAY_QUEUE_URL must be the relay queue URL');

  const deviceIds = [...new Set((env.POLL_DEVICE_IDS ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0))];
  deviceIds.forEach((id, i) => {
    const problem = deviceIdProblem(id);
    if (problem !== undefined) throw new RelayError('ERR_CONFIG', `POLL_DEVICE_IDS[${i}] ${problem}`);
  });

  const recentHours = numberSetting(env, 'POLL_RECENT_HOURS', DEFAULT_RECENT_HOURS);
  if (recentHours < 0) throw new RelayError('ERR_CONFIG', 'POLL_RECENT_HOURS must not be negative');
  const chunkSize = numberSetting(env, 'POLL_CHUNK_SIZE', DEFAULT_CHUNK_SIZE);
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_ATTACHED_PER_GATEWAY) {
    // One job is one gateway session holding its whole chunk attached; the bridge allows 1000 (iotcore-protocol.md §3.1).
    throw new RelayError('ERR_CONFIG', `POLL_CHUNK_SIZE must be an integer from 1 to ${MAX_ATTACHED_PER_GATEWAY} (got ${chunkSize})`);
  }
  return { gatewayIds, queueUrl, deviceIds, recentHours, chunkSize };
}

function numberSetting(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new RelayError('ERR_CONFIG', `${name} must be a number (got ${JSON.stringify(raw)})`);
  return n;
}
