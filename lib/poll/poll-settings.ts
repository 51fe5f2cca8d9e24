/**
 * The poller's settings, read from the environment once and checked, so a bad deployment fails on its first
 * schedule with one message naming every wrong variable rather than enqueueing jobs the relay would refuse.
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
import { deviceIdProblem, topicDeviceIdProblem } from '../iotcore/device-id.js';
import { MAX_ATTACHED_PER_GATEWAY } from '../iotcore/limits.js';
import { SettingsCheck } from '../settings-check.js';

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

/** Throws one RelayError ERR_CONFIG listing every wrong or missing variable (lib/settings-check.ts). */
export function pollSettingsFromEnv(env: NodeJS.ProcessEnv): PollSettings {
  const check = new SettingsCheck();
  const gatewayIds = check.read(() => {
    const ids = parseGatewayIds(env.IOTCORE_GATEWAY_IDS);
    const long = ids.find((id) => id.length > MAX_GROUP_ID_LENGTH);
    if (long !== undefined) {
      throw new RelayError('ERR_CONFIG', `gateway ID ${long} is longer than ${MAX_GROUP_ID_LENGTH} characters and cannot be an SQS message group`, {
        field: 'IOTCORE_GATEWAY_IDS',
      });
    }
    return ids;
  });
  const queueUrl = env.RELAY_QUEUE_URL?.trim() ?? '';
  if (queueUrl === '') check.add(new RelayError('ERR_CONFIG', 'RELAY_QUEUE_URL must be the relay queue URL', { field: 'RELAY_QUEUE_URL' }));

  const deviceIds = [...new Set((env.POLL_DEVICE_IDS ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0))];
  deviceIds.forEach((id, i) => {
    const problem = deviceIdProblem(id) ?? topicDeviceIdProblem(id);
    if (problem !== undefined) check.add(new RelayError('ERR_CONFIG', `POLL_DEVICE_IDS[${i}] ${problem}`, { field: `POLL_DEVICE_IDS[${i}]` }));
  });

  const recentHours = check.read(() => {
    const hours = numberSetting(env, 'POLL_RECENT_HOURS', DEFAULT_RECENT_HOURS);
    if (hours < 0) throw new RelayError('ERR_CONFIG', 'POLL_RECENT_HOURS must not be negative', { field: 'POLL_RECENT_HOURS' });
    return hours;
  });
  const chunkSize = check.read(() => {
    const size = numberSetting(env, 'POLL_CHUNK_SIZE', DEFAULT_CHUNK_SIZE);
    if (!Number.isInteger(size) || size < 1 || size > MAX_ATTACHED_PER_GATEWAY) {
      // One job is one gateway session holding its whole chunk attached; the bridge allows 1000 (docs/protocol.md §3.1).
      throw new RelayError('ERR_CONFIG', `POLL_CHUNK_SIZE must be an integer from 1 to ${MAX_ATTACHED_PER_GATEWAY} (got ${size})`, { field: 'POLL_CHUNK_SIZE' });
    }
    return size;
  });
  check.throwIfAny();
  return { gatewayIds: gatewayIds!, queueUrl, deviceIds, recentHours: recentHours!, chunkSize: chunkSize! };
}

function numberSetting(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new RelayError('ERR_CONFIG', `${name} must be a number (got ${JSON.stringify(raw)})`, { field: name });
  return n;
}
